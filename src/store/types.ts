/**
 * The store port: an append-only event log per run, an effect ledger, and the small shared
 * control state (kill flags, breaker state, snapshots). Adapters: `sqlite.ts`, `jetstream.ts`.
 * Every adapter passes `test/contract/eventLog.contract.ts`.
 */
import type { ChildOf, NewEnvelope, RunStatus, StoredEnvelope } from '../machines/events.js';
import type { RateLimitsSeen } from '../model/rateHeaders.js';
import type { RateCost, RateLevels, RateState, RateTake } from './rateRules.js';

/** `'no_stream'` to create a run's log; otherwise the seq of the last event you have seen. */
export type ExpectedVersion = 'no_stream' | number;

/** One row of the run index, a projection of the log maintained on every append. */
export interface RunSummary {
  runId: string;
  pipeline: string;
  version: string;
  machineHash: string;
  module: string | null;
  status: RunStatus;
  step: string | null;
  costUsd: number;
  lastSeq: number;
  startedAt: number;
  updatedAt: number;
  /** Set when the run reached a terminal status. */
  endedAt: number | null;
  /** A child run's place (from its `run.started`): listings nest it under its parent run. */
  parent?: ChildOf | undefined;
}

/** Filter for {@link EventLog.listRuns}. */
export interface RunFilter {
  status?: RunStatus | RunStatus[];
  pipeline?: string;
  /** Only runs whose last event is older than this (epoch ms): stranded-run detection. */
  updatedBefore?: number;
  /** Only the child runs of this run; `null`: only top-level runs (absent: every run). */
  parent?: string | null;
  /** At most this many runs (a page). */
  limit?: number;
  /**
   * A cursor: only runs listed after this run id in the listing order (newest first), as in
   * `runs --after <runId>` with the last id of the previous page. Unknown ids are refused.
   */
  after?: string;
}

/** One cost rollup row: the model outcomes of ended runs, per UTC day, pipeline and model. */
export interface CostRollupRow {
  day: string;
  pipeline: string;
  model: string;
  calls: number;
  inputTokens: number;
  outputTokens: number;
  cacheReadTokens: number;
  cacheWriteTokens: number;
  costUsd: number;
  unconfirmedUsd: number;
  unconfirmedCalls: number;
}

/**
 * The cost rollups: rows kept up to date as runs end, and the runs whose newer events are not
 * in them yet (unfinished runs: fold their events after `fromSeq` to complete the figures).
 */
export interface CostRollup {
  rows: CostRollupRow[];
  pending: PendingCost[];
}

/** An unfinished run whose model calls after `fromSeq` are not in the rollups' rows yet. */
export interface PendingCost {
  runId: string;
  pipeline: string;
  fromSeq: number;
  /**
   * Those calls already summed per (day, model), when the store could read them without the
   * log's checked read (SQLite: the outcome events' bodies, as a run's end rolls them up). Absent:
   * fold the run's events after `fromSeq` (`log.read`), which also reports a log that does not
   * read back.
   */
  rows?: CostRollupRow[];
}

/** An event with its position in the whole store (for tailing every run at once). */
export interface PositionedEnvelope extends StoredEnvelope {
  pos: number;
}

/** A folded machine snapshot saved after `seq`, so long runs replay only their tail. */
export interface SavedSnapshot {
  seq: number;
  machineHash: string;
  snapshot: unknown;
}

