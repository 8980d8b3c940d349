/**
 * The runtime: starts runs, drives them to a terminal or parked state, resumes and kills them.
 * Every event is appended (with the state it leads to) before the run acts on it; a run is
 * rebuilt from its log by a pure fold, so any process can pick up where another died.
 */
import { hostname } from 'node:os';
import { ulid } from 'ulid';
import { UsageError, isVersionConflict } from '../errors.js';
import { attemptsOf, type RunContext } from '../machines/context.js';
import type { MachineEvent, NewEnvelope, RunStatus, StoredEnvelope } from '../machines/events.js';
import {
  initialSnapshot,
  isTerminal,
  phaseOf,
  statusOf,
  step as foldStep,
  summarize,
  type RunSnapshot,
} from '../machines/fold.js';
import { chain, GENESIS, nextPrev } from '../machines/chain.js';
import { foldLog, foldTail, persistable, restore } from '../machines/replay.js';
import type { ModelClient } from '../model/types.js';
import { leaseOwner, ownerIsDead } from '../store/leaseRules.js';
import type { LeaseHolder, Store } from '../store/types.js';
import { systemClock, type Clock } from './clock.js';
import { describeDecision } from './decisions.js';
import type { AbandonedEffect } from './effectRun.js';
import { LocalBreakerParking, type BreakerResumeOptions } from './breakerResume.js';
import type { BreakerGate, DriverEnv, DriverHooks } from './env.js';
import { execute, isInterrupt, UserCodeError } from './execute.js';
import { KillWatcher } from './killWatch.js';
import { LeaseKeeper, type HeldLease } from './leaseKeeper.js';
import { silentLogger, truncate, type Logger } from './logger.js';
import { parseRunInput, type Prepared } from './prepare.js';
import { checkNewRunId } from './runId.js';
import { RunTracer } from './tracing.js';

/** Options of {@link Runtime}. */
export interface RuntimeOptions {
  store: Store;
  /** The model client; created lazily by `modelFactory` when absent. */
  model?: ModelClient;
  modelFactory?: () => ModelClient;
  clock?: Clock;
  random?: () => number;
  logger?: Logger;
  breakers?: BreakerGate;
  /** How often a waiting or calling run checks its kill flag (default 200 ms). */
  killPollMs?: number;
  /** Save a snapshot every N events (default 200). */
  snapshotEvery?: number;
  /** Truncation of inputs and outputs in log lines (default 500 chars). */
  logMaxChars?: number;
  /** Called after every append (for `--json` output and progress lines). */
  onEvent?: (env: StoredEnvelope) => void;
  hooks?: DriverHooks;
  /**
   * How long a run's lease lasts without renewal (default 15 s; renewed every third of it).
   * A process that dies is replaced at once on the same host (its pid is gone), after this
   * long elsewhere; a live but silent one (a stop-the-world pause) loses the run after it.
   */
  leaseTtlMs?: number;
  /** This runtime's lease owner id (default `host/pid/random`). */
  owner?: string;
  /**
   * When another process holds a run's lease and is not known to be alive on this host:
   * wait up to one TTL for it to expire before giving up (default true; workers say false
   * and let the command come back instead).
   */
  waitForLease?: boolean;
  /** How long an effect may ignore its aborted signal (timeout, kill) before it is abandoned (default 5 s). */
  effectGraceMs?: number;
  /** Told when an effect is abandoned after its grace (for metrics). */
  onEffectAbandoned?: (e: AbandonedEffect) => void;
  /**
   * Runs this runtime leaves parked by an open breaker are resumed by it once the breaker lets
   * calls through again (one as the half-open probe, then the rest at `perSecond`); `false`
   * leaves them parked until resumed by hand. Default on when `breakers` is set.
   */
  autoResume?: BreakerResumeOptions | false;
  /**
   * OpenTelemetry spans for runs, steps, model attempts and effects (default true; a no-op
   * until the application registers an SDK). See `tracing.ts`.
   */
  tracing?: boolean;
}

/**
 * Per-run limit overrides (`--budget-usd`, `--max-iterations`, `--deadline`,
 * `--max-input-tokens`, `--max-output-tokens`).
 */
