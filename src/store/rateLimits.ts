/**
 * The rate-limit port built once over an adapter's atomic read-modify-write of one key's
 * state: SQLite (an IMMEDIATE transaction) and JetStream (a KV compare-and-set) differ only in
 * that primitive, so both apply `rateRules.ts` identically.
 */
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

/** One stored bucket, or a thrown error naming what is wrong with it. */
function checkBucket(b: unknown, name: string): void {
  if (b === undefined) return;
  const o = b as Record<string, unknown> | null;
  const num = (v: unknown): boolean => typeof v === 'number' && Number.isFinite(v);
  if (
    typeof o !== 'object' ||
    o === null ||
    !(o.limit === null || num(o.limit)) ||
    !num(o.level) ||
    !num(o.at)
  )
    throw new Error(`rate-limit state: bucket '${name}' is not { limit, level, at }`);
}

/**
 * A stored state checked by hand (a corrupt row is refused, never guessed at). Not with zod:
 * the store is opened by read-only CLI verbs that must not load it.
 */
export function checkRateState(value: unknown): RateState {
  const o = value as Record<string, unknown> | null;
  if (typeof o !== 'object' || o === null || o.v !== 1)
    throw new Error('rate-limit state: not a version 1 state');
  const buckets = o.buckets as Record<string, unknown> | null;
  if (typeof buckets !== 'object' || buckets === null)
    throw new Error('rate-limit state: no buckets');
  for (const name of ['requests', 'inputTokens', 'outputTokens']) checkBucket(buckets[name], name);
  if (typeof o.learned !== 'boolean') throw new Error('rate-limit state: learned is not a boolean');
  if (!(
    o.probeUntil === null ||
    (typeof o.probeUntil === 'number' && Number.isFinite(o.probeUntil))
  ))
    throw new Error('rate-limit state: probeUntil is not a time or null');
  return value as RateState;
}

/** A stored state's JSON parsed and checked, or the empty state for none. */
export function parseRateState(json: string | undefined): RateState {
  if (json === undefined) return emptyRateState();
  return checkRateState(JSON.parse(json));
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
