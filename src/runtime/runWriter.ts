/**
 * The one place a run is written: a per-run writer holding the run's state (snapshot, seq, the
 * hash-chain head) that folds each event through the machine, appends it with the expected
 * version, then emits it, logs its decision and saves a snapshot every N events. Starting a run,
 * driving it, resuming, killing and forking all write through it, so they cannot drift.
 */
import { isVersionConflict, UsageError } from '../errors.js';
import { chain, GENESIS, link, nextPrev } from '../machines/chain.js';
import type { MachineEvent, NewEnvelope, RunStarted, StoredEnvelope } from '../machines/events.js';
import {
  isTerminal,
  statusOf,
  step as foldStep,
  summarize,
  type RunSnapshot,
} from '../machines/fold.js';
import { foldLog, foldTail, persistable, restore } from '../machines/replay.js';
import type { Store } from '../store/types.js';
import type { Clock } from './clock.js';
import { describeDecision } from './decisions.js';
import type { DriverHooks } from './env.js';
import { truncate, type Logger } from './logger.js';
import type { Prepared } from './prepare.js';

/** What every writer of a runtime shares: where to write, and who to tell. */
export interface WriterDeps {
  store: Store;
  clock: Clock;
  logger: Logger;
  logMaxChars: number;
  snapshotEvery: number;
  hooks?: DriverHooks | undefined;
  /** Told of every appended envelope (listeners, tracing). */
  emit: (env: StoredEnvelope, pipeline: string) => void;
}

/** The writer of one run. Not shared between processes: the run's lease says who writes. */
export class RunWriter {
  /** The state after every applied event (some may not be durable yet: see `flush`). */
  snapshot: RunSnapshot;
  /** The seq of the last durable event. */
  seq: number;
  /** The state as of the last durable event. */
  durable: RunSnapshot;
  /** The key of the running effect (the last EFFECT_STARTED), so a rebuilt run knows it. */
  effectKey: string | null;
  private head: string;
  private pending: Array<{ event: MachineEvent; next: RunSnapshot }> = [];

  private constructor(
    private readonly deps: WriterDeps,
    readonly prepared: Prepared,
    readonly runId: string,
    at: { snapshot: RunSnapshot; seq: number; head: string; last: StoredEnvelope | undefined },
  ) {
    this.snapshot = at.snapshot;
    this.durable = at.snapshot;
    this.seq = at.seq;
    this.head = at.head;
    this.effectKey = at.last?.event.type === 'EFFECT_STARTED' ? at.last.event.key : null;
    this.last = at.last;
  }

  /** The last event read from the log when the run was rebuilt (undefined for a new run). */
  readonly last: StoredEnvelope | undefined;

  /**
   * Records `run.started` for a new run (the log must not exist: a second start of an id is a
   * UsageError naming `resume`), then returns the run's writer.
   */
  static async start(
    deps: WriterDeps,
    prepared: Prepared,
    runId: string,
    started: RunStarted,
    snapshot: RunSnapshot,
  ): Promise<RunWriter> {
    // The envelope's time is the run's start time: a fold takes `startedAt` from it.
    const at = snapshot.context.startedAt;
    const env: NewEnvelope = { v: 1, at, event: started, state: summarize(snapshot) };
    const { envs, head } = chain([env], GENESIS, 1);
    await RunWriter.appendNew(deps, runId, envs);
    const w = new RunWriter(deps, prepared, runId, { snapshot, seq: 1, head, last: undefined });
    w.tell(envs, prepared.pipeline.name);
    deps.logger.info(
      {
        runId,
        pipeline: prepared.pipeline.name,
        seq: 1,
        event: 'run.started',
        decision: 'start',
        reason: started.parent !== undefined ? `child of ${started.parent.runId}` : 'new run',
        input: truncate(started.input, deps.logMaxChars),
      },
      'run started',
    );
    return w;
  }

  /**
   * Records a whole new log at once (a fork: `run.started` and the copied events, already
   * checked to fold), then returns the run's writer.
   */
  static async startLog(
    deps: WriterDeps,
    prepared: Prepared,
    runId: string,
    log: NewEnvelope[],
  ): Promise<RunWriter> {
    const envs = link(log, GENESIS, 1);
    await RunWriter.appendNew(deps, runId, envs);
    const stored = envs.map((e, i) => ({ ...e, runId, seq: i + 1 }));
    const folded = foldLog(prepared.machine, prepared.hash, runId, stored);
    const last = stored[stored.length - 1];
    const w = new RunWriter(deps, prepared, runId, {
      snapshot: folded.snapshot,
      seq: folded.seq,
      head: nextPrev(last),
      last,
    });
    w.tell(envs, prepared.pipeline.name);
    const started = log[0]?.event as RunStarted;
    deps.logger.info(
      {
        runId,
        pipeline: prepared.pipeline.name,
        seq: folded.seq,
        event: 'run.started',
        decision: 'fork',
        reason: `forked from ${started.forkedFrom?.runId ?? '?'} at seq ${started.forkedFrom?.seq ?? '?'}: ${envs.length} events`,
      },
      'run forked',
    );
    return w;
  }

  private static async appendNew(
    deps: WriterDeps,
    runId: string,
    envs: NewEnvelope[],
  ): Promise<void> {
    try {
      await deps.store.log.append(runId, envs, 'no_stream');
    } catch (e) {
      if (isVersionConflict(e))
        throw new UsageError(
          `run id '${runId}' already exists: resume it with \`plumbline resume ${runId}\` or pick another id`,
          { cause: e },
        );
      throw e;
    }
  }

