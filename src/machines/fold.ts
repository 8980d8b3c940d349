/**
 * Folding a run's log through its machine: a pure reduce with XState's `transition()`, which
 * computes the next snapshot without running anything. Replay uses it; so does the live driver,
 * so a replay takes exactly the path the live run took.
 */
import { createActor, type AnyMachineSnapshot } from 'xstate';
import type { RunInput } from './context.js';
import type { RunContext } from './context.js';
import type { MachineEvent, RunStarted, RunStatus, StateSummary } from './events.js';
import type { RunMachine } from './compile.js';

/** A run machine snapshot. */
export type RunSnapshot = AnyMachineSnapshot & { context: RunContext };

/** The machine input a `run.started` event describes. */
export function runInputOf(runId: string, started: RunStarted, at: number): RunInput {
  return {
    runId,
    input: started.input,
    limits: started.limits,
    startedAt: at,
    ...(started.outputs !== undefined ? { outputs: started.outputs } : {}),
  };
}

/**
 * The initial snapshot of a run: XState's `initialTransition()` without its per-call actor
 * (building one runs the context factory without input, which throws and is caught, once per
 * run); the cached inert scope serves, as for {@link step}.
 */
export function initialSnapshot(machine: RunMachine, input: RunInput): RunSnapshot {
  return machine.getInitialSnapshot(scopeFor(machine) as never, input) as RunSnapshot;
}

const scopes = new WeakMap<RunMachine, unknown>();

/**
 * One inert actor scope per machine, reused by every transition. XState's `transition()` builds
 * a throw-away actor per call (and runs the context factory without input, which throws and is
 * caught); the run machine has no invoked actors and only `assign` actions, so one scope serves.
 */
function scopeFor(machine: RunMachine): unknown {
  let scope = scopes.get(machine);
  if (scope === undefined) {
    const self = createActor(machine, {
      input: {
        runId: '',
        input: null,
        limits: { budgetUsd: null, maxIterations: null, deadlineAt: null },
        startedAt: 0,
      },
    });
    const noop = (): void => undefined;
    scope = {
      self,
      defer: noop,
      id: '',
      logger: noop,
      sessionId: '',
      stopChild: noop,
      system: self.system,
      emit: noop,
      actionExecutor: noop,
    };
    scopes.set(machine, scope);
  }
  return scope;
}

/** The snapshot after `event` (pure: same as XState's `transition()`, without its per-call actor). */
export function step(machine: RunMachine, snapshot: RunSnapshot, event: MachineEvent): RunSnapshot {
  return machine.transition(snapshot, event, scopeFor(machine) as never) as RunSnapshot;
}

/** Run status from a snapshot. */
export function statusOf(snapshot: RunSnapshot): RunStatus {
  const v = snapshot.value;
  if (v === 'completed' || v === 'failed' || v === 'killed' || v === 'parked') return v;
  return snapshot.hasTag('waiting') ? 'waiting' : 'running';
}

/** True for a status no event can change (parked is not terminal: it resumes). */
export function isTerminal(status: RunStatus): boolean {
  return status === 'completed' || status === 'failed' || status === 'killed';
}

/** What is recorded with each event: the state moved to. */
export function summarize(snapshot: RunSnapshot): StateSummary {
  return {
    value: snapshot.value,
    status: statusOf(snapshot),
    step: snapshot.context.step,
    costUsd: snapshot.context.costUsd,
  };
}

/** The innermost state name of a step state (`ready`, `calling`, `backoff`…), or null. */
export function phaseOf(snapshot: RunSnapshot): { step: string; phase: string } | null {
  const v = snapshot.value;
  if (typeof v !== 'object' || v === null) return null;
  const [stepName, inner] = Object.entries(v as Record<string, unknown>)[0] ?? [];
  if (stepName === undefined) return null;
  if (typeof inner === 'string') return { step: stepName, phase: inner };
  // A parallel step's `branches` state holds one region per branch.
  const [phase] = typeof inner === 'object' && inner !== null ? Object.keys(inner) : [];
  return phase === undefined ? null : { step: stepName, phase };
}

/** Deep equality for JSON values (state values and recorded summaries). */
export function sameJson(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a as object);
  const kb = Object.keys(b as object);
  if (ka.length !== kb.length) return false;
  return ka.every((k) =>
    sameJson((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]),
  );
}