export interface LimitOverrides {
  budgetUsd?: number;
  maxIterations?: number;
  deadlineMs?: number;
  maxInputTokens?: number;
  maxOutputTokens?: number;
}

/** How a drive ended. */
export interface RunResult {
  runId: string;
  status: RunStatus;
  costUsd: number;
  outputs: Record<string, unknown>;
  error: RunContext['error'];
  parked: RunContext['parked'];
  killed: RunContext['killed'];
  seq: number;
  /**
   * Set when this process stopped driving a run that is not finished: `fenced` (its lease
   * was lost or another process appended), `aborted` (the caller's signal), `leased` (another
   * process holds the run's lease: it drives the run, this one did nothing).
   */
  stopped?: 'fenced' | 'aborted' | 'leased';
  /** Who holds the lease, when `stopped` is `leased`. */
  holder?: LeaseHolder;
}

const DEFAULT_MAX_ITERATIONS = 50;

function resultOf(
  snap: RunSnapshot,
  seq: number,
  stopped?: RunResult['stopped'],
  holder?: LeaseHolder,
): RunResult {
  const c = snap.context;
  return {
    runId: c.runId,
    status: statusOf(snap),
    costUsd: c.costUsd,
    outputs: c.outputs,
    error: c.error,
    parked: c.parked,
    killed: c.killed,
    seq,
    ...(stopped !== undefined ? { stopped } : {}),
    ...(holder !== undefined ? { holder } : {}),
  };
}

/** True when `holder` is a live process on this host (its pid exists): no point waiting. */
function isLocalAndAlive(holder: LeaseHolder): boolean {
  const [host, pid] = holder.owner.split('/');
  return host === hostname() && Number(pid) > 0 && !ownerIsDead(holder.owner);
}

/**
 * The event that records a model call lost with the process that made it: a run rebuilt in
 * `calling` (its ATTEMPT the last event) — or null when the run is anywhere else.
 */
function lostCallEvent(
  snap: RunSnapshot,
  last: StoredEnvelope | undefined,
  steps: ReadonlyMap<string, { kind: string; name: string }>,
  now: number,
): MachineEvent | null {
  if (statusOf(snap) !== 'running') return null;
  const where = phaseOf(snap);
  if (where === null || where.phase !== 'calling' || steps.get(where.step)?.kind !== 'llm')
    return null;
  const attempt = last?.event.type === 'ATTEMPT' ? last.event : null;
  return {
    type: 'MODEL_ERROR',
    step: where.step,
    attempt: Math.max(1, attemptsOf(snap.context, where.step).calls),
    requestId: null,
    model: attempt?.model ?? 'unknown',
    status: null,
    kind: 'lost',
    retryable: true,
    message:
      'the process that made this call stopped before recording its outcome: unknown whether the provider billed it, counted at its reservation (unconfirmed)',
    delayMs: 0,
    retryAt: now,
    usage: null,
    costUsd: attempt?.estimate.usd ?? 0,
    durationMs: 0,
    unconfirmed: true,
  };
}

/** A run as rebuilt from its log: where it is, its last seq and envelope, its chain head. */
interface Rebuilt {
  snapshot: RunSnapshot;
  seq: number;
  last: StoredEnvelope | undefined;
  /** The `prev` the next envelope carries (hash chain). */
  head: string;
}

/** Drives runs of prepared pipelines against one store. */
export class Runtime {
  readonly store: Store;
  private readonly opts: RuntimeOptions;
  private readonly clock: Clock;
  private readonly logger: Logger;
  private modelClient: ModelClient | undefined;
  private readonly kills: KillWatcher;
  private readonly tracer: RunTracer | null;
  /** The run leases this runtime holds: one driver per run. */
  readonly leases: LeaseKeeper;
  /** The runs this runtime parked on an open breaker, to resume (see `autoResume`). */
  private breakerParking: LocalBreakerParking | undefined;

  constructor(opts: RuntimeOptions) {
    this.opts = opts;
    this.store = opts.store;
    this.clock = opts.clock ?? systemClock;
    this.logger = opts.logger ?? silentLogger;
    this.modelClient = opts.model;
    this.tracer = opts.tracing === false ? null : new RunTracer();
    this.kills = new KillWatcher(opts.store.control, opts.killPollMs ?? 200);
    this.leases = new LeaseKeeper(
      opts.store.leases,
      opts.owner ?? leaseOwner(),
      opts.leaseTtlMs ?? 15_000,
      this.logger,
    );
    if (opts.breakers !== undefined && opts.autoResume !== false)
      this.breakerParking = new LocalBreakerParking(
        opts.store,
        () => this.clock.now(),
        this.logger,
        (prepared, runId) => this.resume(prepared, runId),
        opts.autoResume,
      );
  }