  /** Rebuilds a run's writer from its log: a saved snapshot plus the events after it, or a full fold. */
  static async rebuild(deps: WriterDeps, prepared: Prepared, runId: string): Promise<RunWriter> {
    const log = deps.store.log;
    const saved = await log.loadSnapshot(runId);
    if (saved !== undefined && saved.machineHash === prepared.hash) {
      // From the snapshot's own seq: the event at it tells a running effect its key.
      const tail = await log.read(runId, saved.seq);
      if (tail[0]?.seq === saved.seq) {
        const from = { seq: saved.seq, snapshot: restore(prepared.machine, saved.snapshot) };
        const folded = foldTail(prepared.machine, runId, from, tail);
        return RunWriter.at(deps, prepared, runId, folded, tail[tail.length - 1]);
      }
    }
    const events = await log.read(runId, 1);
    const folded = foldLog(prepared.machine, prepared.hash, runId, events);
    return RunWriter.at(deps, prepared, runId, folded, events[events.length - 1]);
  }

  private static at(
    deps: WriterDeps,
    prepared: Prepared,
    runId: string,
    folded: { snapshot: RunSnapshot; seq: number },
    last: StoredEnvelope | undefined,
  ): RunWriter {
    return new RunWriter(deps, prepared, runId, { ...folded, head: nextPrev(last), last });
  }

  /**
   * Folds `event` into the run's state and holds it for the next `flush`; returns the new
   * state. Throws (an internal error) when the machine does not accept it.
   */
  apply(event: MachineEvent): RunSnapshot {
    const next = foldStep(this.prepared.machine, this.snapshot, event);
    if (next === this.snapshot)
      throw new Error(
        `internal: ${event.type} not accepted in state ${JSON.stringify(this.snapshot.value)} (run ${this.runId})`,
      );
    this.pending.push({ event, next });
    this.snapshot = next;
    if (event.type === 'EFFECT_STARTED') this.effectKey = event.key;
    return next;
  }

  /** Events applied but not yet durable. */
  get held(): number {
    return this.pending.length;
  }

  /**
   * Appends the held events in one append after the last durable seq; then, event by event,
   * the hooks, listeners and decision lines; then a snapshot when one is due. `fenced` when
   * another process appended first (nothing of this batch is written: the run is theirs).
   */
  async flush(): Promise<'ok' | 'fenced'> {
    if (this.pending.length === 0) return 'ok';
    const batch = this.pending;
    this.pending = [];
    const at = this.deps.clock.now();
    const { envs, head } = chain(
      batch.map((b) => ({ v: 1 as const, at, event: b.event, state: summarize(b.next) })),
      this.head,
      this.seq + 1,
    );
    const from = this.seq;
    try {
      await this.deps.store.log.append(this.runId, envs, from);
    } catch (e) {
      if (!isVersionConflict(e)) throw e;
      this.snapshot = this.durable;
      this.deps.logger.warn(
        {
          runId: this.runId,
          seq: from,
          event: batch.map((b) => b.event.type).join(','),
          decision: 'stop',
          reason: 'another process appended to this run (fenced)',
        },
        'fenced',
      );
      return 'fenced';
    }
    this.seq = from + envs.length;
    this.head = head;
    this.durable = this.snapshot;
    const name = this.prepared.pipeline.name;
    envs.forEach((e, i) => {
      const seq = from + i + 1;
      this.deps.hooks?.afterAppend?.(this.runId, seq, e.event.type);
      this.deps.emit({ ...e, runId: this.runId, seq }, name);
      this.logDecision(seq, e.event as MachineEvent, (batch[i] as { next: RunSnapshot }).next);
    });
    const every = this.deps.snapshotEvery;
    if (Math.floor(this.seq / every) !== Math.floor(from / every))
      await this.deps.store.log.saveSnapshot(this.runId, {
        seq: this.seq,
        machineHash: this.prepared.hash,
        snapshot: persistable(this.snapshot),
      });
    return 'ok';
  }

  /** `apply` then `flush`: one event, durable before the caller acts on it. */
  async commit(event: MachineEvent): Promise<'ok' | 'fenced'> {
    this.apply(event);
    return this.flush();
  }

  private tell(envs: NewEnvelope[], pipeline: string): void {
    envs.forEach((e, i) => {
      this.deps.hooks?.afterAppend?.(this.runId, i + 1, e.event.type);
      this.deps.emit({ ...e, runId: this.runId, seq: i + 1 }, pipeline);
    });
  }

  private logDecision(seq: number, event: MachineEvent, next: RunSnapshot): void {
    const { decision, reason } = describeDecision(event, next);
    const pipeline = this.prepared.pipeline.name;
    const runId = this.runId;
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
    this.deps.logger.info(
      {
        runId,
        pipeline,
        step: stepName,
        attempt,
        seq,
        event: event.type,
        decision,
        reason,
        state: next.value,
        costUsd: next.context.costUsd,
        ...(output !== undefined ? { output: truncate(output, this.deps.logMaxChars) } : {}),
      },
      `${decision}: ${reason}`,
    );
    const status = statusOf(next);
    if (isTerminal(status) || status === 'parked')
      this.deps.logger.info(
        {
          runId,
          pipeline,
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
