/**
 * Exact edges, when the run's machine is at hand (a loaded pipeline with the recorded hash):
 * replays the log through an actor and reads the transitions XState itself took from its
 * `@xstate.microstep` inspection events, so guarded alternatives (which limit parked the run)
 * are known rather than guessed. Run machines have no `invoke` and no `after`, so the actor
 * only computes.
 */
import {
  createActor,
  type Actor,
  type AnyStateMachine,
  type AnyTransitionDefinition,
} from 'xstate';
import type { RunStarted } from '../machines/events.js';
import { runInputOf, sameJson } from '../machines/fold.js';
import type { PathEnvelope } from './path.js';

/** The graph edge id (`source:event:index`, as `describeMachine` numbers them) of a transition. */
export function edgeIdOf(t: AnyTransitionDefinition): string | null {
  const source = t.source;
  if (t.eventType === '') {
    const i = (source.always ?? []).indexOf(t);
    return i < 0 ? null : `${source.id}:always:${i}`;
  }
  const after = source.after.indexOf(t as never);
  if (after >= 0) return `${source.id}:after:${String((t as { delay?: unknown }).delay)}:${after}`;
  const i = source.transitions.get(t.eventType)?.indexOf(t) ?? -1;
  return i < 0 ? null : `${source.id}:${t.eventType}:${i}`;
}

/** Feeds a run's envelopes to its machine one by one and reports the edges each one took. */
export class EdgeTracer {
  private readonly actor: Actor<AnyStateMachine>;
  private taken: string[] = [];
  private broken = false;

  constructor(machine: AnyStateMachine, runId: string, started: RunStarted, startedAt: number) {
    this.actor = createActor(machine, {
      input: runInputOf(runId, started, startedAt),
      inspect: (e) => {
        if (e.type !== '@xstate.microstep') return;
        for (const t of (e as { _transitions?: AnyTransitionDefinition[] })._transitions ?? []) {
          const id = edgeIdOf(t);
          if (id !== null) this.taken.push(id);
        }
      },
    });
    this.actor.start();
  }

  /** The edges `env` took; null from the first envelope the machine does not reproduce. */
  next(env: PathEnvelope): string[] | null {
    if (this.broken || env.event.type === 'run.started') return null;
    this.taken = [];
    this.actor.send(env.event as never);
    const snap = this.actor.getSnapshot();
    if (snap.status === 'error' || !sameJson(snap.value, env.state.value)) {
      this.broken = true;
      return null;
    }
    return this.taken;
  }

  stop(): void {
    this.actor.stop();
  }
}

/** Exact edges per seq for a whole log (seq 1 must be `run.started`). */
export function traceEdges(
  machine: AnyStateMachine,
  envelopes: readonly (PathEnvelope & { runId: string; at: number })[],
): Map<number, string[]> {
  const out = new Map<number, string[]>();
  const [first] = envelopes;
  if (first?.event.type !== 'run.started') return out;
  const tracer = new EdgeTracer(machine, first.runId, first.event as RunStarted, first.at);
  try {
    for (const env of envelopes.slice(1)) {
      const edges = tracer.next(env);
      if (edges === null) break;
      out.set(env.seq, edges);
    }
  } finally {
    tracer.stop();
  }
  return out;
}
