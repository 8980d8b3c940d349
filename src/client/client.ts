/**
 * The client library: start runs, follow their events, kill and resume them, and read the run
 * index and costs, from your own code, over the same store URL the CLI's `--store` takes.
 * Runs are driven by workers (`plumbline worker`, or `runWorker` in your process) that take
 * the start and resume commands this client publishes on the store's command bus.
 */
import { ulid } from 'ulid';
import type { ZodType } from 'zod';
import { DEFAULT_STORE_URL, openBackend, type BusOptions } from '../backend.js';
import type { CommandBus } from '../bus/types.js';
import { costReport, type CostBy, type CostReport } from '../cli/cost.js';
import { pipelineForRun } from '../cli/pipelines.js';
import { UsageError } from '../errors.js';
import { isTerminal } from '../machines/fold.js';
import type { RunStatus, StoredEnvelope } from '../machines/events.js';
import type { Pipeline } from '../machines/pipeline.js';
import { Runtime, type LimitOverrides } from '../runtime/driver.js';
import { autoBudget } from '../runtime/forecastHistory.js';
import { silentLogger, type Logger } from '../runtime/logger.js';
import { parseRunInput, prepare, type Prepared } from '../runtime/prepare.js';
import { checkNewRunId } from '../runtime/runId.js';
import type { RunFilter, RunSummary, Store, WaitingRun } from '../store/types.js';
import {
  childCounts,
  childJoins,
  childrenOf,
  runTree,
  type ChildCounts,
  type ChildJoin,
  type RunNode,
} from './children.js';
import { EventFeed, type RunSubscription, type SubscribeFilter } from './feed.js';

/** Options of {@link connect}. */
export interface ConnectOptions {
  /**
   * Pipelines this client knows: `kill` uses them to record the kill in a parked run at once
   * (otherwise it loads the module recorded with the run, if it is still there).
   */
  pipelines?: ReadonlyArray<Pipeline | Prepared>;
  /** How often subscriptions look for new events (default 100 ms). */
  pollMs?: number;
  /** Options of the command bus (acks and redeliveries are the workers' business). */
  bus?: BusOptions;
  logger?: Logger;
  /** Builds the runtime `kill` records kills with (default: a plain one with `logger`). */
  runtime?: (store: Store) => Runtime;
  /** How an unknown-run error says to list runs (default `client.runs()`). */
  listRunsHint?: string;
  /** What a refused URL is called in the error (default `connect()`). */
  source?: string;
  /** Wraps the opened store (the CLI scrubs secrets from what is written to it). */
  wrapStore?: (store: Store) => Store;
}

/** A pipeline given by value to {@link PlumblineClient.start}: its name and input schema. */
export interface PipelineRef {
  readonly kind: 'pipeline';
  readonly name: string;
  readonly input: ZodType;
  /** Its version: `budgetUsd: 'auto'` forecasts from finished runs of this version. */
  readonly version?: string;
}

/**
 * Caps of a started run, as {@link LimitOverrides}; `budgetUsd: 'auto'` sets the budget from
 * the store's finished runs of the pipeline (p99 of what they needed, with a margin).
 */
export type StartLimits = Omit<LimitOverrides, 'budgetUsd'> & { budgetUsd?: number | 'auto' };

/** Options of {@link PlumblineClient.start}. */
export interface StartOptions {
  /** The run id, also the deduplication key (default: a new ULID). */
  runId?: string;
  /** Caps for this run: budget (USD or `auto`), model calls, tokens, wall-clock time from now (ms). */
  limits?: StartLimits;
  /** The pipeline module's path, for workers that load pipelines by path. */
  module?: string;
}

/** What {@link PlumblineClient.start} did. */
export interface Started {
  runId: string;
  pipeline: string;
  /** True when this run id was already started or queued: nothing new was published. */
  duplicate: boolean;
  /** With `budgetUsd: 'auto'`: the budget chosen and the sentence that says how. */
  autoBudget?: { budgetUsd: number; note: string };
}