  /**
   * Stops resuming breaker-parked runs here: a worker calls it, since it resumes them through
   * its bus (any worker may, and a run it parked may outlive it).
   */
  handOffBreakerResume(): void {
    this.breakerParking?.stop();
    this.breakerParking = undefined;
  }

  /**
   * Takes the run's lease. When another process holds it and is not a live process on this
   * host, waits (once, up to a TTL) for it to expire if `waitForLease` allows.
   */
  private async takeLease(
    runId: string,
  ): Promise<{ ok: true; held: HeldLease } | { ok: false; holder: LeaseHolder }> {
    let r = await this.leases.take(runId);
    if (!r.ok && this.opts.waitForLease !== false && !isLocalAndAlive(r.holder)) {
      this.logger.info(
        {
          runId,
          decision: 'wait',
          reason: `lease held by ${r.holder.owner} (token ${r.holder.token}): waiting ${Math.ceil(r.retryInMs / 1000)} s to see whether it renews`,
        },
        'waiting for lease',
      );
      await new Promise((res) => setTimeout(res, r.ok ? 0 : r.retryInMs + 50));
      r = await this.leases.take(runId);
    }
    if (r.ok) return r;
    this.logger.info(
      {
        runId,
        decision: 'leave',
        reason: `driven by ${r.holder.owner} (lease token ${r.holder.token}): not driving it here`,
      },
      'run leased elsewhere',
    );
    return { ok: false, holder: r.holder };
  }

  /** Runs `f` under the run's lease, or returns the run as it stands, `stopped: 'leased'`. */
  private async underLease(
    prepared: Prepared,
    runId: string,
    f: (held: HeldLease) => Promise<RunResult>,
  ): Promise<RunResult> {
    const t = await this.takeLease(runId);
    if (!t.ok) {
      const { snapshot, seq } = await this.rebuild(prepared, runId);
      return resultOf(snapshot, seq, 'leased', t.holder);
    }
    try {
      return await f(t.held);
    } finally {
      await this.leases.release(t.held);
    }
  }

  private model(): ModelClient {
    if (this.modelClient === undefined) {
      if (this.opts.modelFactory === undefined) {
        throw new UsageError(
          'this pipeline calls a model but no model client is configured: set ANTHROPIC_API_KEY',
        );
      }
      this.modelClient = this.opts.modelFactory();
    }
    return this.modelClient;
  }

  /** Validates the input, records `run.started`, and drives the new run. */
  async start(
    prepared: Prepared,
    args: { input: unknown; runId?: string; limits?: LimitOverrides; signal?: AbortSignal },
  ): Promise<RunResult> {
    // Drive from the state just recorded: no need to read the log back.
    const { runId, snapshot, head } = await this.createRun(prepared, args);
    const t = await this.leases.take(runId);
    if (!t.ok) return resultOf(snapshot, 1, 'leased', t.holder);
    try {
      return await this.driveFrom(
        prepared,
        runId,
        { snapshot, seq: 1, last: undefined, head },
        t.held,
        args.signal,
      );
    } finally {
      await this.leases.release(t.held);
    }
  }

  /** Validates the input and records `run.started` without driving; returns the run id. */
  async create(
    prepared: Prepared,
    args: { input: unknown; runId?: string; limits?: LimitOverrides },
  ): Promise<string> {
    return (await this.createRun(prepared, args)).runId;
  }

