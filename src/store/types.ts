/**
 * The store port: an append-only event log per run, an effect ledger, and the small shared
 * control state (kill flags, breaker state, snapshots). Adapters: `sqlite.ts`, `jetstream.ts`.
 * Every adapter passes `test/contract/eventLog.contract.ts`.
 */
import type { NewEnvelope, RunStatus, StoredEnvelope } from '../machines/events.js';

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
}

/** Filter for {@link EventLog.listRuns}. */
export interface RunFilter {
  status?: RunStatus | RunStatus[];
  pipeline?: string;
  /** Only runs whose last event is older than this (epoch ms): stranded-run detection. */
  updatedBefore?: number;
  limit?: number;
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
  /** The run index, newest first. */
  listRuns(filter?: RunFilter): Promise<RunSummary[]>;
  /** Saves a snapshot for a run (replaces an older one). */
  saveSnapshot(runId: string, snapshot: SavedSnapshot): Promise<void>;
  /** The newest saved snapshot of a run, if any. */
  loadSnapshot(runId: string): Promise<SavedSnapshot | undefined>;
}

/** What {@link EffectLedger.claim} found. */
export type EffectClaim =
  /** Nobody ran this effect before: run it, then `record`. */
  | { status: 'claimed' }
  /** Claimed before but never recorded (the runner died): it may or may not have happened. */
  | { status: 'unrecorded'; claimedAt: number }
  /** Already done: do not run again, use this result. */
  | { status: 'done'; result: unknown };

/** The effect ledger: at most one recorded result per `(runId, step, key)`. */
export interface EffectLedger {
  /** Atomically claims an effect; a repeated claim reports what is known. */
  claim(runId: string, step: string, key: string, at: number): Promise<EffectClaim>;
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
  /** The breaker record for a key and its revision (0 when absent). */
  getBreaker(key: string): Promise<{ value: unknown; revision: number }>;
  /** Writes a breaker record if its revision is still `revision`; false when someone else won. */
  casBreaker(key: string, value: unknown, revision: number): Promise<boolean>;
}

/** Everything a runtime needs from a backend. */
export interface Store {
  readonly kind: 'sqlite' | 'jetstream';
  readonly log: EventLog;
  readonly ledger: EffectLedger;
  readonly control: ControlStore;
  close(): Promise<void>;
}
