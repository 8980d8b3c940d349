/**
 * Caps on live SSE streams, per run and overall: every stream holds a tail listener, a
 * heartbeat timer and (per run) a replaying actor, so an unbounded number of them exhausts the
 * process. A slot is taken synchronously before any work and released exactly once.
 */
import { HttpError } from './http.js';

/** The caps of {@link StreamSlots}. */
export interface StreamCaps {
  /** Streams of one run (default 20). */
  perRun: number;
  /** Streams in all (default 200), the all-runs stream included. */
  total: number;
  /** Seconds a refused client is asked to wait (`Retry-After`, default 5). */
  retryAfterS?: number;
}

/** Counts open streams and refuses one over a cap with a 503. */
export class StreamSlots {
  private total = 0;
  private readonly perRun = new Map<string, number>();

  constructor(private readonly caps: StreamCaps) {}

  /** Open streams, overall or of one run. */
  count(runId?: string): number {
    return runId === undefined ? this.total : (this.perRun.get(runId) ?? 0);
  }

  /**
   * Takes a slot for a stream of `runId` (null: the all-runs stream); returns its release,
   * which may be called any number of times.
   * @throws HttpError 503 with `retry-after` when a cap is reached.
   */
  take(runId: string | null): () => void {
    const retry = { 'retry-after': String(this.caps.retryAfterS ?? 5) };
    if (this.total >= this.caps.total) {
      throw new HttpError(
        503,
        `too many live streams (${this.total} open, the cap is ${this.caps.total}): close other visualizer pages and retry`,
        retry,
      );
    }
    const mine = runId === null ? 0 : (this.perRun.get(runId) ?? 0);
    if (runId !== null && mine >= this.caps.perRun) {
      throw new HttpError(
        503,
        `too many live streams for run '${runId}' (${mine} open, the cap is ${this.caps.perRun}): close other pages watching it and retry`,
        retry,
      );
    }
    this.total++;
    if (runId !== null) this.perRun.set(runId, mine + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.total--;
      if (runId === null) return;
      const left = (this.perRun.get(runId) ?? 1) - 1;
      if (left <= 0) this.perRun.delete(runId);
      else this.perRun.set(runId, left);
    };
  }
}