  private async createRun(
    prepared: Prepared,
    args: { input: unknown; runId?: string; limits?: LimitOverrides },
  ): Promise<{ runId: string; snapshot: RunSnapshot; head: string }> {
    const { pipeline } = prepared;
    const input = parseRunInput(pipeline, args.input);
    const runId = checkNewRunId(args.runId ?? ulid());
    const now = this.clock.now();
    const l = { ...pipeline.limits, ...args.limits };
    const limits = {
      budgetUsd: l.budgetUsd ?? null,
      maxIterations: l.maxIterations ?? DEFAULT_MAX_ITERATIONS,
      deadlineAt: l.deadlineMs !== undefined ? now + l.deadlineMs : null,
      maxInputTokens: l.maxInputTokens ?? null,
      maxOutputTokens: l.maxOutputTokens ?? null,
    };
    const snap = initialSnapshot(prepared.machine, {
      runId,
      input,
      limits,
      startedAt: now,
    });
    const env: NewEnvelope = {
      v: 1,
      at: now,
      event: {
        type: 'run.started',
        pipeline: pipeline.name,
        version: pipeline.version,
        machineHash: prepared.hash,
        definition: prepared.graph,
        module: prepared.module,
        input,
        limits,
        forkedFrom: null,
      },
      state: summarize(snap),
    };
    const { envs: chained, head } = chain([env], GENESIS, 1);
    const linked = chained[0] as NewEnvelope;
    try {
      await this.store.log.append(runId, [linked], 'no_stream');
    } catch (e) {
      if (isVersionConflict(e))
        throw new UsageError(
          `run id '${runId}' already exists: resume it with \`plumbline resume ${runId}\` or pick another id`,
        );
      throw e;
    }
    this.opts.hooks?.afterAppend?.(runId, 1, 'run.started');
    this.logger.info(
      {
        runId,
        pipeline: pipeline.name,
        seq: 1,
        event: 'run.started',
        decision: 'start',
        reason: 'new run',
        input: truncate(input, this.opts.logMaxChars ?? 500),
      },
      'run started',
    );
    this.emit(runId, 1, linked, pipeline.name);
    return { runId, snapshot: snap, head };
  }

  /** Rebuilds a run from its log: a saved snapshot plus the events after it, or a full fold. */
  async rebuild(prepared: Prepared, runId: string): Promise<Rebuilt> {
    const saved = await this.store.log.loadSnapshot(runId);
    if (saved !== undefined && saved.machineHash === prepared.hash) {
      // From the snapshot's own seq: the event at it tells a running effect its key.
      const tail = await this.store.log.read(runId, saved.seq);
      if (tail[0]?.seq === saved.seq) {
        const folded = foldTail(
          prepared.machine,
          runId,
          { seq: saved.seq, snapshot: restore(prepared.machine, saved.snapshot) },
          tail,
        );
        const last = tail[tail.length - 1];
        return { snapshot: folded.snapshot, seq: folded.seq, last, head: nextPrev(last) };
      }
    }
    const events = await this.store.log.read(runId, 1);
    const folded = foldLog(prepared.machine, prepared.hash, runId, events);
    const last = events[events.length - 1];
    return { snapshot: folded.snapshot, seq: folded.seq, last, head: nextPrev(last) };
  }

  /**
   * Drives a run from wherever its log says it is, until it is terminal or parked — under the
   * run's lease: when another live process holds it, nothing is done (`stopped: 'leased'`).
   */
  async drive(
    prepared: Prepared,
    runId: string,
    signal: AbortSignal = new AbortController().signal,
  ): Promise<RunResult> {
    return this.underLease(prepared, runId, async (held) =>
      this.driveFrom(prepared, runId, await this.rebuild(prepared, runId), held, signal),
    );
  }

  private async driveFrom(
    prepared: Prepared,
    runId: string,
    rebuilt: Rebuilt,
    held: HeldLease,
    callerSignal: AbortSignal = new AbortController().signal,
  ): Promise<RunResult> {
    // One signal for the drive: the caller's abort or the lease lost.
    const ac = new AbortController();
    const onAbort = (): void => ac.abort();
    callerSignal.addEventListener('abort', onAbort, { once: true });
    held.lost.addEventListener('abort', onAbort, { once: true });
    if (callerSignal.aborted || held.lost.aborted) ac.abort();
    let stopped = 'error';
    try {
      const r = await this.driveLeased(prepared, runId, rebuilt, held, ac.signal);
      stopped = r.stopped ?? 'done';
      this.breakerParking?.note(prepared, r);
      return r;
    } finally {
      callerSignal.removeEventListener('abort', onAbort);
      held.lost.removeEventListener('abort', onAbort);
      // A drive that ends short of a terminal or parked state ends its spans here.
      this.tracer?.endDrive(runId, this.clock.now(), stopped);
    }
  }

