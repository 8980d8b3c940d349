/**
 * No `Error` built per answered request.
 *
 * nats.js (3.4) ends every request, answered or not, with `RequestOne.cancel()`, which rejects
 * the request's inner promise with a new `RequestError("cancelled")`. Once the request was
 * answered (or timed out) that promise is already settled, or only raced by one that is, so the
 * rejection is never seen — but building the error captures a stack trace: 3–9 µs for each of a
 * run's ≈ 20 requests (≈ 4 % of the client's CPU at 100 runs in flight). Here the requests of
 * one connection end with one shared error instead; a cancel that carries an error (the
 * connection's own failures) is nats.js's own.
 *
 * It wraps the connection's request multiplexer (not part of nats.js's typed API); when it is not
 * there (another nats.js version), the connection is left as it is.
 */
import type { NatsConnection } from '@nats-io/transport-node';

interface Request {
  cancel(err?: Error): void;
  timer?: { cancel(): void };
  deferred?: { reject(err: Error): void };
  mux: { cancel(r: Request): void };
}

/** Makes the requests of `nc` end without building an error each; true when it could. */
export function quietRequestEnds(nc: NatsConnection): boolean {
  const mux = (
    nc as unknown as { protocol?: { muxSubscriptions?: { add?: (r: Request) => void } } }
  ).protocol?.muxSubscriptions;
  if (mux === undefined || typeof mux.add !== 'function') return false;
  const add = mux.add.bind(mux);
  let cancelled: Error | undefined;
  /** Same steps as `RequestOne.cancel`, with one error for the rejection nobody sees. */
  function quietCancel(this: Request, err?: Error): void {
    const own = Object.getPrototypeOf(this) as Request;
    if (err !== undefined) return own.cancel.call(this, err);
    this.timer?.cancel();
    this.mux.cancel(this);
    cancelled ??= Object.assign(new Error('cancelled'), { name: 'RequestError' });
    this.deferred?.reject(cancelled);
  }
  mux.add = (r: Request) => {
    // Only single-answer requests (a timer and a deferred): `requestMany` keeps its own cancel.
    if (r.deferred !== undefined && r.timer !== undefined && typeof r.cancel === 'function')
      r.cancel = quietCancel;
    add(r);
  };
  return true;
}
