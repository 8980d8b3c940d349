/**
 * One socket write per turn of the event loop instead of one per microtask.
 *
 * nats.js (3.4) buffers outgoing commands and schedules their write with `queueMicrotask` when
 * the buffer was empty. With many runs in flight, each continuation that sends a request lands
 * in its own microtask, so nearly every request became a socket write of its own (≈ 8 % of the
 * client's CPU at 100 runs in flight, `writeBuffer`). Here the write waits for `setImmediate`:
 * every command issued while the loop processes one batch of I/O goes out in one write. The
 * bytes, their order and the server's view are unchanged; a request waits at most for the
 * current turn of the loop to end (nothing, on an idle process). A buffer past nats.js's own
 * threshold (32 KiB) is still written at once, and `close` writes what is buffered first.
 *
 * It wraps two methods of the connection's protocol handler (not part of nats.js's typed API);
 * when they are not there (another nats.js version), the connection is left as it is.
 */
import type { NatsConnection } from '@nats-io/transport-node';

interface Protocol {
  flushPending(): void;
  close(err?: Error): Promise<void>;
  outbound?: { size(): number };
  pendingLimit?: number;
}

/** Makes `nc` write its buffered commands once per event-loop turn; true when it could. */
export function coalesceWrites(nc: NatsConnection): boolean {
  const p = (nc as unknown as { protocol?: Partial<Protocol> }).protocol;
  if (
    p === undefined ||
    typeof p.flushPending !== 'function' ||
    typeof p.close !== 'function' ||
    typeof p.outbound?.size !== 'function' ||
    typeof p.pendingLimit !== 'number'
  )
    return false;
  const proto = p as Protocol;
  const flushNow = proto.flushPending.bind(proto);
  const close = proto.close.bind(proto);
  let scheduled = false;
  const flushLater = (): void => {
    scheduled = false;
    flushNow();
  };
  proto.flushPending = () => {
    if ((proto.outbound as { size(): number }).size() >= (proto.pendingLimit as number)) {
      flushNow();
      return;
    }
    if (scheduled) return;
    scheduled = true;
    setImmediate(flushLater);
  };
  proto.close = (err?: Error) => {
    flushNow();
    return close(err);
  };
  return true;
}
