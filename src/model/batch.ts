/**
 * The pure rules of the Message Batches API: the batch price (half the standard price), the
 * `custom_id` of a run's batch item, and the polling schedule. No I/O, no clock.
 */
import { createHash } from 'node:crypto';
import type { Price } from './types.js';

/** The batch discount: the API bills batch requests at 50 % of the standard price. */
export const BATCH_PRICE_FACTOR = 0.5;

/**
 * The price of a request sent in a batch: every field of `price` halved (the cache multipliers
 * of the standard table apply on top of the batch price, so each cache price halves too).
 * @example batchPrice(priceFor('claude-sonnet-4-6')).input // 1.5
 */
export function batchPrice(price: Price): Price {
  return Object.freeze({
    input: price.input * BATCH_PRICE_FACTOR,
    cacheWrite5m: price.cacheWrite5m * BATCH_PRICE_FACTOR,
    cacheWrite1h: price.cacheWrite1h * BATCH_PRICE_FACTOR,
    cacheRead: price.cacheRead * BATCH_PRICE_FACTOR,
    output: price.output * BATCH_PRICE_FACTOR,
  });
}

/** What the API accepts as a `custom_id`: 1-64 letters, digits, '-' or '_'. */
export const CUSTOM_ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

/**
 * The `custom_id` of one attempt of a step of a run: `<runId>-<step>-<attempt>` when that fits
 * the API's rule (readable in the provider's console), else `pl-` and 48 hex digits of a hash
 * of the three (a run id may be 128 characters long). Unique per attempt, so a re-ask or a
 * retry is a new item, and the same on every process (it is derived, never random).
 * @example batchCustomId('r1', 'score', 2) // 'r1-score-2'
 */
export function batchCustomId(runId: string, step: string, attempt: number): string {
  const plain = `${runId}-${step}-${attempt}`;
  if (CUSTOM_ID_PATTERN.test(plain)) return plain;
  const digest = createHash('sha256').update(`${runId}\n${step}\n${attempt}`).digest('hex');
  return `pl-${digest.slice(0, 48)}`;
}

/** How often a batch is polled: from `minMs`, doubling, capped at `maxMs`. */
export interface PollSchedule {
  /** Delay before the first poll (ms). */
  minMs: number;
  /** The longest delay between two polls (ms). */
  maxMs: number;
}

/** Polling defaults: a batch usually ends within an hour and may take 24 h; 5 s doubling to 60 s. */
export const DEFAULT_POLL: Readonly<PollSchedule> = Object.freeze({ minMs: 5_000, maxMs: 60_000 });

/**
 * The delay before poll number `n` (1-based) of a batch: `minMs × 2^(n-1)`, capped at `maxMs`.
 * @example [1, 2, 3, 4, 5].map((n) => pollDelayMs(n, { minMs: 5_000, maxMs: 60_000 })) // 5 s, 10 s, 20 s, 40 s, 60 s
 */
export function pollDelayMs(n: number, schedule: PollSchedule = DEFAULT_POLL): number {
  const k = Math.max(1, Math.floor(n));
  // 2^k overflows to Infinity for a huge k; the cap holds either way.
  return Math.min(schedule.maxMs, schedule.minMs * 2 ** (k - 1));
}

/**
 * How many polls the schedule has made `elapsedMs` after a batch was sent: how many of its poll
 * times (minMs, then each previous time plus the next delay) are past. A run that left memory
 * between two polls picks the schedule up here, so its delays keep growing across wake-ups.
 * @example pollsBefore(15_000, { minMs: 5_000, maxMs: 60_000 }) // 2 (polls at 5 s and 15 s)
 */
export function pollsBefore(elapsedMs: number, schedule: PollSchedule = DEFAULT_POLL): number {
  // A schedule without delays polls back to back: no position to recover.
  if (!(schedule.minMs > 0) || !(schedule.maxMs > 0)) return 0;
  let n = 0;
  let t = 0;
  for (;;) {
    const d = pollDelayMs(n + 1, schedule);
    // At the cap the delays are constant: the rest is a division (no loop over 24 h of polls).
    if (d >= schedule.maxMs) return n + Math.max(0, Math.floor((elapsedMs - t) / d));
    if (t + d > elapsedMs) return n;
    t += d;
    n++;
  }
}