/** A connection to a plumbline store and its command bus. */
export interface PlumblineClient extends AsyncDisposable {
  /** `sqlite` or `nats`. */
  readonly kind: 'sqlite' | 'nats';
  /** The store, for reads this client does not wrap. */
  readonly store: Store;
  /** The command bus the workers consume. */
  readonly bus: CommandBus;
  /**
   * Publishes a start-run message for the workers; idempotent per run id. A pipeline given by
   * value has its input checked here (a UsageError listing every issue).
   */
  start(pipeline: PipelineRef | string, input: unknown, opts?: StartOptions): Promise<Started>;
  /**
   * The events of one run (history, then live; ends after its terminal event), or of every run
   * matching a filter (ends only on `break`). Each event once, in seq order per run.
   */
  subscribe(target: string | SubscribeFilter): RunSubscription;
  /** Sets the run's durable kill flag (see `plumbline kill`); returns its status afterwards. */
  kill(runId: string, reason?: string): Promise<RunStatus>;
  /** Publishes a resume command for a parked or stranded run, optionally raising its limits. */
  resume(runId: string, limits?: LimitOverrides): Promise<{ duplicate: boolean }>;
  /**
   * The run index, newest first; a page with `limit`, the next one with `after` (its last run
   * id). `parent: null` lists top-level runs only, `parent: runId` the children of a run.
   */
  runs(filter?: RunFilter): Promise<RunSummary[]>;
  /** A run's direct children (map items, parallel branches, calls), by step and part. */
  children(runId: string): Promise<RunSummary[]>;
  /** How many direct children each of these runs has, by status (childless runs absent). */
  childCounts(runIds: readonly string[]): Promise<Map<string, ChildCounts>>;
  /**
   * Waiting runs (longest waiting first): what each waits for (a signal or a time) and since
   * when; `status` running is a run let go in a long backoff or between two polls of its
   * Message Batch (it waits for its retry or that poll).
   */
  waiting(
    limit?: number,
  ): Promise<
    Array<WaitingRun & { pipeline: string | null; step: string | null; status: RunStatus | null }>
  >;
  /** The tree under a run, at most `maxChildren` (default 20) children shown per run. */
  tree(run: string | RunSummary, opts?: { maxChildren?: number }): Promise<RunNode>;
  /**
   * The children's outcomes at each join (CHILDREN_DONE, BRANCH_DONE) of a parent's log:
   * ids, status, cost, error. Pass the events when already read (as from `replay`).
   */
  childOutcomes(runId: string, events?: readonly StoredEnvelope[]): Promise<ChildJoin[]>;
  /** Every recorded event of a run, in seq order (a UsageError for an unknown run). */
  replay(runId: string): Promise<StoredEnvelope[]>;
  /**
   * Spend by pipeline, model or UTC day: from the store's rollups (kept as runs end) plus the
   * unfinished runs' events; `fromLog` folds every log instead (and names unreadable runs).
   * By `run`: per top-level run, its children's calls included (folds every log).
   */
  cost(by?: CostBy, opts?: { fromLog?: boolean }): Promise<CostReport>;
  /** Ends every subscription and closes the bus and the store. */
  close(): Promise<void>;
}

/** The limits of a start or resume command: a deadline becomes an absolute time. */
function startLimits(l: LimitOverrides = {}, now: number) {
  return {
    ...(l.budgetUsd !== undefined ? { budgetUsd: l.budgetUsd } : {}),
    ...(l.maxIterations !== undefined ? { maxIterations: l.maxIterations } : {}),
    ...(l.deadlineMs !== undefined ? { deadlineAt: now + l.deadlineMs } : {}),
    ...(l.maxInputTokens !== undefined ? { maxInputTokens: l.maxInputTokens } : {}),
    ...(l.maxOutputTokens !== undefined ? { maxOutputTokens: l.maxOutputTokens } : {}),
  };
}

/**
 * Connects to the store at `url` (default `./.plumbline/plumbline.db`; a SQLite file path or
 * `nats://host:port[,host2:port]`, as `--store`) and its command bus.
 * @example
 * await using client = await connect('nats://127.0.0.1:4222');
 * const { runId } = await client.start('triage', { subject: 'prod is down' });
 * for await (const e of client.subscribe(runId)) console.log(e.seq, e.event.type);
 */
