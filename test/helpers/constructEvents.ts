/**
 * Random next events for a run machine that nests routes, parallel branches, maps and calls:
 * for the state a run is in, one event the live runtime could record there (shapes as in
 * src/machines/events.ts). Used by the replay-fidelity property.
 */
import type { MachineEvent } from '../../src/machines/events.js';
import { phaseOf, statusOf, type RunSnapshot } from '../../src/machines/fold.js';

/** What the generator knows of a machine step: its kind and its branches. */
export interface StepInfo {
  kind: string;
  /** Route or parallel branch keys (empty for other steps). */
  keys: string[];
  /** A route's branches: the names of the machine steps in each (nested routes included). */
  branchSteps: Record<string, string[]>;
}

/**
 * The random source of a machine's runs, guided toward states not visited yet. `pick(n)` is a
 * neutral choice in [0, n); `mishap(n)` (a failure, a skip, a park, a kill) is true one time in
 * n, never while `calm` events remain: a run that starts calm travels to deep states, and the
 * calm ends in a step with states not visited yet (`hot`), where the run explores.
 */
export class Explorer {
  /** Events left during which nothing goes wrong. */
  calm = 0;
  /** The current step has states not visited yet. */
  hot = false;
  constructor(
    readonly pick: (n: number) => number,
    /** True when some recordable state whose id starts with `prefix` is not visited yet. */
    readonly fresh: (prefix: string) => boolean,
  ) {}
  /** True one time in `n`, never while calm. */
  mishap(n: number): boolean {
    return this.calm === 0 && this.pick(n) === 0;
  }
  /** A route's branch: half the time one leading to unvisited states, if any. */
  branch(info: StepInfo): string {
    const fresh = info.keys.filter((k) =>
      (info.branchSteps[k] ?? []).some((n) => this.fresh(`run.${n}.`)),
    );
    const from = fresh.length > 0 && this.pick(2) === 0 ? fresh : info.keys;
    return from[this.pick(from.length)] ?? '';
  }
}

const usage = {
  inputTokens: 1,
  outputTokens: 1,
  cacheReadTokens: 0,
  cacheWrite5mTokens: 0,
  cacheWrite1hTokens: 0,
};

function llmEvent(st: string, phase: string, ex: Explorer, at: number): MachineEvent {
  if (phase === 'ready') {
    if (ex.mishap(14)) return { type: 'SKIP', step: st, reason: 'not needed' };
    // The prompt threw (the runtime records STEP_FAILED in `ready`).
    if (ex.mishap(13)) return { type: 'STEP_FAILED', step: st, message: 'prompt threw' };
    const breaker = ex.mishap(5) ? (ex.pick(2) === 0 ? 'open' : 'half_open') : 'closed';
    return {
      type: 'ATTEMPT',
      step: st,
      attempt: 1,
      at,
      estimate: { inputTokens: 10, maxTokens: 100, usd: ex.mishap(8) ? 5 : 0.001 },
      breaker,
      model: 'claude-haiku-4-5',
    };
  }
  if (ex.mishap(3)) {
    const fatal = ex.mishap(3);
    return {
      type: 'MODEL_ERROR',
      step: st,
      attempt: 1,
      requestId: null,
      model: 'm',
      status: fatal ? 400 : 529,
      kind: fatal ? 'bad_request' : 'overloaded',
      retryable: !fatal,
      message: 'x',
      delayMs: 5,
      retryAt: at + 5,
      usage: null,
      costUsd: 0,
      durationMs: 1,
    };
  }
  const verdict = ex.mishap(3)
    ? ((['invalid', 'refusal', 'max_tokens'] as const)[ex.pick(3)] ?? 'invalid')
    : 'valid';
  return {
    type: 'MODEL_RESPONSE',
    step: st,
    attempt: 1,
    requestId: 'r',
    model: 'm',
    stopReason: 'end_turn',
    usage,
    costUsd: 0.0001,
    verdict,
    ...(verdict === 'valid' ? { output: { a: 'x' } } : {}),
    issues: verdict === 'valid' ? [] : ['a: required'],
    text: null,
    durationMs: 1,
  };
}

function effectEvent(st: string, phase: string, ex: Explorer, at: number): MachineEvent {
  if (phase === 'ready') {
    if (ex.mishap(12)) return { type: 'SKIP', step: st, reason: 'no' };
    if (ex.mishap(11)) return { type: 'STEP_FAILED', step: st, message: 'key threw' };
    return { type: 'EFFECT_STARTED', step: st, key: 'k', attempt: 1 };
  }
  if (ex.mishap(4))
    return {
      type: 'EFFECT_FAILED',
      step: st,
      key: 'k',
      message: 'boom',
      retryable: !ex.mishap(3),
      delayMs: 3,
      retryAt: at + 3,
    };
  return {
    type: 'EFFECT_DONE',
    step: st,
    key: 'k',
    result: { ok: true },
    replayed: false,
    durationMs: 1,
  };
}

