/**
 * Bounded reads of a JetStream stream through a short-lived pull consumer. The consumer's
 * `num_pending` at creation says exactly how many messages there are to read, so a read of
 * an empty range returns at once instead of waiting forever (an ordered `consume()` on an
 * empty subject never ends), and no read waits for messages published after it started.
 */
import type { ConsumerConfig, JetStreamClient, JetStreamManager, JsMsg } from '@nats-io/jetstream';
import { natsCore, natsJetStream } from './natsLib.js';

const { AckPolicy, DeliverPolicy } = natsJetStream;
const { nanos } = natsCore;

/** What to read. */
export interface RangeQuery {
  stream: string;
  /** Only messages on this subject (a single subject: NATS 2.9 has no multi-filter consumers). */
  filter?: string;
  /** First stream sequence to consider (default: the stream's first). */
  startSeq?: number;
  /** Only the last message of each subject (KV buckets: the current value of every key). */
  lastPerSubject?: boolean;
  /** At most this many messages. */
  limit?: number;
}

/** Counters for tests and metrics: how much reading actually happened. */
export interface ReadStats {
  consumers: number;
  delivered: number;
  /** The last range read: where it started and how many messages it matched. */
  last?: { stream: string; filter?: string; startSeq: number; pending: number };
}

const FETCH_BATCH = 1_000;
/** Pending messages arrive in milliseconds; waiting this long means they are not coming. */
const FETCH_EXPIRES_MS = 2_000;
/** A fetch still open this long after its expiry is stuck (see the watchdog below). */
const WATCHDOG_SLACK_MS = 3_000;

/** A bounded read got fewer messages than its consumer had pending (transient: retry it). */
export class ReadIncompleteError extends Error {
  constructor(stream: string, got: number, want: number) {
    super(`read of ${stream} stalled after ${got} of ${want} messages`);
    this.name = 'ReadIncompleteError';
  }
}

/** Reads a bounded range in stream order; the consumer is deleted afterwards. */
export async function readRange(
  js: JetStreamClient,
  jsm: JetStreamManager,
  q: RangeQuery,
  stats?: ReadStats,
  onCleanup?: (p: Promise<unknown>) => void,
): Promise<JsMsg[]> {
  const limit = q.limit ?? Number.MAX_SAFE_INTEGER;
  if (limit <= 0) return [];
  const cfg: Partial<ConsumerConfig> = {
    ack_policy: AckPolicy.None,
    mem_storage: true,
    num_replicas: 1,
    // A safety net if the delete below is lost (the process died mid-read).
    inactive_threshold: nanos(60_000),
    deliver_policy: q.lastPerSubject
      ? DeliverPolicy.LastPerSubject
      : q.startSeq !== undefined && q.startSeq > 1
        ? DeliverPolicy.StartSequence
        : DeliverPolicy.All,
    ...(q.startSeq !== undefined && q.startSeq > 1 && !q.lastPerSubject
      ? { opt_start_seq: q.startSeq }
      : {}),
    ...(q.filter !== undefined ? { filter_subject: q.filter } : {}),
  };
  const ci = await jsm.consumers.add(q.stream, cfg);
  if (stats) {
    stats.consumers++;
    stats.last = {
      stream: q.stream,
      ...(q.filter !== undefined ? { filter: q.filter } : {}),
      startSeq: q.startSeq ?? 1,
      pending: ci.num_pending,
    };
  }
  try {
    const want = Math.min(ci.num_pending, limit);
    const out: JsMsg[] = [];
    const consumer = js.consumers.getConsumerFromInfo(ci);
    while (out.length < want) {
      const batch = await consumer.fetch({
        max_messages: Math.min(want - out.length, FETCH_BATCH),
        expires: FETCH_EXPIRES_MS,
      });
      // After a reconnect the client re-checks the consumer until it answers, forever: when the
      // consumer lived on a node that died, the iterator would never end. Stop it ourselves.
      const watchdog = setTimeout(
        () => batch.stop(new ReadIncompleteError(q.stream, out.length, want)),
        FETCH_EXPIRES_MS + WATCHDOG_SLACK_MS,
      );
      let got = 0;
      try {
        for await (const m of batch) {
          out.push(m);
          got++;
        }
      } finally {
        clearTimeout(watchdog);
      }
      if (got === 0) {
        // Nothing came within `expires`. Either the messages were deleted under us (the consumer
        // has nothing left: return what we have), or the consumer stopped answering (its node
        // died): fail, so the caller retries rather than taking a short read for the whole.
        const now = await consumer.info();
        if (now.num_pending > 0 || now.num_ack_pending > 0)
          throw new ReadIncompleteError(q.stream, out.length, want);
        break;
      }
    }
    if (stats) stats.delivered += out.length;
    return out;
  } finally {
    const del = jsm.consumers.delete(q.stream, ci.name).catch(() => false);
    onCleanup?.(del);
  }
}