export async function connect(
  url: string = DEFAULT_STORE_URL,
  opts: ConnectOptions = {},
): Promise<PlumblineClient> {
  const backend = await openBackend(url, {
    ...(opts.bus !== undefined ? { bus: opts.bus } : {}),
    source: opts.source ?? 'connect()',
  });
  const { bus } = backend;
  const store = opts.wrapStore?.(backend.store) ?? backend.store;
  const logger = opts.logger ?? silentLogger;
  const unknownRun = (runId: string): UsageError =>
    new UsageError(
      `unknown run id '${runId}': list runs with ${opts.listRunsHint ?? 'client.runs()'}`,
    );
  const feed = new EventFeed(store.log, opts.pollMs ?? 100, logger);
  const known = new Map<string, Prepared>();
  for (const p of opts.pipelines ?? []) {
    const prepared = 'machine' in p ? p : prepare(p);
    known.set(prepared.pipeline.name, prepared);
  }
  let runtime: Runtime | undefined;
  let closed: Promise<void> | undefined;

  const client: PlumblineClient = {
    kind: backend.kind,
    store,
    bus,

    async start(pipeline, input, o = {}) {
      const name = typeof pipeline === 'string' ? pipeline : pipeline.name;
      const version = typeof pipeline === 'string' ? undefined : pipeline.version;
      if (typeof pipeline !== 'string') parseRunInput(pipeline as unknown as Pipeline, input);
      const { budgetUsd, ...rest } = o.limits ?? {};
      // By name only, the newest version with finished runs stands for what workers load.
      const auto =
        budgetUsd === 'auto'
          ? await autoBudget(store, {
              pipeline: name,
              input,
              ...(version !== undefined ? { version } : {}),
            })
          : undefined;
      const limits: LimitOverrides = {
        ...rest,
        ...(auto !== undefined ? { budgetUsd: auto.budgetUsd } : {}),
        ...(typeof budgetUsd === 'number' ? { budgetUsd } : {}),
      };
      const runId = checkNewRunId(o.runId ?? ulid());
      const started = (duplicate: boolean): Started => ({
        runId,
        pipeline: name,
        duplicate,
        ...(auto !== undefined ? { autoBudget: auto } : {}),
      });
      // Already in the store: a duplicate even after the bus forgot the first start.
      if ((await store.log.getRun(runId)) !== undefined) return started(true);
      const r = await bus.publishStart({
        runId,
        pipeline: name,
        input,
        limits: startLimits(limits, Date.now()),
        ...(o.module !== undefined ? { module: o.module } : {}),
      });
      return started(r.duplicate);
    },

    subscribe(target) {
      return typeof target === 'string' ? feed.run(target) : feed.filtered(target);
    },

    async kill(runId, reason = 'killed by client') {
      const run = await store.log.getRun(runId);
      if (run === undefined) throw unknownRun(runId);
      runtime ??= opts.runtime?.(store) ?? new Runtime({ store, logger });
      // An ended run only gets the flag: no module to load.
      const prepared = isTerminal(run.status)
        ? undefined
        : await pipelineForRun(store, runId, known).catch(() => undefined);
      return runtime.kill(runId, reason, prepared);
    },

    async resume(runId, limits = {}) {
      if ((await store.log.getRun(runId)) === undefined) throw unknownRun(runId);
      const l = startLimits(limits, Date.now());
      return bus.publishResume({ runId, ...l });
    },

    runs: (filter) => store.log.listRuns(filter),

    children: (runId) => childrenOf(store, runId),

    childCounts: (runIds) => childCounts(store, runIds),
    async waiting(limit = 50) {
      const rows = await store.waits.waiting(limit);
      return Promise.all(
        rows.map(async (w) => {
          const run = await store.log.getRun(w.runId);
          return {
            ...w,
            pipeline: run?.pipeline ?? null,
            step: run?.step ?? null,
            status: run?.status ?? null,
          };
        }),
      );
    },

    async tree(run, o = {}) {
      const summary = typeof run === 'string' ? await store.log.getRun(run) : run;
      if (summary === undefined) throw unknownRun(run as string);
      return runTree(store, summary, o.maxChildren);
    },

    async childOutcomes(runId, events) {
      return childJoins(store, runId, events ?? (await client.replay(runId)));
    },

    async replay(runId) {
      const events = await store.log.read(runId);
      if (events.length === 0) throw unknownRun(runId);
      return events;
    },

    cost: (by = 'pipeline', o = {}) => costReport(store, by, o),

    close() {
      closed ??= (async () => {
        feed.close();
        await backend.close();
      })();
      return closed;
    },

    [Symbol.asyncDispose]() {
      return client.close();
    },
  };
  return client;
}