/** The event log port. */
export interface EventLog {
  /**
   * Appends events atomically after `expected`; returns the seq of the last one.
   * The first event of a run must be `run.started` with `expected = 'no_stream'`.
   * @throws VersionConflictError when the log is not at `expected`.
   */
  append(runId: string, events: NewEnvelope[], expected: ExpectedVersion): Promise<number>;
  /** Events of one run with seq ≥ `fromSeq` (default 1), in order. Empty for an unknown run. */
  read(runId: string, fromSeq?: number): Promise<StoredEnvelope[]>;
  /** Events of every run after store position `afterPos`, in append order, at most `limit`. */
  readAll(afterPos: number, limit?: number): Promise<PositionedEnvelope[]>;
  /** One run's index row, or undefined. */
  getRun(runId: string): Promise<RunSummary | undefined>;
  /** The run index, newest first (paged with `limit` and `after`). */
  listRuns(filter?: RunFilter): Promise<RunSummary[]>;
  /**
   * The cost rollups kept as runs end; undefined when this store has none (made before them, or
   * an adapter without them): then spend is folded from every log.
   */
  costRollup?(): Promise<CostRollup | undefined>;
  /**
   * The unconfirmed USD (lost calls at their reservation) of each of these runs that the store
   * can answer without reading its log; a run left out must be found by reading its log.
   * SQLite answers with one query on the events' type column, JetStream from its run index (a
   * log read there costs in proportion to the stream).
   */
  unconfirmedUsd?(runIds: readonly string[]): Promise<Map<string, number>>;
  /** Saves a snapshot for a run (replaces an older one). */
  saveSnapshot(runId: string, snapshot: SavedSnapshot): Promise<void>;
  /** The newest saved snapshot of a run, if any. */
  loadSnapshot(runId: string): Promise<SavedSnapshot | undefined>;
}

/** What {@link EffectLedger.claim} found. */
export type EffectClaim =
  /** Nobody ran this effect before: run it, then `record`. */
  | { status: 'claimed' }
  /**
   * Claimed before but never recorded: it may or may not have happened. `claimer` is the
   * lease (`owner#token`) it was claimed under, so a driver holding a newer lease knows the
   * claimer is gone (at-least-once across a crash), and a live claimer is never run over.
   */
  | { status: 'unrecorded'; claimedAt: number; claimer: string | null }
  /** Already done: do not run again, use this result. */
  | { status: 'done'; result: unknown };

/** The effect ledger: at most one recorded result per `(runId, step, key)`. */
export interface EffectLedger {
  /**
   * Atomically claims an effect under the driver's lease (`owner#token`, see `leaseClaimer`);
   * a repeated claim reports what is known.
   */
  claim(
    runId: string,
    step: string,
    key: string,
    at: number,
    claimer?: string,
  ): Promise<EffectClaim>;
  /** Records an effect's result (idempotent: a second record keeps the first result). */
  record(runId: string, step: string, key: string, result: unknown, at: number): Promise<void>;
}

/** A durable kill flag, set by `plumbline kill`, read by whoever drives the run. */
export interface KillFlag {
  runId: string;
  reason: string;
  at: number;
}

/** Shared control state: kill flags and the breakers' persisted state (compare-and-set). */
export interface ControlStore {
  setKill(flag: KillFlag): Promise<void>;
  getKill(runId: string): Promise<KillFlag | undefined>;
  /** The flags set among `runIds` (optional: one query instead of one per run). */
  getKills?(runIds: readonly string[]): Promise<KillFlag[]>;
  /**
   * The run's flag as known from a check of every run's flag that began at or after `since`
   * (`performance.now()` time; one check is shared by every caller), with when that check began;
   * undefined when the store cannot check them all at once (the caller then calls `getKill`).
   * Optional: spares a read per run new to a poller.
   */
  killAsOf?(
    runId: string,
    since: number,
  ): Promise<{ flag: KillFlag | undefined; at: number } | undefined>;
  /** The breaker record for a key and its revision (0 when absent). */
  getBreaker(key: string): Promise<{ value: unknown; revision: number }>;
  /** Writes a breaker record if its revision is still `revision`; false when someone else won. */
  casBreaker(key: string, value: unknown, revision: number): Promise<boolean>;
}

/**
 * A run's lease: the one process allowed to drive it. `token` grows by one with every
 * acquisition of the run (a fencing token); `owner` names the process
 * (`host/pid/nonce`, see `leaseOwner`).
 */
