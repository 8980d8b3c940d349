/**
 * A worker's view of whether its store accepts writes. A StoreUnavailableError seen anywhere (a
 * heartbeat, a claim, a run's append, the stranded check) closes the gate: the worker stops
 * taking work, says so once with the path and the fix, probes the store with a capped
 * exponential backoff, and opens the gate again when a probe write succeeds.
 */
import { isStoreUnavailable, serializeError, type StoreUnavailableError } from '../errors.js';
import type { ControlStore } from '../store/types.js';
import { sleep } from './clock.js';
import type { Logger } from './logger.js';

/** Options of {@link StoreGate}. */
export interface StoreGateOptions {
  logger: Logger;
  /** A small write that fails while the store refuses writes. */
  probe: () => Promise<void>;
  /** First wait before a probe (default 100 ms), doubled after each failed one… */
  baseMs?: number;
  /** …up to this (default 10 s). */
  maxMs?: number;
  /** Told when the store goes down (true) and comes back (false): for metrics. */
  onChange?: (down: boolean) => void;
}

/** The key {@link probeWrite} writes: a breaker record no model ever uses. */
export const PROBE_KEY = 'plumbline.store-probe';

/**
 * A probe write through the control port (a breaker record of its own): 16 KiB, so that a store
 * with no free page refuses it as it would an append, then shrunk back so it holds no space.
 */
export function probeWrite(control: ControlStore): () => Promise<void> {
  return async () => {
    const { revision } = await control.getBreaker(PROBE_KEY);
    const at = Date.now();
    if (await control.casBreaker(PROBE_KEY, { at, pad: '.'.repeat(16 * 1024) }, revision))
      await control.casBreaker(PROBE_KEY, { at }, revision === 0 ? 1 : revision + 1);
  };
}

/** Whether the store accepts writes; see the module comment. */
export class StoreGate {
  private fault: StoreUnavailableError | undefined;
  private since = 0;
  private delayMs: number;
  private upAt = 0;
  private listeners = new Set<() => void>();

  constructor(private readonly o: StoreGateOptions) {
    this.delayMs = o.baseMs ?? 100;
  }

  /** True while the store refuses writes. */
  get down(): boolean {
    return this.fault !== undefined;
  }

  /** Calls `f` when the store goes down (now, if it is down); returns the unsubscribe. */
  onDown(f: () => void): () => void {
    if (this.down) f();
    this.listeners.add(f);
    return () => this.listeners.delete(f);
  }

  /** Closes the gate if `e` is a StoreUnavailableError; returns whether it was one. */
  report(e: unknown): boolean {
    if (!isStoreUnavailable(e)) return false;
    if (this.fault !== undefined) return true;
    this.fault = e;
    this.since = Date.now();
    // A store that flaps keeps its backoff and is reported once a minute, not at every flap.
    const flapping = this.upAt !== 0 && this.since - this.upAt < 60_000;
    if (!flapping) this.delayMs = this.o.baseMs ?? 100;
    this.o.logger[flapping ? 'warn' : 'error'](
      {
        store: e.path,
        code: e.code,
        fix: e.fix,
        decision: 'pause',
        reason: `${e.message}; this worker takes no work until the store accepts writes again`,
      },
      `store unavailable: ${e.fix}`,
    );
    this.o.onChange?.(true);
    for (const f of this.listeners) f();
    return true;
  }

  /** Probes with backoff until a probe write succeeds (gate open) or `signal` aborts. */
  async recover(signal: AbortSignal): Promise<void> {
    while (this.fault !== undefined && !signal.aborted) {
      await sleep(this.delayMs, signal);
      if (signal.aborted) return;
      this.delayMs = Math.min(this.delayMs * 2, this.o.maxMs ?? 10_000);
      try {
        await this.o.probe();
      } catch (e) {
        if (!isStoreUnavailable(e))
          this.o.logger.warn({ err: serializeError(e) }, 'store probe failed');
        continue;
      }
      const f = this.fault;
      this.fault = undefined;
      this.upAt = Date.now();
      this.o.logger.info(
        {
          store: f.path,
          decision: 'resume',
          reason: `the store accepts writes again after ${this.upAt - this.since} ms`,
        },
        'store available: worker resumed',
      );
      this.o.onChange?.(false);
    }
  }
}
