/**
 * One tail of the whole store for every live page: polls `readAll` after the last position seen
 * and hands new envelopes to the listeners. Polls only while someone listens; a listener
 * registered after an idle spell may also see envelopes older than its registration, so
 * listeners deduplicate (by position or by seq).
 */
import type { Logger } from 'pino';
import type { EventLog, PositionedEnvelope } from '../store/types.js';

/** Receives each new envelope, in store order. */
export type TailListener = (env: PositionedEnvelope) => void;

const PAGE = 1000;

/** A shared poller of {@link EventLog.readAll}. */
export class StoreTail {
  /** Position of the last envelope seen; null until the end of the store is found. */
  private head: number | null = null;
  private readonly listeners = new Set<TailListener>();
  private timer: NodeJS.Timeout | null = null;
  private chain: Promise<void> = Promise.resolve();
  private closed = false;

  constructor(
    private readonly log: EventLog,
    private readonly pollMs: number,
    private readonly logger: Logger,
  ) {}

  /**
   * Adds a listener and waits until the tail has read everything in the store; resolves with
   * that position: every envelope after it will reach the listener.
   */
  async subscribe(listener: TailListener): Promise<{ head: number; unsubscribe: () => void }> {
    this.listeners.add(listener);
    const unsubscribe = (): void => {
      this.listeners.delete(listener);
    };
    try {
      await this.pump();
    } catch (e) {
      unsubscribe();
      throw e;
    }
    this.schedule();
    return { head: this.head ?? 0, unsubscribe };
  }

  /** Stops polling. */
  close(): void {
    this.closed = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.listeners.clear();
  }

  /** Reads to the end of the store; runs one at a time, each after the previous. */
  private pump(): Promise<void> {
    const run = this.chain.then(() => this.readToEnd());
    this.chain = run.catch(() => undefined);
    return run;
  }

  /**
   * The position of the last envelope in the store, found with O(log n) one-envelope reads
   * (exponential then binary search on "is there anything after p?") instead of a full scan.
   */
  private async findEnd(): Promise<number> {
    const after = async (p: number): Promise<boolean> => (await this.log.readAll(p, 1)).length > 0;
    if (!(await after(0))) return 0;
    let lo = 0;
    let hi = 1;
    while (await after(hi)) {
      lo = hi;
      hi *= 2;
    }
    while (hi - lo > 1) {
      const mid = Math.floor((lo + hi) / 2);
      if (await after(mid)) lo = mid;
      else hi = mid;
    }
    return hi;
  }

  private async readToEnd(): Promise<void> {
    this.head ??= await this.findEnd();
    for (;;) {
      const page = await this.log.readAll(this.head, PAGE);
      for (const env of page) {
        this.head = env.pos;
        for (const l of [...this.listeners]) {
          try {
            l(env);
          } catch (e) {
            this.logger.warn({ err: e }, 'viz: a live listener failed');
          }
        }
      }
      if (page.length < PAGE) break;
    }
  }

  private schedule(): void {
    if (this.closed || this.timer !== null || this.listeners.size === 0) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      if (this.listeners.size === 0) return;
      this.pump()
        .catch((e: unknown) => this.logger.warn({ err: e }, 'viz: reading new events failed'))
        .finally(() => this.schedule());
    }, this.pollMs);
  }
}
