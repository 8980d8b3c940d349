/**
 * The process-level batcher: collects the batch steps of the runs this process drives into one
 * Message Batch (up to `maxSize` items, or whatever came within `maxDelayMs` of the first), and
 * polls each batch once for all the runs waiting on it, with a capped backoff, until it ends;
 * then hands each run its item's result. Nothing here is durable: the run records the batch id
 * (BATCH_SUBMITTED) and, after a restart, simply waits on that batch again.
 */
import type { BatchClient, BatchItem, BatchItemResult } from '../model/batchTypes.js';
import { DEFAULT_POLL, pollDelayMs, pollsBefore, type PollSchedule } from '../model/batch.js';
import type { ClassifiedError } from '../model/types.js';
import type { Clock } from './clock.js';

/** Options of {@link Batcher}. */
export interface BatcherOptions {
  /**
   * Items per batch (default 1,000). The API takes up to 100,000 requests or 256 MB per batch
   * (its reference says 10,000): keep it well below.
   */
  maxSize?: number;
  /** How long the first item of a batch waits for others before the batch is sent (default 1 s). */
  maxDelayMs?: number;
  /** Polling: the first delay, doubled each poll up to the cap (default 5 s to 60 s). */
  poll?: Partial<PollSchedule>;
}

/** What submitting one item gave: the batch it went into, an error, or nothing (aborted first). */
export type Submitted =
  | { ok: true; batchId: string; items: number }
  | { ok: false; error: ClassifiedError }
  | { ok: false; aborted: true };

/**
 * What waiting for one item gave: its result, a polling error, nothing (aborted), or — for a
 * waiter that asked to leave long waits ({@link WaitOptions.leaveAtMs}) — the batch still in
 * progress and when it is next due a poll.
 */
export type ItemResult =
  | BatchItemResult
  | { type: 'failed'; error: ClassifiedError }
  | { type: 'pending'; nextPollAt: number }
  | null;

/** Options of {@link Batcher.result}. */
export interface WaitOptions {
  /**
   * When the batch was sent (the clock's ms): a poll started for it here picks the schedule up
   * where that time puts it (and polls at once when a poll time has passed), instead of from
   * its first delay — so a run that left memory and came back does not poll from 5 s again.
   */
  since?: number;
  /** Leave (resolve `pending`) rather than wait this long or longer for the next poll. */
  leaveAtMs?: number;
}

interface Waiter {
  done: (r: ItemResult) => void;
  leaveAtMs: number | undefined;
}

interface Queued {
  item: BatchItem;
  done: (s: Submitted) => void;
}

interface Group {
  items: Queued[];
  /** Cuts the group's delay short (it is full). */
  flushNow: AbortController;
  /** Its items went to the API: none can be taken out any more. */
  sent: boolean;
}

interface Poll {
  waiters: Map<string, Waiter[]>;
  /** When the batch was sent, if known (see {@link WaitOptions.since}). */
  since: number | undefined;
  /** Stops the polling once no run waits on the batch any more. */
  stop: AbortController;
}

/** Groups and polls Message Batches for the runs of one process. */
export class Batcher {
  private readonly maxSize: number;
  private readonly maxDelayMs: number;
  private readonly schedule: PollSchedule;
  private readonly groups = new Map<BatchClient, Group>();
  private readonly polls = new Map<string, Poll>();

  constructor(
    opts: BatcherOptions,
    private readonly clock: Clock,
  ) {
    this.maxSize = Math.max(1, Math.floor(opts.maxSize ?? 1_000));
    this.maxDelayMs = Math.max(0, opts.maxDelayMs ?? 1_000);
    this.schedule = { ...DEFAULT_POLL, ...opts.poll };
  }

  /**
   * Adds `item` to the next batch sent through `client`. Resolves once that batch is created
   * (or failed); an item whose run stops before the batch is sent is taken out of it.
   */
  submit(client: BatchClient, item: BatchItem, signal: AbortSignal): Promise<Submitted> {
    return new Promise<Submitted>((resolve) => {
      if (signal.aborted) return resolve({ ok: false, aborted: true });
      let group = this.groups.get(client);
      if (group === undefined) {
        group = { items: [], flushNow: new AbortController(), sent: false };
        this.groups.set(client, group);
        void this.sendAfterDelay(client, group);
      }
      const g = group;
      const queued: Queued = {
        item,
        done: (s) => {
          signal.removeEventListener('abort', onAbort);
          resolve(s);
        },
      };
      const onAbort = (): void => {
        // Still queued (not sent): take it out; once sent, the submit's answer resolves it.
        const i = g.items.indexOf(queued);
        if (i >= 0 && !g.sent) {
          g.items.splice(i, 1);
          queued.done({ ok: false, aborted: true });
          // Emptied: no batch to send (and no timer left waiting for one).
          if (g.items.length === 0) {
            if (this.groups.get(client) === g) this.groups.delete(client);
            g.flushNow.abort();
          }
        }
      };
      signal.addEventListener('abort', onAbort, { once: true });
      g.items.push(queued);
      if (g.items.length >= this.maxSize) {
        // Full: closed now, so the next item starts the next batch.
        this.groups.delete(client);
        g.flushNow.abort();
      }
    });
  }

  private async sendAfterDelay(client: BatchClient, group: Group): Promise<void> {
    await this.clock.sleep(this.maxDelayMs, group.flushNow.signal);
    // Closed: later items start the next group.
    if (this.groups.get(client) === group) this.groups.delete(client);
    group.sent = true;
    const items = group.items.splice(0);
    if (items.length === 0) return;
    // Not aborted by any one run: the batch is shared (a run stopped meanwhile re-decides on
    // resume; see the at-least-once window in the README).
    const r = await guard(() => client.submit(items.map((q) => q.item)));
    for (const q of items) q.done(r.ok ? { ok: true, batchId: r.batchId, items: items.length } : r);
  }