export interface Lease {
  runId: string;
  owner: string;
  token: number;
  ttlMs: number;
  /** The store's revision of the lease record after this holder's last write (compare-and-set). */
  revision: number;
}

/** The holder of a lease somebody else asked for. */
export interface LeaseHolder {
  owner: string;
  token: number;
  /** When its holder last took or renewed it (the store's clock: SQLite's, the NATS server's). */
  renewedAt: number;
  ttlMs: number;
  /** The record's revision: unchanged for a TTL means its holder stopped renewing. */
  revision: number;
}

/** What {@link LeaseStore.acquire} got. */
export type LeaseAcquired =
  | { ok: true; lease: Lease }
  /** Held by a live owner (or one not yet seen to be dead): ask again in `retryInMs`. */
  | { ok: false; holder: LeaseHolder; retryInMs: number };

/**
 * Run leases: one driver per run. A lease is free when released, when its owner's process is
 * gone (same host: the pid no longer exists), or when its record has not changed (no renewal)
 * for a whole `ttlMs` as measured by the asker's monotonic clock from its first sight of that
 * revision — never by comparing wall clocks across machines.
 */
export interface LeaseStore {
  /** Takes the lease of `runId` for `owner` if it is free; a fresh `token` each time. */
  acquire(runId: string, owner: string, ttlMs: number): Promise<LeaseAcquired>;
  /** Extends a held lease; false when it is no longer this holder's (taken over). */
  renew(lease: Lease): Promise<boolean>;
  /** Gives a held lease up (no-op when it is no longer this holder's). */
  release(lease: Lease): Promise<void>;
  /** The current holders of these runs' leases (released and absent ones are left out). */
  holders(runIds: readonly string[]): Promise<Map<string, LeaseHolder>>;
}

/**
 * Machine graphs by machine hash, written once per machine instead of into every
 * `run.started` (see `definitions.ts`: `recordDefinition`, `definitionOf`).
 */
export interface DefinitionStore {
  /** Stores `graph` under `hash` (idempotent: the first write wins, a later one is ignored). */
  put(hash: string, graph: unknown): Promise<void>;
  /** The graph stored under `hash`, or undefined. */
  get(hash: string): Promise<unknown>;
}

/** The caps of a spending pool: what is left of a parent run's limits for its children. */
export interface PoolCaps {
  budgetUsd: number | null;
  maxIterations: number | null;
}

/** A pool's caps and what its runs spent and hold reserved. */
export interface PoolState extends PoolCaps {
  spentUsd: number;
  reservedUsd: number;
  /** Calls reserved so far (a call counts when reserved, never refunded). */
  iterations: number;
}

/** What {@link PoolStore.reserve} got. */
export type PoolReservation =
  { ok: true } | { ok: false; refused: 'budget' | 'iterations'; state: PoolState };

/**
 * Spending pools: a parent run's budget and call cap shared by its child runs, so however many
 * children call at once their calls together never cross the parent's caps. Each child call
 * reserves its worst case in its ancestors' pools before it is made and settles at its actual
 * cost after. Keyed by `<parentRunId>/<step>`.
 */
export interface PoolStore {
  /** Creates the pool with these caps, or sets new caps on it (spend and reservations kept). */
  open(pool: string, caps: PoolCaps): Promise<void>;
  /**
   * Atomically reserves one call of at most `usd` under `key`: refused when spent + reserved +
   * `usd` > budget, or calls + 1 > maxIterations. Idempotent per key (a key already reserved or
   * settled is `ok` again without a second reservation). An unknown pool has no caps: ok.
   */
  reserve(pool: string, key: string, usd: number): Promise<PoolReservation>;
  /** Settles a reservation at the call's actual cost (idempotent; an unknown key is a no-op). */
  settle(pool: string, key: string, usd: number): Promise<void>;
  /** The pool's state, or undefined. */
  get(pool: string): Promise<PoolState | undefined>;
}

