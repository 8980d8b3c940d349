/**
 * What the driver works with for one run: the store, the model, the clock, the breakers.
 */
import type { ModelClient } from '../model/types.js';
import type { Lease, Store } from '../store/types.js';
import type { Clock } from './clock.js';
import type { Logger } from './logger.js';
import type { Prepared } from './prepare.js';
import type { AbandonedEffect } from './effectRun.js';
import type { KillWatcher } from './killWatch.js';
import type { ChildGroup, ChildHost } from './children.js';
import type { ModelRequest } from '../model/types.js';
import type { Batcher } from './batcher.js';
import type { RateGate, RateTicket } from './rateGate.js';

/** The gate a model call passes through: the circuit breaker shared by all runs. */
export interface BreakerGate {
  /** The breaker's view for a call to `model` now (`half_open` means this caller is the probe). */
  acquire(model: string, now: number): Promise<'closed' | 'open' | 'half_open'>;
  /** Reports a call's outcome. */
  record(model: string, ok: boolean, kind: string, now: number): Promise<void>;
}

/** Test hooks: called at points a crash test wants to kill the process at. */
export interface DriverHooks {
  afterAppend?: (runId: string, seq: number, type: string) => void;
  afterEffectClaimed?: (runId: string, step: string, key: string) => void;
  afterEffectRan?: (runId: string, step: string, key: string) => void;
  /** A batch step's batch was created, before BATCH_SUBMITTED is appended (the at-least-once window). */
  afterBatchCreated?: (runId: string, step: string, batchId: string) => void;
}

/** The per-run environment of the driver. */
export interface DriverEnv {
  store: Store;
  prepared: Prepared;
  model: () => ModelClient;
  clock: Clock;
  random: () => number;
  logger: Logger;
  breakers?: BreakerGate;
  /** Shared provider rate limits: calls wait for room before their ATTEMPT (absent: not paced). */
  rates?: RateGate;
  killPollMs: number;
  logMaxChars: number;
  /** The runtime's shared kill-flag watcher. */
  kills: KillWatcher;
  /** The running effect's key (the last EFFECT_STARTED of this run), from the run writer. */
  effectKey: () => string | null;
  /**
   * The request built when the attempt was asked for (ready), used by the call (calling): the
   * prompt runs once per attempt. Absent after a rebuild (a rebuilt `calling` is a lost call).
   */
  request: { step: string; attempt: number; request: ModelRequest; rate?: RateTicket } | null;
  /** How children are made and driven (parallel, map, call steps). */
  children: ChildHost;
  /** The process's Message Batches grouping and polling (`batch: true` steps). */
  batcher: Batcher;
  /** The waits for children under way in this drive, by step. */
  groups: Map<string, ChildGroup>;
  /** The run's lease this driver holds (effects are claimed under it). */
  lease: Lease;
  hooks?: DriverHooks;
  /** How long an effect may ignore its aborted signal before it is abandoned (default 5 s). */
  effectGraceMs?: number;
  /** Told when an effect is abandoned (for metrics). */
  onEffectAbandoned?: (e: AbandonedEffect) => void;
  /**
   * Backoffs at least this long let the run go until its retryAt (see backoffUnload.ts);
   * undefined: every backoff is waited out in the process.
   */
  unloadBackoffMs?: number;
}
