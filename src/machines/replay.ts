/**
 * Replaying a recorded log: a pure fold that checks, event by event, that today's machine
 * reaches the state that was recorded. No model call, no effect, no log line.
 */
import { MachineHashMismatchError, ReplayMismatchError, UsageError } from '../errors.js';
import type { RunMachine } from './compile.js';
import type { MachineEvent, RunStarted, StoredEnvelope } from './events.js';
import {
  initialSnapshot,
  runInputOf,
  sameJson,
  step,
  summarize,
  type RunSnapshot,
} from './fold.js';

/** One transition of a replay. */
export interface ReplayStep {
  seq: number;
  at: number;
  event: StoredEnvelope['event'];
  from: unknown;
  to: unknown;
  snapshot: RunSnapshot;
}

/** The result of a fold. */
export interface Folded {
  snapshot: RunSnapshot;
  seq: number;
  started: RunStarted;
  startedAt: number;
}

/** Options of {@link foldLog}. */
export interface FoldOptions {
  /** Check every folded state against the recorded one (default true). */
  verify?: boolean;
  /** Stop after this seq. */
  until?: number;
  /** Called after each event (for `replay` output). */
  onStep?: (s: ReplayStep) => void;
  /** Fold even when the recorded machine hash differs (verify then finds the first divergence). */
  ignoreHash?: boolean;
  /** Start from this snapshot (taken after `seq`) and fold only the events after it. */
  from?: { seq: number; snapshot: RunSnapshot };
}

/** The `run.started` event of a log, or a UsageError naming the fix. */
export function startedOf(
  runId: string,
  events: readonly StoredEnvelope[],
): { started: RunStarted; at: number } {
  const first = events[0];
  if (first === undefined)
    throw new UsageError(`unknown run id '${runId}': list runs with \`plumbline runs\``);
  if (first.event.type !== 'run.started') {
    throw new ReplayMismatchError(
      runId,
      first.seq,
      `the log does not begin with run.started (found ${first.event.type})`,
    );
  }
  return { started: first.event, at: first.at };
}

/** Folds a run's log through `machine` (whose hash must be `hash`), verifying recorded states. */
export function foldLog(
  machine: RunMachine,
  hash: string,
  runId: string,
  events: readonly StoredEnvelope[],
  options: FoldOptions = {},
): Folded {
  const { started, at } = startedOf(runId, events);
  if (started.machineHash !== hash && options.ignoreHash !== true)
    throw new MachineHashMismatchError(runId, started.machineHash, hash);
  const verify = options.verify ?? true;
  let from = options.from;
  if (from === undefined) {
    const snapshot = initialSnapshot(machine, runInputOf(runId, started, at));
    if (verify && events[0] !== undefined) checkState(runId, events[0], snapshot);
    options.onStep?.({ seq: 1, at, event: started, from: null, to: snapshot.value, snapshot });
    from = { seq: 1, snapshot };
  }
  const tail = foldTail(machine, runId, from, events, options);
  return { ...tail, started, startedAt: at };
}

function checkState(runId: string, env: StoredEnvelope, s: RunSnapshot): void {
  const folded = summarize(s);
  if (!sameJson(folded.value, env.state.value) || folded.status !== env.state.status) {
    throw new ReplayMismatchError(
      runId,
      env.seq,
      `after ${env.event.type} the log recorded ${JSON.stringify(env.state.value)} (${env.state.status}) ` +
        `but today's pipeline folds to ${JSON.stringify(folded.value)} (${folded.status})`,
    );
  }
}

/**
 * Folds the events after `from.seq` onto `from.snapshot` (a saved snapshot, or the initial
 * state), verifying each recorded state; events at or before `from.seq` are skipped.
 */
export function foldTail(
  machine: RunMachine,
  runId: string,
  from: { seq: number; snapshot: RunSnapshot },
  events: readonly StoredEnvelope[],
  options: Pick<FoldOptions, 'verify' | 'until' | 'onStep'> = {},
): { snapshot: RunSnapshot; seq: number } {
  const verify = options.verify ?? true;
  let { snapshot, seq } = from;
  for (const env of events) {
    if (env.seq <= seq) continue;
    if (options.until !== undefined && env.seq > options.until) break;
    if (env.seq !== seq + 1)
      throw new ReplayMismatchError(runId, env.seq, `gap in the log after seq ${seq}`);
    if (env.event.type === 'run.started')
      throw new ReplayMismatchError(runId, env.seq, 'a second run.started');
    const before = snapshot.value;
    const next = step(machine, snapshot, env.event as MachineEvent);
    if (next === snapshot) {
      throw new ReplayMismatchError(
        runId,
        env.seq,
        `${env.event.type} is not accepted in state ${JSON.stringify(before)}`,
      );
    }
    snapshot = next;
    seq = env.seq;
    if (verify) checkState(runId, env, snapshot);
    options.onStep?.({
      seq,
      at: env.at,
      event: env.event,
      from: before,
      to: snapshot.value,
      snapshot,
    });
  }
  return { snapshot, seq };
}

/** The snapshot to persist for a run (plain JSON: value and context). */
export function persistable(s: RunSnapshot): { value: unknown; context: unknown } {
  return { value: s.value, context: s.context };
}

/** Restores a snapshot saved with {@link persistable}. */
export function restore(machine: RunMachine, saved: unknown): RunSnapshot {
  const { value, context } = saved as { value: never; context: never };
  return machine.resolveState({ value, context }) as RunSnapshot;
}
