/**
 * The runtime: starts runs, drives them to a terminal or parked state, resumes and kills them.
 * Every event is appended (with the state it leads to) before the run acts on it; a run is
 * rebuilt from its log by a pure fold, so any process can pick up where another died.
 */
import { ulid } from 'ulid';
import { UsageError, isVersionConflict } from '../errors.js';
import type { RunContext } from '../machines/context.js';
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
import { foldLog, foldTail, persistable, restore } from '../machines/replay.js';
import type { ModelClient } from '../model/types.js';
import type { Store } from '../store/types.js';
import { systemClock, type Clock } from './clock.js';
import { describeDecision } from './decisions.js';
import type { BreakerGate, DriverEnv, DriverHooks } from './env.js';
import { execute, isInterrupt, UserCodeError } from './execute.js';
import { KillWatcher } from './killWatch.js';
import { silentLogger, truncate, type Logger } from './logger.js';
import type { Prepared } from './prepare.js';

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
}

/** Per-run limit overrides (`--budget-usd`, `--max-iterations`, `--deadline`). */
export interface LimitOverrides {
  budgetUsd?: number;
  maxIterations?: number;
  deadlineMs?: number;
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
  /** Set when this process stopped driving a run that is not finished. */
  stopped?: 'fenced' | 'aborted';
}

const DEFAULT_MAX_ITERATIONS = 50;