/** Before anything starts, a step may be skipped or its own code (choose, over, key) throw. */
function readyOf(st: string, ex: Explorer): MachineEvent | null {
  if (ex.mishap(16)) return { type: 'SKIP', step: st, reason: 'not needed' };
  if (ex.mishap(15)) return { type: 'STEP_FAILED', step: st, message: 'user code threw' };
  return null;
}

function childEvent(
  s: RunSnapshot,
  st: string,
  phase: string,
  info: StepInfo,
  ex: Explorer,
): MachineEvent {
  if (phase === 'ready') {
    const count =
      info.kind === 'parallel' ? info.keys.length : info.kind === 'call' ? 1 : ex.pick(4);
    return readyOf(st, ex) ?? { type: 'CHILDREN_STARTED', step: st, count };
  }
  if (ex.mishap(10))
    return {
      type: 'CHILDREN_PARKED',
      step: st,
      reason: (['budget', 'iterations', 'deadline', 'breaker'] as const)[ex.pick(4)] ?? 'budget',
      detail: 'a child parked',
      child: `parent-${st}-0`,
    };
  const costUsd = ex.pick(3) * 0.01;
  const iterations = ex.pick(3);
  if (info.kind === 'parallel') {
    // One of the branches still running reports, in any order.
    const regions = (s.value as Record<string, { branches?: Record<string, string> }>)[st]
      ?.branches;
    const running = Object.keys(regions ?? {}).filter((k) => regions?.[k] === 'running');
    const branch = running[ex.pick(running.length)] ?? '';
    const ok = !ex.mishap(5);
    return {
      type: 'BRANCH_DONE',
      step: st,
      branch,
      ok,
      ...(ok ? { result: { from: branch } } : { error: `branch ${branch} failed` }),
      costUsd,
      iterations,
    };
  }
  const count = s.context.children?.[st] ?? 0;
  const failed = count > 0 && ex.mishap(5);
  const bad = failed ? ex.pick(count) : -1;
  return {
    type: 'CHILDREN_DONE',
    step: st,
    results: Array.from({ length: count }, (_, i) => (i === bad ? null : { item: i })),
    errors: failed ? [{ index: bad, message: 'item failed' }] : [],
    failed,
    costUsd,
    iterations,
  };
}

function eventIn(
  s: RunSnapshot,
  steps: ReadonlyMap<string, StepInfo>,
  ex: Explorer,
  at: number,
): MachineEvent | null {
  const status = statusOf(s);
  if (status === 'parked')
    return ex.mishap(5)
      ? { type: 'KILL', reason: 'k' }
      : { type: 'RESUME', budgetUsd: 10, maxIterations: 100, deadlineAt: null };
  if (status !== 'running') return null;
  const where = phaseOf(s);
  ex.hot = where !== null && ex.fresh(`run.${where.step}.`);
  // A calm stretch ends where there is something new to see.
  if (ex.hot) ex.calm = 0;
  if (ex.mishap(ex.fresh('run.killed') ? 8 : 40)) return { type: 'KILL', reason: 'operator' };
  const info = where !== null ? steps.get(where.step) : undefined;
  if (where === null || info === undefined)
    throw new Error(`unknown state ${JSON.stringify(s.value)}`);
  const { step: st, phase } = where;
  if (phase === 'backoff') return { type: 'TIMER', step: st, at };
  switch (info.kind) {
    case 'llm':
      return llmEvent(st, phase, ex, at);
    case 'effect':
      return effectEvent(st, phase, ex, at);
    case 'route': {
      return readyOf(st, ex) ?? { type: 'ROUTE', step: st, branch: ex.branch(info) };
    }
    case 'parallel':
    case 'map':
    case 'call':
      return childEvent(s, st, phase, info, ex);
    default:
      return (
        readyOf(st, ex) ??
        (ex.mishap(6)
          ? { type: 'STEP_FAILED', step: st, message: 'bad' }
          : { type: 'STEP_DONE', step: st, output: { n: ex.pick(100) } })
      );
  }
}

/** The next event of a generated run in state `s`, or null when the run is over. */
export function nextEvent(
  s: RunSnapshot,
  steps: ReadonlyMap<string, StepInfo>,
  ex: Explorer,
  at: number,
): MachineEvent | null {
  const e = eventIn(s, steps, ex, at);
  if (ex.calm > 0) ex.calm -= 1;
  return e;
}
