/**
 * Child runs: the runs a parallel, map or call step makes, and the parent's durable wait for
 * them. A child's id is derived from its parent's (so a restarted parent finds the same
 * children and creates none twice); the parent records only that it made N children and, at
 * the end, their results, never one event per child per state. The wait itself keeps nothing
 * that the store does not: a parent rebuilt in another process reads its children's states.
 */
import { UsageError } from '../errors.js';
import { DEFAULT_MAP_CONCURRENCY, type ChildStep, type Collected } from '../machines/constructs.js';
import type { RunContext, RunLimits } from '../machines/context.js';
import type { ChildOf, MachineEvent } from '../machines/events.js';
import type { RunSnapshot } from '../machines/fold.js';
import type { RunStatus } from '../machines/events.js';
import type { Pipeline } from '../machines/pipeline.js';
import { prepare, parseRunInput, type Prepared } from './prepare.js';
import { childRunId } from './childRunId.js';
import { toPlainJson, PLAIN_JSON_HINT } from './plainJson.js';
import { stepContext } from './request.js';

export { childRunId } from './childRunId.js';

/** One child to make: its id, pipeline, input, and what it starts with. */
export interface ChildSpec {
  runId: string;
  prepared: Prepared;
  input: unknown;
  part: number | string | null;
  outputs?: Record<string, unknown>;
}

/** How a parent makes and drives its children (the runtime: in-process, or through the bus). */
export interface ChildHost {
  /** Records a child's `run.started` unless it exists (a restarted parent makes none twice). */
  create(spec: ChildSpec, parent: ChildOf, limits: RunLimits): Promise<void>;
  /**
   * Gets a child going: drives it here (resolving when this process stops driving it), or queues
   * it for any worker (resolving at once). `resume` for a parked child.
   */
  launch(spec: ChildSpec, how: 'drive' | 'resume', signal: AbortSignal): Promise<void>;
  /** A child's status from the store's run index (undefined: not created yet). */
  status(runId: string): Promise<RunStatus | undefined>;
  /** A child's state, folded from its log. */
  state(spec: ChildSpec): Promise<RunSnapshot>;
  /**
   * Sets a child's kill flag and records KILL in it when nobody drives it (a process driving it
   * sees the flag and records KILL itself).
   */
  kill(spec: ChildSpec, reason: string): Promise<void>;
  /** How often to look at children queued elsewhere (ms). */
  readonly pollMs: number;
}

const prepared = new WeakMap<Pipeline, Prepared>();

function prepareChild(p: Pipeline, module: string | null): Prepared {
  let hit = prepared.get(p);
  if (hit === undefined) {
    hit = prepare(p, module);
    prepared.set(p, hit);
  }
  return hit;
}

/**
 * The children `step` makes in the run's current context. Runs pipeline code (`over`, `input`):
 * what it throws propagates for the caller to fail the step with.
 */
export function childSpecs(parent: Prepared, step: ChildStep, ctx: RunContext): ChildSpec[] {
  const sc = stepContext(ctx, step.name);
  const id = (part: number | string | null): string => childRunId(ctx.runId, step.name, part);
  if (step.kind === 'parallel') {
    const children = step.children ?? {};
    return Object.keys(step.branches).map((branch) => {
      const p = children[branch];
      if (p === undefined)
        throw new UsageError(
          `step '${step.name}': branch '${branch}' has no pipeline: define the pipeline with definePipeline()`,
        );
      return {
        runId: id(branch),
        prepared: prepareChild(p, parent.module),
        input: ctx.input,
        part: branch,
        outputs: ctx.outputs,
      };
    });
  }
  if (step.kind === 'call') {
    const child = prepareChild(step.pipeline, parent.module);
    const input = parseRunInput(step.pipeline, step.input(sc), `step '${step.name}' input`);
    return [{ runId: id(null), prepared: child, input, part: null }];
  }
  const p = step.child ?? step.pipeline;
  if (p === undefined)
    throw new UsageError(`map '${step.name}' has no pipeline: define it with definePipeline()`);
  const items = step.over(sc);
  if (!Array.isArray(items))
    throw new UsageError(`map '${step.name}': over() must return an array (got ${typeof items})`);
  const child = prepareChild(p, parent.module);
  return items.map((item, i) => {
    const json = toPlainJson(item, `item ${i}`);
    if (!json.ok)
      throw new UsageError(
        `map '${step.name}': item ${i} holds ${json.found} at ${json.path}: ${PLAIN_JSON_HINT}`,
      );
    const input = parseRunInput(p, json.value, `map '${step.name}' item ${i}`);
    return { runId: id(i), prepared: child, input, part: i };
  });
}

/** The step's spending pool: `<run>/<step>`. */
export function poolOf(runId: string, step: string): string {
  return `${runId}/${step}`;
}