/** A signal sent to a run, kept until the run's wait takes it. */
export interface SignalRecord {
  runId: string;
  name: string;
  payload: unknown;
  /** Who sent it (free text: a user, a system), or null. */
  by: string | null;
  at: number;
}

/** A run that waits (for a signal or a time), as the wake-up schedule knows it. */
export interface WaitingRun {
  runId: string;
  /** The signal it waits for, or null (a sleep, a run let go in a long backoff or on a batch). */
  signal: string | null;
  /** When it must be woken (its timeout, its sleep's end, its retryAt), or null (no timeout). */
  wakeAt: number | null;
  /** Since when it waits. */
  since: number;
}

/**
 * Waiting runs and their mail: signals kept for a run until its wait takes them (so a signal
 * sent early is not lost), and the schedule of wake-ups (so thousands of sleeping runs cost no
 * process memory: a sweep asks for the due ones).
 */
export interface WaitStore {
  /** Keeps a signal for a run; false when one of that name is already kept for it. */
  putSignal(s: SignalRecord): Promise<boolean>;
  /** The kept signal of that name, or undefined. */
  getSignal(runId: string, name: string): Promise<SignalRecord | undefined>;
  /** Drops a kept signal (once its run recorded it). */
  deleteSignal(runId: string, name: string): Promise<void>;
  /** Records that a run waits (replacing what it waited for before). */
  setWaiting(w: WaitingRun): Promise<void>;
  /** The run waits no more. */
  clearWaiting(runId: string): Promise<void>;
  /** Runs to wake at `now`: a wake-up time at or before it, earliest first. */
  due(now: number, limit: number): Promise<WaitingRun[]>;
  /** Every waiting run (for `runs --waiting`), longest waiting first. */
  waiting(limit: number): Promise<WaitingRun[]>;
  /**
   * The wake-up times of those of `runIds` that are scheduled (null: waiting with no time);
   * runs not waiting are absent. Lets the stranded check leave alone a run let go in a backoff.
   */
  wakeTimes(runIds: readonly string[]): Promise<Map<string, number | null>>;
}

/**
 * Shared provider rate limits: one token bucket per window (requests, input tokens, output
 * tokens) per key (`<model>/<hash of the API key>`, never the key), kept in the store so every
 * process calling with that key paces by the same levels. The rules are `rateRules.ts`; each
 * operation is one atomic read-modify-write (a SQLite transaction, a KV compare-and-set).
 */
export interface RateLimitStore {
  /** Takes one call's cost if every known window has room, else says how long to wait. */
  take(key: string, cost: RateCost, now: number, config?: RateLevels): Promise<RateTake>;
  /** Gives back what a call took and did not use (`charged` from its take), and ends a probe. */
  settle(
    key: string,
    charged: Partial<RateCost>,
    used: Partial<RateCost>,
    now: number,
    config?: RateLevels,
  ): Promise<void>;
  /** Learns the windows a response reported (null: it reported none). */
  learn(key: string, seen: RateLimitsSeen | null, now: number): Promise<void>;
  /** The key's state, or undefined when never used. */
  get(key: string): Promise<RateState | undefined>;
}

/** Everything a runtime needs from a backend. */
export interface Store {
  readonly kind: 'sqlite' | 'jetstream';
  readonly log: EventLog;
  readonly definitions: DefinitionStore;
  readonly ledger: EffectLedger;
  readonly control: ControlStore;
  readonly leases: LeaseStore;
  /** Spending pools of parent runs, so children reserve against their ancestors' caps. */
  readonly pools: PoolStore;
  /** Kept signals and the wake-up schedule of waiting and sleeping runs. */
  readonly waits: WaitStore;
  /** Shared provider rate limits (absent from stores of other adapters: calls are then not paced). */
  readonly rateLimits?: RateLimitStore;
  close(): Promise<void>;
}