function resultOf(snap: RunSnapshot, seq: number, stopped?: RunResult['stopped']): RunResult {
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

  constructor(opts: RuntimeOptions) {
    this.opts = opts;
    this.store = opts.store;
    this.clock = opts.clock ?? systemClock;
    this.logger = opts.logger ?? silentLogger;
    this.modelClient = opts.model;
    this.kills = new KillWatcher(opts.store.control, opts.killPollMs ?? 200);
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
    const { runId, snapshot } = await this.createRun(prepared, args);
    return this.driveFrom(prepared, runId, { snapshot, seq: 1, last: undefined }, args.signal);
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
  ): Promise<{ runId: string; snapshot: RunSnapshot }> {
    const { pipeline } = prepared;
    const parsed = pipeline.input.safeParse(args.input);
    if (!parsed.success) {
      const issues = parsed.error.issues
        .map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`)
        .join('; ');
      throw new UsageError(
        `input does not match pipeline '${pipeline.name}' input schema: ${issues}`,
      );
    }
    const runId = args.runId ?? ulid();
    if (!/^[A-Za-z0-9_-]{1,128}$/.test(runId)) {
      throw new UsageError(`run id '${runId}' is invalid: use 1-128 letters, digits, '-' or '_'`);
    }
    const now = this.clock.now();
    const l = { ...pipeline.limits, ...args.limits };
    const limits = {
      budgetUsd: l.budgetUsd ?? null,
      maxIterations: l.maxIterations ?? DEFAULT_MAX_ITERATIONS,
      deadlineAt: l.deadlineMs !== undefined ? now + l.deadlineMs : null,
    };
    const snap = initialSnapshot(prepared.machine, {
      runId,
      input: parsed.data,
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
        input: parsed.data,
        limits,
        forkedFrom: null,
      },
      state: summarize(snap),
    };
    try {
      await this.store.log.append(runId, [env], 'no_stream');
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
        input: truncate(parsed.data, this.opts.logMaxChars ?? 500),
      },
      'run started',
    );
    this.emit(runId, 1, env);
    return { runId, snapshot: snap };
  }

  /** Rebuilds a run from its log: a saved snapshot plus the events after it, or a full fold. */
  async rebuild(
    prepared: Prepared,
    runId: string,
  ): Promise<{ snapshot: RunSnapshot; seq: number; last: StoredEnvelope | undefined }> {
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
        return { snapshot: folded.snapshot, seq: folded.seq, last: tail[tail.length - 1] };
      }
    }
    const events = await this.store.log.read(runId, 1);
    const folded = foldLog(prepared.machine, prepared.hash, runId, events);
    return { snapshot: folded.snapshot, seq: folded.seq, last: events[events.length - 1] };
  }

  /** Drives a run from wherever its log says it is, until it is terminal or parked. */
  async drive(
    prepared: Prepared,
    runId: string,
    signal: AbortSignal = new AbortController().signal,
  ): Promise<RunResult> {
    return this.driveFrom(prepared, runId, await this.rebuild(prepared, runId), signal);
  }

  private async driveFrom(
    prepared: Prepared,
    runId: string,
    rebuilt: { snapshot: RunSnapshot; seq: number; last: StoredEnvelope | undefined },
    signal: AbortSignal = new AbortController().signal,
  ): Promise<RunResult> {
    let { snapshot, seq } = rebuilt;
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
      ...(this.opts.hooks !== undefined ? { hooks: this.opts.hooks } : {}),
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
        seq = await this.appendEvents(runId, seq, batch, prepared);
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
    for (;;) {
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
    batch: ReadonlyArray<{ event: MachineEvent; next: RunSnapshot }>,
    prepared: Prepared,
  ): Promise<number> {
    const at = this.clock.now();
    const envs: NewEnvelope[] = batch.map((b) => ({
      v: 1,
      at,
      event: b.event,
      state: summarize(b.next),
    }));
    const last = await this.store.log.append(runId, envs, seq);
    envs.forEach((e, i) => {
      const s = seq + i + 1;
      this.opts.hooks?.afterAppend?.(runId, s, e.event.type);
      this.emit(runId, s, e);
      this.logDecision(
        prepared,
        runId,
        s,
        e.event as MachineEvent,
        (batch[i] as { next: RunSnapshot }).next,
      );
    });
    return last;
  }

  private async appendEvent(
    runId: string,
    seq: number,
    event: MachineEvent,
    next: RunSnapshot,
  ): Promise<number> {
    const env: NewEnvelope = { v: 1, at: this.clock.now(), event, state: summarize(next) };
    const newSeq = await this.store.log.append(runId, [env], seq);
    this.opts.hooks?.afterAppend?.(runId, newSeq, event.type);
    this.emit(runId, newSeq, env);
    return newSeq;
  }

  private emit(runId: string, seq: number, env: NewEnvelope): void {
    this.opts.onEvent?.({ ...env, runId, seq });
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
    const { snapshot, seq } = await this.rebuild(prepared, runId);
    const kill = await this.store.control.getKill(runId);
    if (kill !== undefined && statusOf(snapshot) !== 'killed') {
      const next = foldStep(prepared.machine, snapshot, { type: 'KILL', reason: kill.reason });
      const s = await this.appendEvent(runId, seq, { type: 'KILL', reason: kill.reason }, next);
      return resultOf(next, s);
    }
    if (statusOf(snapshot) === 'parked') {
      const event: MachineEvent = {
        type: 'RESUME',
        budgetUsd: raise.budgetUsd ?? null,
        maxIterations: raise.maxIterations ?? null,
        deadlineAt: raise.deadlineMs !== undefined ? this.clock.now() + raise.deadlineMs : null,
      };
      const next = foldStep(prepared.machine, snapshot, event);
      await this.appendEvent(runId, seq, event, next);
      this.logDecision(prepared, runId, seq + 1, event, next);
    }
    return this.drive(prepared, runId, signal);
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
    if (run.status === 'running') {
      const until = Date.now() + graceMs;
      while (Date.now() < until) {
        await new Promise((r) => setTimeout(r, 100));
        const now = await this.store.log.getRun(runId);
        if (now !== undefined && now.status !== 'running') return now.status;
      }
    }
    if (prepared === undefined) return run.status;
    for (let i = 0; i < 3; i++) {
      const { snapshot, seq } = await this.rebuild(prepared, runId);
      if (statusOf(snapshot) === 'killed' || isTerminal(statusOf(snapshot)))
        return statusOf(snapshot);
      const next = foldStep(prepared.machine, snapshot, { type: 'KILL', reason });
      try {
        await this.appendEvent(runId, seq, { type: 'KILL', reason }, next);
        this.logDecision(prepared, runId, seq + 1, { type: 'KILL', reason }, next);
        return 'killed';
      } catch (e) {
        if (!isVersionConflict(e)) throw e;
      }
    }
    return (await this.store.log.getRun(runId))?.status ?? run.status;
  }
}