  private async driveLeased(
    prepared: Prepared,
    runId: string,
    rebuilt: Rebuilt,
    lease: HeldLease,
    signal: AbortSignal,
  ): Promise<RunResult> {
    let { snapshot, seq, head } = rebuilt;
    const last = rebuilt.last;
    const env: DriverEnv = {
      store: this.store,
      prepared,
      model: () => this.model(),
      clock: this.clock,
      random: this.opts.random ?? Math.random,
      logger: this.logger,
      ...(this.opts.breakers !== undefined ? { breakers: this.opts.breakers } : {}),
      killPollMs: this.opts.killPollMs ?? 200,
      kills: this.kills,
      logMaxChars: this.opts.logMaxChars ?? 500,
      lastEffectKey: last?.event.type === 'EFFECT_STARTED' ? last.event.key : null,
      lease: lease.lease,
      ...(this.opts.hooks !== undefined ? { hooks: this.opts.hooks } : {}),
      ...(this.opts.effectGraceMs !== undefined ? { effectGraceMs: this.opts.effectGraceMs } : {}),
      ...(this.opts.onEffectAbandoned !== undefined
        ? { onEffectAbandoned: this.opts.onEffectAbandoned }
        : {}),
    };
    const steps = new Map(prepared.pipeline.steps.map((s) => [s.name, s]));
    // An outcome whose next state is a pure decision (an llm or effect step's `ready`) is held
    // and appended together with that decision: the decision (ATTEMPT, EFFECT_STARTED, SKIP,
    // KILL) is still durable before the call or effect it announces, with one append less.
    let held: Array<{ event: MachineEvent; next: RunSnapshot }> = [];
    const flush = async (): Promise<'ok' | 'fenced'> => {
      if (held.length === 0) return 'ok';
      const batch = held;
      held = [];
      try {
        ({ seq, head } = await this.appendEvents(runId, seq, head, batch, prepared));
      } catch (e) {
        if (!isVersionConflict(e)) throw e;
        this.logger.warn(
          {
            runId,
            seq,
            event: batch.map((b) => b.event.type).join(','),
            decision: 'stop',
            reason: 'another process appended to this run (fenced)',
          },
          'fenced',
        );
        return 'fenced';
      }
      const every = this.opts.snapshotEvery ?? 200;
      if (Math.floor(seq / every) !== Math.floor((seq - batch.length) / every))
        await this.store.log.saveSnapshot(runId, {
          seq,
          machineHash: prepared.hash,
          snapshot: persistable(snapshot),
        });
      return 'ok';
    };
    const durable = { snapshot, seq };
    const stop = async (why?: RunResult['stopped']): Promise<RunResult> => {
      if (why === undefined && (await flush()) === 'fenced')
        return resultOf(durable.snapshot, durable.seq, 'fenced');
      if (why !== undefined) return resultOf(durable.snapshot, durable.seq, why);
      return resultOf(snapshot, seq);
    };
    // A run rebuilt in `calling` lost its call with the process that made it (this runtime
    // holds the lease now): record the unknown outcome at its reservation, so the caps, the
    // budget and the cost see it, and a new ATTEMPT goes through the limits again.
    const lostCall = lostCallEvent(snapshot, last, steps, this.clock.now());
    if (lostCall !== null) {
      const next = foldStep(prepared.machine, snapshot, lostCall);
      if (next !== snapshot) {
        held.push({ event: lostCall, next });
        snapshot = next;
      }
    }
    for (;;) {
      if (lease.lost.aborted) return stop('fenced');
      if (statusOf(snapshot) !== 'running') return stop();
      if (signal.aborted) {
        if ((await flush()) === 'fenced') return stop('fenced');
        durable.snapshot = snapshot;
        durable.seq = seq;
        return stop('aborted');
      }
      const where = phaseOf(snapshot);
      const stepDef = where !== null ? steps.get(where.step) : undefined;
      if (where === null || stepDef === undefined)
        throw new Error(
          `internal: run ${runId} is in an unknown state ${JSON.stringify(snapshot.value)}`,
        );
      // A call or an effect happens only under the run's lease, checked right before it (and
      // renewed first when its last renewal is old: after a long pause it may be gone).
      if (!(await this.leases.ensure(lease))) return stop('fenced');
      let outcome;
      try {
        outcome = await execute(env, stepDef, where.phase, snapshot, signal);
      } catch (e) {
        // A bug in pipeline code outside a step function (prompt, key, skip) fails the step;
        // anything else (the store, the breaker) is the process's trouble: let it propagate so
        // the command is retried or the operator sees it, and the run stays resumable.
        if (!(e instanceof UserCodeError)) throw e;
        outcome = { type: 'STEP_FAILED' as const, step: stepDef.name, message: e.message };
      }
      if (isInterrupt(outcome)) {
        if (outcome.interrupt === 'fenced' || lease.lost.aborted) return stop('fenced');
        if ((await flush()) === 'fenced') return stop('fenced');
        durable.snapshot = snapshot;
        durable.seq = seq;
        return stop('aborted');
      }
      const next = foldStep(prepared.machine, snapshot, outcome);
      if (next === snapshot)
        throw new Error(
          `internal: ${outcome.type} not accepted in state ${JSON.stringify(snapshot.value)}`,
        );
      if (outcome.type === 'EFFECT_STARTED') env.lastEffectKey = outcome.key;
      held.push({ event: outcome, next });
      snapshot = next;
      const after = phaseOf(next);
      const nextKind = after !== null ? steps.get(after.step)?.kind : undefined;
      const hold =
        held.length === 1 &&
        where.phase !== 'ready' &&
        statusOf(next) === 'running' &&
        after?.phase === 'ready' &&
        (nextKind === 'llm' || nextKind === 'effect');
      if (hold) continue;
      if ((await flush()) === 'fenced') return stop('fenced');
      durable.snapshot = snapshot;
      durable.seq = seq;
    }
  }