/** What is left of the run's caps for its children (null: no cap). */
export function remainingCaps(ctx: RunContext): {
  budgetUsd: number | null;
  maxIterations: number | null;
} {
  const { budgetUsd, maxIterations } = ctx.limits;
  return {
    budgetUsd: budgetUsd === null ? null : Math.max(0, budgetUsd - ctx.costUsd - ctx.reservedUsd),
    maxIterations: maxIterations === null ? null : Math.max(0, maxIterations - ctx.iterations),
  };
}

/** The limits a child starts with: no caps of its own, its ancestors' pools, the same deadline. */
export function childLimits(ctx: RunContext, step: string): RunLimits {
  const caps = remainingCaps(ctx);
  const own =
    caps.budgetUsd !== null || caps.maxIterations !== null ? [poolOf(ctx.runId, step)] : [];
  return {
    budgetUsd: null,
    maxIterations: null,
    deadlineAt: ctx.limits.deadlineAt,
    maxInputTokens: null,
    maxOutputTokens: null,
    pools: [...(ctx.limits.pools ?? []), ...own],
  };
}

/** What a finished child left: its result (the output of the last step it ran) or its error. */
interface Ended {
  ok: boolean;
  result: unknown;
  error: string;
  costUsd: number;
  iterations: number;
}

function endedOf(snap: RunSnapshot, status: RunStatus): Ended {
  const c = snap.context;
  const error =
    status === 'killed'
      ? `killed: ${c.killed?.reason ?? ''}`
      : `${c.error?.kind ?? 'failed'}: ${c.error?.message ?? ''}`;
  return {
    ok: status === 'completed',
    result: status === 'completed' && c.step !== null ? (c.outputs[c.step] ?? null) : null,
    error,
    costUsd: c.costUsd,
    iterations: c.iterations,
  };
}

const TERMINAL = new Set<RunStatus>(['completed', 'failed', 'killed']);

/** Why the wait stopped before an event: the caller's abort. */
export type GroupInterrupt = { interrupt: 'aborted' };

/**
 * The parent's wait for one step's children: launches them `concurrency` at a time, collects
 * each as it ends, and says what to record next — a BRANCH_DONE per parallel branch, then (map,
 * call) one CHILDREN_DONE, or CHILDREN_PARKED when children parked and none still runs.
 */
export class ChildGroup {
  private readonly ended = new Map<number, Ended>();
  private readonly parked = new Map<number, string>();
  /** Children launched and not yet seen ended or parked. */
  private readonly active = new Set<number>();
  /** Launches still under way (a drive here): each wakes the wait when it returns. */
  private readonly launching = new Set<Promise<void>>();
  private readonly reported = new Set<number>();
  /** Children parked before this wait began: the ones a resumed parent resumes (once). */
  private readonly parkedBefore = new Set<number>();
  private loaded = false;

  constructor(
    private readonly host: ChildHost,
    private readonly step: ChildStep,
    private readonly specs: ChildSpec[],
    /** Resume parked children once (the parent was just resumed or started). */
    private readonly resumeParked: boolean,
    /**
     * Parallel branches whose BRANCH_DONE the parent's log already holds (a parent rebuilt
     * mid-join): never reported again, since the machine takes each branch once.
     */
    recorded: ReadonlySet<string> = new Set(),
  ) {
    specs.forEach((s, i) => {
      if (recorded.has(String(s.part))) this.reported.add(i);
    });
  }

  private get concurrency(): number {
    if (this.step.kind === 'map') return this.step.concurrency ?? DEFAULT_MAP_CONCURRENCY;
    return Math.max(1, this.specs.length);
  }

  private async look(i: number): Promise<void> {
    const spec = this.specs[i] as ChildSpec;
    const status = await this.host.status(spec.runId);
    if (status === undefined || status === 'running') {
      // Resumed elsewhere (the breaker's auto-resume): running again, not parked.
      if (this.parked.delete(i)) {
        this.parkedBefore.delete(i);
        this.active.add(i);
      }
      return;
    }
    if (status === 'parked') {
      if (!this.parked.has(i)) {
        const snap = await this.host.state(spec);
        const p = snap.context.parked;
        this.parked.set(
          i,
          JSON.stringify({ reason: p?.reason ?? 'budget', detail: p?.detail ?? '' }),
        );
      }
      return;
    }
    if (TERMINAL.has(status)) {
      this.parked.delete(i);
      this.parkedBefore.delete(i);
      this.ended.set(i, endedOf(await this.host.state(spec), status));
    }
  }

  private async load(): Promise<void> {
    const n = this.specs.length;
    for (let from = 0; from < n; from += 64) {
      const ids = Array.from({ length: Math.min(64, n - from) }, (_, k) => from + k);
      await Promise.all(ids.map((i) => this.look(i)));
    }
    if (this.resumeParked) for (const i of this.parked.keys()) this.parkedBefore.add(i);
    this.loaded = true;
  }

