/**
 * The runtime: starts runs, drives them to a terminal or parked state, resumes and kills them.
 * Every event is appended (with the state it leads to) before the run acts on it; a run is
 * rebuilt from its log by a pure fold, so any process can pick up where another died.
 */
import { setMaxListeners } from 'node:events';
import { hostname } from 'node:os';
import { ulid } from 'ulid';
import { UsageError } from '../errors.js';
import { machineSteps } from '../machines/constructs.js';
import { attemptsOf, type RunContext, type RunLimits } from '../machines/context.js';
import type {
  ChildOf,
  MachineEvent,
  NewEnvelope,
  RunStarted,
  RunStatus,
  StoredEnvelope,
} from '../machines/events.js';
import {
  initialSnapshot,
  isTerminal,
  phaseOf,
  statusOf,
  type RunSnapshot,
} from '../machines/fold.js';
import type { BatchClient } from '../model/batchTypes.js';
import type { ModelClient } from '../model/types.js';
import { recordDefinition } from '../store/definitions.js';
import { leaseOwner, ownerIsDead } from '../store/leaseRules.js';
import type { LeaseHolder, Store } from '../store/types.js';
import { systemClock, type Clock } from './clock.js';
import type { AbandonedEffect } from './effectRun.js';
import { LocalBreakerParking, type BreakerResumeOptions } from './breakerResume.js';
import type { BreakerGate, DriverEnv, DriverHooks } from './env.js';
import { execute, isInterrupt, UserCodeError } from './execute.js';
import { KillWatcher } from './killWatch.js';
import { cancelAlone } from './batchPhase.js';
import { Batcher, type BatcherOptions } from './batcher.js';
import { LeaseKeeper, type HeldLease } from './leaseKeeper.js';
import type { ChildHost } from './children.js';
import { silentLogger, type Logger } from './logger.js';
import { releasePools, settlePools } from './pools.js';
import { RunWriter, type WriterDeps } from './runWriter.js';
import { parseRunInput, type Prepared } from './prepare.js';
import type { Step } from '../machines/pipeline.js';
import { checkNewRunId } from './runId.js';
import { LocalWake } from './localWake.js';
import { RunTracer } from './tracing.js';
import { RateGate, type RateLimitOptions } from './rateGate.js';

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
  /**
   * Pace model calls by shared provider rate limits kept in the store (per model and API key,
   * learned from the `anthropic-ratelimit-*` headers, optionally capped by `levels`): a call
   * waits for room before its ATTEMPT instead of being sent to get a 429. Default off.
   */
  rateLimits?: RateLimitOptions;
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
   * How child runs (parallel branches, map items, calls) are made and driven: by default in this
   * process; a worker queues them on its bus so any worker drives them.
   */
  children?: ChildHost;
  /**
   * How `batch: true` steps are grouped into Message Batches and polled (default: up to 1,000
   * items or 1 s, polled from 5 s doubling to 60 s). One batcher per runtime.
   */
  batch?: BatcherOptions;
  /**
   * OpenTelemetry spans for runs, steps, model attempts and effects (default true; a no-op
   * until the application registers an SDK). See `tracing.ts`.
   */
  tracing?: boolean;
  /**
   * Backoffs at least this long (ms) let the run go instead of holding it in memory: its
   * retryAt goes to the store's wake-up schedule (as a sleep's end does), its lease is released,
   * and this runtime's own wake-up sweep drives it on when due (`stopped: 'unloaded'` in the
   * result). Default: off — every backoff is waited out in the process, and `start` returns
   * only when the run ends, parks or waits. Workers turn it on (`WorkerOptions.unloadBackoffMs`).
   */
  unloadBackoffMs?: number;
  /** How often the runtime's own wake-up sweep looks for due runs (default 1 s). */
  wakeSweepMs?: number;
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
  /** What a waiting run waits for (a signal, or a time), else null. */
  waiting: NonNullable<RunContext['waiting']> | null;
  seq: number;
  /**
   * Set when this process stopped driving a run that is not finished: `fenced` (its lease
   * was lost or another process appended), `aborted` (the caller's signal), `leased` (another
   * process holds the run's lease: it drives the run, this one did nothing), `unloaded` (it
   * waits out a long backoff in the store: the wake-up sweep drives it on at its retryAt).
   */
  stopped?: 'fenced' | 'aborted' | 'leased' | 'unloaded';
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
    waiting: statusOf(snap) === 'waiting' ? (c.waiting ?? null) : null,
    seq,
    ...(stopped !== undefined ? { stopped } : {}),
    ...(holder !== undefined ? { holder } : {}),
  };
}