  /** Appends events in one append; then hooks, listeners and decision lines, event by event. */
  private async appendEvents(
    runId: string,
    seq: number,
    head: string,
    batch: ReadonlyArray<{ event: MachineEvent; next: RunSnapshot }>,
    prepared: Prepared,
  ): Promise<{ seq: number; head: string }> {
    const at = this.clock.now();
    const { envs, head: after } = chain(
      batch.map((b) => ({ v: 1 as const, at, event: b.event, state: summarize(b.next) })),
      head,
      seq + 1,
    );
    const last = await this.store.log.append(runId, envs, seq);
    envs.forEach((e, i) => {
      const s = seq + i + 1;
      this.opts.hooks?.afterAppend?.(runId, s, e.event.type);
      this.emit(runId, s, e, prepared.pipeline.name);
      this.logDecision(
        prepared,
        runId,
        s,
        e.event as MachineEvent,
        (batch[i] as { next: RunSnapshot }).next,
      );
    });
    return { seq: last, head: after };
  }

  /** Appends one event after the rebuilt run (a RESUME or a KILL), logging its decision. */
  private async appendOne(
    prepared: Prepared,
    runId: string,
    rebuilt: Rebuilt,
    event: MachineEvent,
    next: RunSnapshot,
  ): Promise<{ seq: number; head: string }> {
    return this.appendEvents(runId, rebuilt.seq, rebuilt.head, [{ event, next }], prepared);
  }

  private emit(runId: string, seq: number, env: NewEnvelope, pipeline: string): void {
    const stored = { ...env, runId, seq };
    this.tracer?.onEvent(stored, pipeline);
    this.opts.onEvent?.(stored);
  }

  private logDecision(
    prepared: Prepared,
    runId: string,
    seq: number,
    event: MachineEvent,
    next: RunSnapshot,
  ): void {
    const { decision, reason } = describeDecision(event, next);
    const max = this.opts.logMaxChars ?? 500;
    const stepName = 'step' in event ? event.step : next.context.step;
    const attempt = 'attempt' in event ? event.attempt : undefined;
    const output =
      event.type === 'MODEL_RESPONSE'
        ? event.output
        : event.type === 'EFFECT_DONE'
          ? event.result
          : event.type === 'STEP_DONE'
            ? event.output
            : undefined;
    this.logger.info(
      {
        runId,
        pipeline: prepared.pipeline.name,
        step: stepName,
        attempt,
        seq,
        event: event.type,
        decision,
        reason,
        state: next.value,
        costUsd: next.context.costUsd,
        ...(output !== undefined ? { output: truncate(output, max) } : {}),
      },
      `${decision}: ${reason}`,
    );
    const status = statusOf(next);
    if (isTerminal(status) || status === 'parked') {
      this.logger.info(
        {
          runId,
          pipeline: prepared.pipeline.name,
          seq,
          event: event.type,
          decision: status,
          reason: status === 'completed' ? 'all steps done' : reason,
          costUsd: next.context.costUsd,
        },
        `run ${status}`,
      );
    }
  }