  /**
   * Waits for the result of item `customId` of batch `batchId`, polling the batch (once for all
   * its waiters in this process) with the capped backoff. Resolves null when `signal` aborts,
   * `pending` when the next poll is at least `opts.leaveAtMs` away.
   */
  result(
    client: BatchClient,
    batchId: string,
    customId: string,
    signal: AbortSignal,
    opts: WaitOptions = {},
  ): Promise<ItemResult> {
    return new Promise<ItemResult>((resolve) => {
      if (signal.aborted) return resolve(null);
      let poll = this.polls.get(batchId);
      const fresh = poll === undefined;
      if (poll === undefined) {
        poll = { waiters: new Map(), since: opts.since, stop: new AbortController() };
        this.polls.set(batchId, poll);
      }
      const p = poll;
      const list = p.waiters.get(customId) ?? [];
      p.waiters.set(customId, list);
      const waiter: Waiter = {
        done: (r: ItemResult): void => {
          signal.removeEventListener('abort', onAbort);
          resolve(r);
        },
        leaveAtMs: opts.leaveAtMs,
      };
      const onAbort = (): void => {
        const at = list.indexOf(waiter);
        if (at >= 0) list.splice(at, 1);
        if (list.length === 0) p.waiters.delete(customId);
        if (p.waiters.size === 0) p.stop.abort();
        resolve(null);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      list.push(waiter);
      // Started once its first waiter is in (it may hand that waiter `pending` at once).
      if (fresh) void this.pollUntilEnded(client, batchId, p);
    });
  }

  private async pollUntilEnded(client: BatchClient, batchId: string, poll: Poll): Promise<void> {
    const finish = (pick: (customId: string) => ItemResult): void => {
      if (this.polls.get(batchId) === poll) this.polls.delete(batchId);
      for (const [customId, list] of poll.waiters)
        for (const w of list.splice(0)) w.done(pick(customId));
      poll.waiters.clear();
    };
    const stop = poll.stop.signal;
    const since = poll.since;
    // `n`: the polls made so far by the schedule (this process's and earlier ones', from `since`).
    let n = since === undefined ? 0 : pollsBefore(this.clock.now() - since, this.schedule);
    // A poll time has passed (a run woken at its next poll, or resumed late): poll at once.
    let pollNow = n >= 1;
    for (;;) {
      if (!pollNow) {
        const delay =
          n === 0 && since !== undefined
            ? Math.max(0, since + pollDelayMs(1, this.schedule) - this.clock.now())
            : pollDelayMs(n + 1, this.schedule);
        // Waiters that leave long waits go now; nobody left: no poll.
        if (this.letGo(poll, delay) === 0) {
          if (this.polls.get(batchId) === poll) this.polls.delete(batchId);
          return;
        }
        await this.clock.sleep(delay, stop);
        n++;
      }
      pollNow = false;
      if (stop.aborted) {
        if (this.polls.get(batchId) === poll) this.polls.delete(batchId);
        return;
      }
      const s = await guard(() => client.status(batchId));
      if (!s.ok) {
        // A transient failure (429, 5xx, connection): poll again later; anything else is final.
        if (s.error.retryable) continue;
        return finish(() => ({ type: 'failed', error: s.error }));
      }
      if (s.status !== 'ended') continue;
      const r = await guard(() => client.results(batchId));
      if (!r.ok) {
        if (r.error.retryable) continue;
        return finish(() => ({ type: 'failed', error: r.error }));
      }
      return finish((customId) => r.results.get(customId) ?? missing(batchId, customId));
    }
  }

  /**
   * Hands `pending` to the waiters of `poll` that leave a wait of `delayMs` (the next poll's
   * time with it); returns how many waiters stay.
   */
  private letGo(poll: Poll, delayMs: number): number {
    const nextPollAt = this.clock.now() + delayMs;
    let stay = 0;
    for (const [customId, list] of poll.waiters) {
      for (const w of list.filter((x) => x.leaveAtMs !== undefined && delayMs >= x.leaveAtMs)) {
        list.splice(list.indexOf(w), 1);
        w.done({ type: 'pending', nextPollAt });
      }
      if (list.length === 0) poll.waiters.delete(customId);
      stay += list.length;
    }
    return stay;
  }
}

/**
 * Calls a port method that should never throw; one that does (a broken adapter) becomes a
 * non-retryable error for its waiters instead of leaving them waiting forever.
 */
async function guard<T>(f: () => Promise<T>): Promise<T | { ok: false; error: ClassifiedError }> {
  try {
    return await f();
  } catch (e) {
    return {
      ok: false,
      error: {
        kind: 'unknown',
        status: null,
        retryable: false,
        message: `the batch client threw: ${e instanceof Error ? e.message : String(e)}`,
        retryAfterMs: null,
        requestId: null,
      },
    };
  }
}

/** An ended batch without the item: not retryable (submitting again would not explain it). */
function missing(batchId: string, customId: string): ItemResult {
  return {
    type: 'failed',
    error: {
      kind: 'batch_item_missing',
      status: null,
      retryable: false,
      message: `batch ${batchId} ended without a result for item ${customId}: look it up with the Message Batches API`,
      retryAfterMs: null,
      requestId: null,
    },
  };
}
