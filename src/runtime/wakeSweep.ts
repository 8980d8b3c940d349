/**
 * Wakes waiting and sleeping runs when their time comes: one query for the due ones every
 * interval (the store keeps the schedule), so thousands of waiting runs cost no memory here.
 * A worker wakes them through its bus (any worker drives them); an embedded runtime drives them.
 */
import { serializeError } from '../errors.js';
import type { Store } from '../store/types.js';
import type { Logger } from './logger.js';

/** Options of {@link WakeSweep}. */
export interface WakeSweepOptions {
  store: Store;
  /**
   * Gets a due run going (publish a resume, or drive it); `false`: not woken here (asked again
   * at the next look rather than 30 s later).
   */
  wake: (runId: string) => Promise<void | boolean>;
  logger: Logger;
  now?: () => number;
  /** How often to look (default 1 s). */
  everyMs?: number;
  /** Runs woken per look (default 500). */
  batch?: number;
}

/** Periodic wake-ups of due runs. */
export class WakeSweep {
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  /**
   * Runs woken recently (when, and for which wake-up time), so a run not yet driven is not
   * woken again every look — but one let go again with a new time (a batch's next poll) is.
   */
  private readonly recent = new Map<string, { at: number; wakeAt: number | null }>();

  constructor(private readonly o: WakeSweepOptions) {}

  /** Starts looking. */
  start(): void {
    const every = this.o.everyMs ?? 1_000;
    this.timer = setInterval(() => void this.tick(), every);
    this.timer.unref();
  }

  /** Stops looking. */
  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** One look: wakes the due runs not woken in the last 30 s; returns how many it woke. */
  async tick(): Promise<number> {
    if (this.running) return 0;
    this.running = true;
    let woken = 0;
    try {
      const now = (this.o.now ?? Date.now)();
      for (const [id, r] of this.recent) if (now - r.at > 30_000) this.recent.delete(id);
      const due = await this.o.store.waits.due(now, this.o.batch ?? 500);
      for (const w of due) {
        if (this.recent.get(w.runId)?.wakeAt === w.wakeAt) continue;
        this.recent.set(w.runId, { at: now, wakeAt: w.wakeAt });
        if ((await this.o.wake(w.runId)) === false) {
          this.recent.delete(w.runId);
          continue;
        }
        woken++;
      }
    } catch (e) {
      this.o.logger.error(
        { err: serializeError(e) },
        'wake-up sweep failed: trying again next time',
      );
    } finally {
      this.running = false;
    }
    return woken;
  }
}