const stepMaps = new WeakMap<Prepared, ReadonlyMap<string, Step>>();

/** The steps that are states of the run's machine, by name (route branches included). */
function stepsOf(prepared: Prepared): ReadonlyMap<string, Step> {
  let m = stepMaps.get(prepared);
  if (m === undefined) {
    m = new Map(machineSteps(prepared.pipeline.steps).map((s) => [s.name, s]));
    stepMaps.set(prepared, m);
  }
  return m;
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
  const kind = where !== null ? steps.get(where.step)?.kind : undefined;
  if (where === null || where.phase !== 'calling' || (kind !== 'llm' && kind !== 'agent'))
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

/** Drives runs of prepared pipelines against one store. */
export class Runtime {
  readonly store: Store;
  private readonly opts: RuntimeOptions;
  private readonly clock: Clock;
  private readonly logger: Logger;
  private modelClient: ModelClient | undefined;
  private readonly kills: KillWatcher;
  /** Groups this runtime's batch steps into Message Batches and polls them. */
  private readonly batcher: Batcher;
  private readonly tracer: RunTracer | null;
  /** The run leases this runtime holds: one driver per run. */
  readonly leases: LeaseKeeper;
  /** The runs this runtime parked on an open breaker, to resume (see `autoResume`). */
  private breakerParking: LocalBreakerParking | undefined;
  /** The shared rate-limit gate, when `rateLimits` is on and the store keeps them. */
  private readonly rates: RateGate | undefined;
  /** Backoffs this long let the run go (see `unloadBackoffMs`). */
  private unloadBackoffMs: number | undefined;
  /** This runtime's own wake-up sweep, while it lets runs go and no worker wakes them. */
  private localWake: LocalWake | undefined;

  constructor(opts: RuntimeOptions) {
    this.opts = opts;
    this.rates =
      opts.rateLimits !== undefined && opts.store.rateLimits !== undefined
        ? new RateGate(opts.store.rateLimits, opts.rateLimits)
        : undefined;
    this.store = opts.store;
    this.clock = opts.clock ?? systemClock;
    this.logger = opts.logger ?? silentLogger;
    this.modelClient = opts.model;
    this.tracer = opts.tracing === false ? null : new RunTracer();
    this.kills = new KillWatcher(opts.store.control, opts.killPollMs ?? 200);
    this.batcher = new Batcher(opts.batch ?? {}, this.clock);
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
    if (opts.unloadBackoffMs !== undefined) this.unloadBackoffs(opts.unloadBackoffMs);
  }

  /**
   * Lets runs in a backoff at least `minMs` long go until their retryAt (false: waits every
   * backoff out here). Unless `ownSweep` is false (a worker, whose sweep wakes them through its
   * bus), this runtime's own sweep drives them on when due.
   */
  unloadBackoffs(minMs: number | false, ownSweep = true): void {
    this.unloadBackoffMs = minMs === false ? undefined : minMs;
    if (minMs !== false && ownSweep) {
      this.localWake ??= new LocalWake({
        store: this.store,
        logger: this.logger,
        now: () => this.clock.now(),
        drive: (prepared, runId) => this.drive(prepared, runId),
        ...(this.opts.wakeSweepMs !== undefined ? { everyMs: this.opts.wakeSweepMs } : {}),
      });
    } else {
      this.localWake?.stop();
      this.localWake = undefined;
    }
  }

  /**
   * Pipelines whose due runs this runtime's own sweep drives, besides those it has driven (a
   * process started after another let runs go: it wakes them once it knows their pipeline).
   */
  wakes(...prepared: Prepared[]): void {
    for (const p of prepared) this.localWake?.note(p);
  }

  /** The time on this runtime's clock (the clock wake-up and retry times are recorded on). */
  now(): number {
    return this.clock.now();
  }

  /** Stops this runtime's own wake-up sweep (the runs it let go stay scheduled in the store). */
  stopWaking(): void {
    this.localWake?.stop();
    this.localWake = undefined;
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

  /** The model client's batch port, if this process has a model client (a kill may not). */
  private batchClient(): BatchClient | undefined {
    try {
      return this.model().batches;
    } catch {
      // No model client here (no API key): the batch is left to end or expire on its own.
      return undefined;
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

  /** What this runtime's run writers share. */
  private get writerDeps(): WriterDeps {
    return (this.deps ??= {
      store: this.store,
      clock: this.clock,
      logger: this.logger,
      logMaxChars: this.opts.logMaxChars ?? 500,
      snapshotEvery: this.opts.snapshotEvery ?? 200,
      hooks: this.opts.hooks,
      emit: (env, pipeline) => this.emit(env, pipeline),
    });
  }
  private deps: WriterDeps | undefined;

  /** Validates the input, records `run.started`, and drives the new run. */
  async start(
    prepared: Prepared,
    args: { input: unknown; runId?: string; limits?: LimitOverrides; signal?: AbortSignal },
  ): Promise<RunResult> {
    // Drive from the state just recorded: no need to read the log back.
    const writer = await this.createRun(prepared, args);
    const t = await this.leases.take(writer.runId);
    if (!t.ok) return resultOf(writer.snapshot, 1, 'leased', t.holder);
    try {
      return await this.driveFrom(writer, t.held, args.signal);
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
  ): Promise<RunWriter> {
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
    // The deadline counts from the run's start time exactly (`run.started`'s `at`).
    return this.record(prepared, runId, input, limits, undefined, now);
  }

  /** Records `run.started` of a new run (a top-level run, or a child with its parent). */
  private async record(
    prepared: Prepared,
    runId: string,
    input: unknown,
    limits: RunLimits,
    child?: { parent: ChildOf; outputs?: Record<string, unknown> | undefined },
    now: number = this.clock.now(),
  ): Promise<RunWriter> {
    const outputs = child?.outputs;
    const snapshot = initialSnapshot(prepared.machine, {
      runId,
      input,
      limits,
      startedAt: now,
      ...(outputs !== undefined ? { outputs } : {}),
    });
    const started: RunStarted = {
      type: 'run.started',
      pipeline: prepared.pipeline.name,
      version: prepared.pipeline.version,
      machineHash: prepared.hash,
      // The graph is stored once per machine hash, not copied into every run (lean events).
      definition: null,
      module: prepared.module,
      input,
      limits,
      forkedFrom: null,
      ...(child !== undefined ? { parent: child.parent } : {}),
      ...(outputs !== undefined ? { outputs } : {}),
    };
    await recordDefinition(this.store, prepared.hash, prepared.graph);
    return RunWriter.start(this.writerDeps, prepared, runId, started, snapshot);
  }

  /**
   * Records a whole new log at once, already checked to fold (a fork), through the run writer.
   * Returns the new run's seq.
   */
  async startLog(prepared: Prepared, runId: string, log: NewEnvelope[]): Promise<number> {
    return (await RunWriter.startLog(this.writerDeps, prepared, runId, log)).seq;
  }

  /** Rebuilds a run from its log: a saved snapshot plus the events after it, or a full fold. */
  async rebuild(prepared: Prepared, runId: string): Promise<RunWriter> {
    return RunWriter.rebuild(this.writerDeps, prepared, runId);
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
      this.driveFrom(await this.rebuild(prepared, runId), held, signal),
    );
  }

  private async driveFrom(
    writer: RunWriter,
    held: HeldLease,
    callerSignal?: AbortSignal,
  ): Promise<RunResult> {
    // One signal for the drive: the caller's abort (if the caller passed a signal) or the lease
    // lost. Its child runs (a map's items, `concurrency` at once) each listen to it: no cap.
    const ac = new AbortController();
    setMaxListeners(0, ac.signal);
    const onAbort = (): void => ac.abort();
    callerSignal?.addEventListener('abort', onAbort, { once: true });
    held.lost.addEventListener('abort', onAbort, { once: true });
    if (callerSignal?.aborted === true || held.lost.aborted) ac.abort();
    let stopped = 'error';
    this.localWake?.note(writer.prepared);
    try {
      const r = await this.driveLeased(writer, held, ac.signal);
      stopped = r.stopped ?? 'done';
      this.breakerParking?.note(writer.prepared, r, writer.snapshot.context);
      return r;
    } finally {
      callerSignal?.removeEventListener('abort', onAbort);
      held.lost.removeEventListener('abort', onAbort);
      // A drive that ends short of a terminal or parked state ends its spans here.
      this.tracer?.endDrive(writer.runId, this.clock.now(), stopped);
    }
  }

  /** How this runtime makes and drives child runs: here, with the run's lease each. */
  private get childHost(): ChildHost {
    return (this.host ??= this.opts.children ?? this.localChildren());
  }
  private host: ChildHost | undefined;

  /**
   * Has child runs queued on a bus instead of driven here (a worker: any worker takes them);
   * `publish` queues a drive of one run (a resume command).
   */
  queueChildren(publish: (runId: string) => Promise<unknown>, pollMs = 250): void {
    const local = this.localChildren();
    this.host = {
      ...local,
      pollMs,
      launch: async (spec) => {
        await publish(spec.runId);
      },
    };
  }

  /** Children driven in this process (the embedded store, or a runtime without a bus). */
  localChildren(): ChildHost {
    return {
      pollMs: 1_000,
      create: async (spec, parent, limits) => {
        if ((await this.store.log.getRun(spec.runId)) !== undefined) return;
        try {
          await this.record(spec.prepared, spec.runId, spec.input, limits, {
            parent,
            outputs: spec.outputs,
          });
        } catch (e) {
          // Made by a parent that crashed after making it: the same child, not a second one.
          if (!(e instanceof UsageError && (await this.store.log.getRun(spec.runId)) !== undefined))
            throw e;
        }
      },
      launch: async (spec, how, signal) => {
        await (how === 'resume'
          ? this.resume(spec.prepared, spec.runId, {}, signal)
          : this.drive(spec.prepared, spec.runId, signal));
      },
      status: async (runId) => (await this.store.log.getRun(runId))?.status,
      state: async (spec) => (await this.rebuild(spec.prepared, spec.runId)).snapshot,
      kill: async (spec, reason) => {
        await this.kill(spec.runId, reason, spec.prepared, 0);
      },
    };
  }

  private async driveLeased(
    writer: RunWriter,
    lease: HeldLease,
    signal: AbortSignal,
  ): Promise<RunResult> {
    const { prepared, runId } = writer;
    const env: DriverEnv = {
      store: this.store,
      prepared,
      model: () => this.model(),
      clock: this.clock,
      random: this.opts.random ?? Math.random,
      logger: this.logger,
      ...(this.opts.breakers !== undefined ? { breakers: this.opts.breakers } : {}),
      ...(this.rates !== undefined ? { rates: this.rates } : {}),
      killPollMs: this.opts.killPollMs ?? 200,
      kills: this.kills,
      logMaxChars: this.opts.logMaxChars ?? 500,
      effectKey: () => writer.effectKey,
      request: null,
      batcher: this.batcher,
      children: this.childHost,
      groups: new Map(),
      lease: lease.lease,
      ...(this.opts.hooks !== undefined ? { hooks: this.opts.hooks } : {}),
      ...(this.opts.effectGraceMs !== undefined ? { effectGraceMs: this.opts.effectGraceMs } : {}),
      ...(this.opts.onEffectAbandoned !== undefined
        ? { onEffectAbandoned: this.opts.onEffectAbandoned }
        : {}),
      ...(this.unloadBackoffMs !== undefined ? { unloadBackoffMs: this.unloadBackoffMs } : {}),
    };
    const steps = stepsOf(prepared);
    // An outcome held for the next decision's append (a SIGNAL, WAKE, WAIT_TIMEOUT among them):
    // its kept signal and wake-up row go once that append is durable.
    let heldOutcome: MachineEvent | null = null;
    // The held outcome ends the `batched` wait this drive began in (see `fromBatched`).
    let heldFromBatched = false;
    const settleHeld = async (): Promise<void> => {
      const e = heldOutcome;
      heldOutcome = null;
      if (e === null) return;
      const unloaded = (fromBackoff && e.type === 'TIMER') || heldFromBatched;
      await this.doneWaiting(runId, e, writer.snapshot, unloaded);
      if (e.type === 'TIMER') fromBackoff = false;
      heldFromBatched = false;
    };
    const stop = async (why?: RunResult['stopped']): Promise<RunResult> => {
      if (why === undefined && (await writer.flush()) === 'fenced')
        return resultOf(writer.durable, writer.seq, 'fenced');
      // Both paths to 'aborted' flushed first.
      if (why === undefined || why === 'aborted') await settleHeld();
      if (why !== undefined) return resultOf(writer.durable, writer.seq, why);
      return resultOf(writer.snapshot, writer.seq);
    };
    // A run rebuilt in `calling` lost its call with the process that made it (this runtime
    // holds the lease now): record the unknown outcome at its reservation, so the caps, the
    // budget and the cost see it, and a new ATTEMPT goes through the limits again.
    const lostCall = lostCallEvent(writer.snapshot, writer.last, steps, this.clock.now());
    if (lostCall !== null) {
      const before = writer.snapshot.context;
      writer.apply(lostCall);
      await settlePools(this.store, before, lostCall.type === 'MODEL_ERROR' ? lostCall.costUsd : 0);
    }
    // A drive that begins in a backoff may have been let go there (its wake-up is scheduled):
    // the schedule is cleared once its TIMER is durable (once: later backoffs here were not).
    let fromBackoff = phaseOf(writer.snapshot)?.phase === 'backoff';
    // Likewise a drive that begins waiting on a batch (let go until its next poll): the schedule
    // is cleared once the wait's outcome is durable.
    let fromBatched = phaseOf(writer.snapshot)?.phase === 'batched';
    for (;;) {
      const snapshot = writer.snapshot;
      if (lease.lost.aborted) return stop('fenced');
      const status = statusOf(snapshot);
      // A waiting run is looked at once (its signal or time may have come), then let go.
      if (status !== 'running' && status !== 'waiting') return stop();
      if (signal.aborted) {
        if ((await writer.flush()) === 'fenced') return stop('fenced');
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
        if (outcome.interrupt === 'waiting') {
          const r = await stop();
          // Still running: let go in a long backoff, not waiting on a wait step.
          return r.status === 'running' && r.stopped === undefined
            ? { ...r, stopped: 'unloaded' }
            : r;
        }
        if ((await writer.flush()) === 'fenced') return stop('fenced');
        return stop('aborted');
      }
      const next = writer.apply(outcome);
      // A parked attempt releases its pool reservation (the call is not made).
      if (outcome.type === 'ATTEMPT' && phaseOf(next)?.phase !== 'calling') {
        await releasePools(this.store, snapshot.context, outcome.pool);
        // And the room it took under the rate limits (a probe's hold ends with it).
        const rate = env.request?.rate;
        if (rate !== undefined && this.rates !== undefined) {
          env.request = null;
          await this.rates.cancel(rate, this.clock.now());
        }
      }
      // An outcome whose next state is a pure decision (an llm or effect step's `ready`) is held
      // and appended together with that decision: the decision (ATTEMPT, EFFECT_STARTED, SKIP,
      // KILL) is still durable before the call or effect it announces, with one append less.
      const after = phaseOf(next);
      const nextKind = after !== null ? steps.get(after.step)?.kind : undefined;
      const hold =
        writer.held === 1 &&
        where.phase !== 'ready' &&
        statusOf(next) === 'running' &&
        after?.phase === 'ready' &&
        (nextKind === 'llm' || nextKind === 'effect');
      const endsBatched = fromBatched && where.phase === 'batched';
      if (endsBatched) fromBatched = false;
      if (hold) {
        heldOutcome = outcome;
        heldFromBatched = endsBatched;
        continue;
      }
      if ((await writer.flush()) === 'fenced') return stop('fenced');
      await settleHeld();
      const unloaded = (fromBackoff && outcome.type === 'TIMER') || endsBatched;
      await this.doneWaiting(runId, outcome, next, unloaded);
      if (outcome.type === 'TIMER') fromBackoff = false;
    }
  }

  /**
   * Once a wait's outcome (or the run's end) is durable: its kept signal and wake-up go (also
   * when `unloaded`: it ends a backoff or a batch wait the drive began in, where the run may
   * have been let go).
   */
  private async doneWaiting(
    runId: string,
    event: MachineEvent,
    next: RunSnapshot,
    unloaded: boolean,
  ): Promise<void> {
    if (event.type === 'SIGNAL') await this.store.waits.deleteSignal(runId, event.signal);
    if (
      unloaded ||
      event.type === 'SIGNAL' ||
      event.type === 'WAKE' ||
      event.type === 'WAIT_TIMEOUT' ||
      (event.type === 'KILL' && statusOf(next) === 'killed')
    )
      await this.store.waits.clearWaiting(runId);
  }

  private emit(env: StoredEnvelope, pipeline: string): void {
    this.tracer?.onEvent(env, pipeline);
    this.opts.onEvent?.(env);
  }

  /** Resumes a parked run with optionally raised limits (recorded as RESUME), then drives it. */
  async resume(
    prepared: Prepared,
    runId: string,
    raise: LimitOverrides = {},
    signal?: AbortSignal,
  ): Promise<RunResult> {
    return this.underLease(prepared, runId, async (lease) => {
      const writer = await this.rebuild(prepared, runId);
      const status = statusOf(writer.snapshot);
      const kill = await this.store.control.getKill(runId);
      if (kill !== undefined && !isTerminal(status)) {
        await writer.commit({ type: 'KILL', reason: kill.reason });
        await this.store.waits.clearWaiting(runId);
        return resultOf(writer.snapshot, writer.seq);
      }
      if (status !== 'parked') return this.driveFrom(writer, lease, signal);
      await writer.commit({
        type: 'RESUME',
        budgetUsd: raise.budgetUsd ?? null,
        maxIterations: raise.maxIterations ?? null,
        deadlineAt: raise.deadlineMs !== undefined ? this.clock.now() + raise.deadlineMs : null,
        ...(raise.maxInputTokens !== undefined ? { maxInputTokens: raise.maxInputTokens } : {}),
        ...(raise.maxOutputTokens !== undefined ? { maxOutputTokens: raise.maxOutputTokens } : {}),
      });
      return this.driveFrom(writer, lease, signal);
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
        const writer = await this.rebuild(prepared, runId);
        if (isTerminal(statusOf(writer.snapshot))) return statusOf(writer.snapshot);
        const before = writer.snapshot;
        await writer.commit({ type: 'KILL', reason });
        // A run let go (asleep, waiting, in a long backoff, on a batch) is woken no more.
        await this.store.waits.clearWaiting(runId);
        // One let go on a batch is killed as in a process: its reservation counts (the item may
        // still be billed), and a batch of its item alone is canceled.
        const batch = before.context.batch;
        if (phaseOf(before)?.phase === 'batched' && batch !== null && batch !== undefined) {
          await settlePools(this.store, before.context, before.context.reservedUsd);
          const client = batch.items === 1 ? this.batchClient() : undefined;
          if (client !== undefined) await cancelAlone(this.logger, client, runId, batch.batchId);
        }
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
