/**
 * The rate-limit port built once over an adapter's atomic read-modify-write of one key's
 * state: SQLite (an IMMEDIATE transaction) and JetStream (a KV compare-and-set) differ only in
 * that primitive, so both apply `rateRules.ts` identically.
 */
import { z } from 'zod';
import { UsageError } from '../errors.js';
import {
  emptyRateState,
  learnRate,
  settleRate,
  takeRate,
  type RateCost,
  type RateState,
} from './rateRules.js';
import type { RateLimitStore } from './types.js';

/**
 * Applies `f` to a key's state atomically and returns its result; `f` returning a null state
 * writes nothing. `f` may run more than once (a lost compare-and-set): keep it pure.
 */
export type RateUpdate = <T>(
  key: string,
  f: (s: RateState) => { state: RateState | null; result: T },
) => Promise<T>;

const Bucket = z.object({ limit: z.number().nullable(), level: z.number(), at: z.number() });
/** The stored state, checked on read (a corrupt row is refused, never guessed at). */
export const RateStateSchema = z.object({
  v: z.literal(1),
  buckets: z.object({
    requests: Bucket.optional(),
    inputTokens: Bucket.optional(),
    outputTokens: Bucket.optional(),
  }),
  learned: z.boolean(),
  probeUntil: z.number().nullable(),
});

/** A stored state's JSON parsed and checked, or the empty state for none. */
export function parseRateState(json: string | undefined): RateState {
  if (json === undefined) return emptyRateState();
  return RateStateSchema.parse(JSON.parse(json)) as RateState;
}

function checkKey(key: string): string {
  if (typeof key !== 'string' || key === '')
    throw new UsageError('rate-limit key is empty: use `<model>/<hash of the API key>`');
  return key;
}

function checkCost(cost: Partial<RateCost>, what: string): Partial<RateCost> {
  for (const [d, n] of Object.entries(cost))
    if (typeof n !== 'number' || !Number.isFinite(n) || n < 0)
      throw new UsageError(`rate-limit ${what} ${d}=${String(n)}: pass a finite number ≥ 0`);
  return cost;
}

/** The {@link RateLimitStore} over an adapter's `update` and `read`. */
export function ratePort(
  update: RateUpdate,
  read: (key: string) => Promise<RateState | undefined>,
): RateLimitStore {
  return {
    async take(key, cost, now, config) {
      checkCost(cost, 'cost');
      return update(checkKey(key), (s) => {
        const { state, result } = takeRate(s, cost, now, config);
        // A refusal changes nothing worth writing (refilling is a function of the time).
        return { state: result.ok ? state : null, result };
      });
    },
    async settle(key, charged, used, now, config) {
      checkCost(charged, 'charged');
      checkCost(used, 'used');
      await update(checkKey(key), (s) => ({
        state: settleRate(s, charged, used, now, config),
        result: undefined,
      }));
    },
    async learn(key, seen, now) {
      await update(checkKey(key), (s) => ({
        state: learnRate(s, seen, now),
        result: undefined,
      }));
    },
    get: async (key) => read(checkKey(key)),
  };
}