  /** Resumes a parked run with optionally raised limits (recorded as RESUME), then drives it. */
  async resume(
    prepared: Prepared,
    runId: string,
    raise: LimitOverrides = {},
    signal?: AbortSignal,
  ): Promise<RunResult> {
    return this.underLease(prepared, runId, async (lease) => {
      const rebuilt = await this.rebuild(prepared, runId);
      const { snapshot } = rebuilt;
      const kill = await this.store.control.getKill(runId);
      if (kill !== undefined && !isTerminal(statusOf(snapshot))) {
        const event: MachineEvent = { type: 'KILL', reason: kill.reason };
        const next = foldStep(prepared.machine, snapshot, event);
        const { seq } = await this.appendOne(prepared, runId, rebuilt, event, next);
        return resultOf(next, seq);
      }
      if (statusOf(snapshot) !== 'parked')
        return this.driveFrom(prepared, runId, rebuilt, lease, signal);
      const event: MachineEvent = {
        type: 'RESUME',
        budgetUsd: raise.budgetUsd ?? null,
        maxIterations: raise.maxIterations ?? null,
        deadlineAt: raise.deadlineMs !== undefined ? this.clock.now() + raise.deadlineMs : null,
        ...(raise.maxInputTokens !== undefined ? { maxInputTokens: raise.maxInputTokens } : {}),
        ...(raise.maxOutputTokens !== undefined ? { maxOutputTokens: raise.maxOutputTokens } : {}),
      };
      const next = foldStep(prepared.machine, snapshot, event);
      const { seq, head } = await this.appendOne(prepared, runId, rebuilt, event, next);
      return this.driveFrom(
        prepared,
        runId,
        { snapshot: next, seq, last: undefined, head },
        lease,
        signal,
      );
    });
  }

  /**
   * Sets the durable kill flag. A process driving the run sees it within `killPollMs` and records
   * KILL itself; if none does within `graceMs` (a parked or stranded run), KILL is recorded here.
   * Returns the run's status afterwards.
   */
  async kill(
    runId: string,
    reason: string,
    prepared?: Prepared,
    graceMs = 1_500,
  ): Promise<RunStatus> {
    const run = await this.store.log.getRun(runId);
    if (run === undefined)
      throw new UsageError(`unknown run id '${runId}': list runs with \`plumbline runs\``);
    await this.store.control.setKill({ runId, reason, at: this.clock.now() });
    if (isTerminal(run.status)) return run.status;
    const recordHere = async (): Promise<RunStatus | null> => {
      if (prepared === undefined) return null;
      // Only under the run's lease: a process driving the run records KILL itself.
      const t = await this.leases.take(runId);
      if (!t.ok) return null;
      try {
        const rebuilt = await this.rebuild(prepared, runId);
        if (isTerminal(statusOf(rebuilt.snapshot))) return statusOf(rebuilt.snapshot);
        const event: MachineEvent = { type: 'KILL', reason };
        const next = foldStep(prepared.machine, rebuilt.snapshot, event);
        await this.appendOne(prepared, runId, rebuilt, event, next);
        return 'killed';
      } finally {
        await this.leases.release(t.held);
      }
    };
    const here = await recordHere();
    if (here !== null) return here;
    const until = Date.now() + graceMs;
    while (Date.now() < until) {
      await new Promise((r) => setTimeout(r, 100));
      const now = await this.store.log.getRun(runId);
      if (now !== undefined && now.status !== 'running' && now.status !== 'parked')
        return now.status;
    }
    return (await recordHere()) ?? (await this.store.log.getRun(runId))?.status ?? run.status;
  }
}