  /** The next event to record for this step, or an interrupt (aborted). */
  async next(
    signal: AbortSignal,
    killed: () => Promise<{ reason: string } | null>,
  ): Promise<MachineEvent | GroupInterrupt> {
    if (!this.loaded) await this.load();
    for (;;) {
      const kill = await killed();
      if (kill !== null) {
        await this.killAll(kill.reason);
        return { type: 'KILL', reason: kill.reason };
      }
      if (signal.aborted) return { interrupt: 'aborted' };
      const branch = this.branchEvent();
      if (branch !== null) return branch;
      if (this.ended.size === this.specs.length) return this.doneEvent();
      this.launchMore(signal);
      if (this.active.size === 0 && this.parked.size > 0) return this.parkedEvent();
      await this.settle(signal);
    }
  }

  private launchMore(signal: AbortSignal): void {
    // A child parked on a limit (in this wait) holds back the rest: they would park too.
    const blocked = [...this.parked.keys()].some((i) => !this.parkedBefore.has(i));
    for (let i = 0; i < this.specs.length && this.active.size < this.concurrency; i++) {
      if (this.ended.has(i) || this.active.has(i)) continue;
      let how: 'drive' | 'resume' = 'drive';
      if (this.parked.has(i)) {
        if (!this.parkedBefore.has(i)) continue;
        this.parkedBefore.delete(i);
        this.parked.delete(i);
        how = 'resume';
      } else if (blocked) continue;
      const spec = this.specs[i] as ChildSpec;
      const p: Promise<void> = this.host
        .launch(spec, how, signal)
        .then(
          () => this.look(i),
          () => this.look(i),
        )
        .finally(() => this.launching.delete(p));
      this.launching.add(p);
      this.active.add(i);
    }
  }

  /** Waits for an active child to be driven to a stop here, or a poll interval for queued ones. */
  private async settle(signal: AbortSignal): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    let onAbort: (() => void) | undefined;
    const wake = new Promise<void>((res) => {
      timer = setTimeout(res, this.host.pollMs);
      onAbort = res;
      signal.addEventListener('abort', onAbort, { once: true });
    });
    try {
      await Promise.race([wake, ...this.launching]);
    } finally {
      clearTimeout(timer);
      if (onAbort !== undefined) signal.removeEventListener('abort', onAbort);
    }
    // Parked children too: one resumed elsewhere must not keep holding the rest back.
    await Promise.all([...this.active, ...this.parked.keys()].map((i) => this.look(i)));
    for (const i of [...this.active])
      if (this.ended.has(i) || this.parked.has(i)) this.active.delete(i);
  }

  private branchEvent(): MachineEvent | null {
    if (this.step.kind !== 'parallel') return null;
    for (const [i, e] of this.ended) {
      if (this.reported.has(i)) continue;
      this.reported.add(i);
      return {
        type: 'BRANCH_DONE',
        step: this.step.name,
        branch: String((this.specs[i] as ChildSpec).part),
        ok: e.ok,
        ...(e.ok ? { result: e.result } : { error: e.error }),
        costUsd: e.costUsd,
        iterations: e.iterations,
      };
    }
    return null;
  }

  private doneEvent(): MachineEvent {
    const collect = this.step.kind === 'map' && (this.step.onItemError ?? 'fail') === 'collect';
    const results: unknown[] = [];
    const errors: Array<{ index: number; message: string }> = [];
    let costUsd = 0;
    let iterations = 0;
    this.specs.forEach((_, i) => {
      const e = this.ended.get(i) as Ended;
      costUsd += e.costUsd;
      iterations += e.iterations;
      if (!e.ok) errors.push({ index: i, message: e.error });
      const c: Collected = e.ok ? { ok: true, value: e.result } : { ok: false, error: e.error };
      results.push(collect ? c : e.ok ? e.result : null);
    });
    return {
      type: 'CHILDREN_DONE',
      step: this.step.name,
      results,
      errors,
      failed: !collect && errors.length > 0,
      costUsd: Math.round(costUsd * 1e9) / 1e9,
      iterations,
    };
  }

  private parkedEvent(): MachineEvent {
    const [i, why] = [...this.parked.entries()][0] as [number, string];
    const { reason, detail } = JSON.parse(why) as { reason: string; detail: string };
    return {
      type: 'CHILDREN_PARKED',
      step: this.step.name,
      reason: reason as 'budget',
      detail,
      child: (this.specs[i] as ChildSpec).runId,
    };
  }

  /** Kills every child not ended: flags them all, records KILL in those nobody drives. */
  private async killAll(reason: string): Promise<void> {
    const idle = this.specs.filter((_, i) => !this.ended.has(i));
    for (let k = 0; k < idle.length; k += 16)
      await Promise.all(idle.slice(k, k + 16).map((s) => this.host.kill(s, reason)));
  }
}
