/**
 * The token-bucket rules of shared provider rate limits, applied the same way by every store
 * adapter: a bucket per window (requests, input tokens, output tokens) per model and API key,
 * refilled continuously at its per-minute capacity, as the provider's own are. Pure: every
 * function takes the time (`now`, epoch ms) and returns a new state; no I/O, no clock.
 */
import type { RateLimitsSeen } from '../model/rateHeaders.js';

/** The three windows, by name. */
export type RateDimension = 'requests' | 'inputTokens' | 'outputTokens';
const DIMS: readonly RateDimension[] = ['requests', 'inputTokens', 'outputTokens'];

/** Per-minute capacities set in config (absent: learned from the headers). */
export type RateLevels = Partial<Record<RateDimension, number>>;

/** What one call costs in each window. */
export type RateCost = Record<RateDimension, number>;

/** One window's bucket: its learned size, and its level at time `at`. */
export interface RateBucket {
  /** The provider's limit from the headers, or null (only a configured capacity is known). */
  limit: number | null;
  level: number;
  at: number;
}

/** What the store keeps per key (versioned JSON). */
export interface RateState {
  v: 1;
  buckets: Partial<Record<RateDimension, RateBucket>>;
  /** True once a response from the provider was learned from (with headers or without). */
  learned: boolean;
  /** While the single-flight probe of an unlearned key is out: until when it holds it. */
  probeUntil: number | null;
}

/** What {@link takeRate} decided. */
export type RateTake =
  /** Go: `charged` is what was taken from which window (hand it back to {@link settleRate}). */
  | { ok: true; charged: Partial<RateCost>; probe: boolean }
  /** No room: ask again in `waitMs`. */
  | { ok: false; waitMs: number; reason: RateDimension | 'probe' };

/** How long a probe holds an unlearned key before another caller may probe (its process may have died). */
export const PROBE_HOLD_MS = 30_000;
/** How often callers look again while another one probes an unlearned key. */
export const PROBE_POLL_MS = 250;
const MINUTE_MS = 60_000;

/** The state of a key never seen. */
export function emptyRateState(): RateState {
  return { v: 1, buckets: {}, learned: false, probeUntil: null };
}

/** The capacity a window paces by now: the smaller of the learned limit and the configured one. */
function capacityOf(b: RateBucket | undefined, configured: number | undefined): number | null {
  const learned = b?.limit ?? null;
  if (configured === undefined || !(configured > 0)) return learned;
  return learned === null ? configured : Math.min(learned, configured);
}

/** The bucket refilled to `now` (never above capacity; a configured-only window starts full). */
function refilled(b: RateBucket | undefined, capacity: number, now: number): RateBucket {
  if (b === undefined) return { limit: null, level: capacity, at: now };
  const dt = Math.max(0, now - b.at);
  const level = Math.min(capacity, b.level + (dt * capacity) / MINUTE_MS);
  return { limit: b.limit, level, at: Math.max(now, b.at) };
}

/**
 * Takes `cost` from every window with a known capacity if all have room, else says how long
 * until they will. A cost above a capacity is taken as the whole capacity (it could never fit
 * otherwise). A key with nothing known (never learned, nothing configured) lets one caller
 * through at a time — the probe whose response teaches the limits — and asks the rest to wait.
 */
export function takeRate(
  state: RateState,
  cost: RateCost,
  now: number,
  config: RateLevels = {},
): { state: RateState; result: RateTake } {
  const known = DIMS.filter((d) => capacityOf(state.buckets[d], config[d]) !== null);
  if (known.length === 0 && !state.learned) {
    if (state.probeUntil !== null && now < state.probeUntil)
      return {
        state,
        result: {
          ok: false,
          waitMs: Math.min(PROBE_POLL_MS, state.probeUntil - now),
          reason: 'probe',
        },
      };
    return {
      state: { ...state, probeUntil: now + PROBE_HOLD_MS },
      result: { ok: true, charged: {}, probe: true },
    };
  }
  const buckets = { ...state.buckets };
  let waitMs = 0;
  let reason: RateDimension = 'requests';
  for (const d of known) {
    const cap = capacityOf(state.buckets[d], config[d]) as number;
    const b = refilled(state.buckets[d], cap, now);
    buckets[d] = b;
    const need = Math.min(cost[d], cap);
    if (b.level < need) {
      const ms = Math.ceil(((need - b.level) * MINUTE_MS) / cap);
      if (ms > waitMs) [waitMs, reason] = [ms, d];
    }
  }
  if (waitMs > 0) return { state: { ...state, buckets }, result: { ok: false, waitMs, reason } };
  const charged: Partial<RateCost> = {};
  for (const d of known) {
    const b = buckets[d] as RateBucket;
    const cap = capacityOf(state.buckets[d], config[d]) as number;
    const need = Math.min(cost[d], cap);
    buckets[d] = { ...b, level: b.level - need };
    charged[d] = need;
  }
  return { state: { ...state, buckets }, result: { ok: true, charged, probe: false } };
}

/**
 * Gives back what a call took and did not use (`charged − used` per window it was charged in;
 * a call that used more than it took takes the rest, which may leave a window in debt), and
 * ends a probe. Windows the call was not charged in are left alone: their level was learned
 * from a response that already counted it.
 */
export function settleRate(
  state: RateState,
  charged: Partial<RateCost>,
  used: Partial<RateCost>,
  now: number,
  config: RateLevels = {},
): RateState {
  const buckets = { ...state.buckets };
  for (const d of DIMS) {
    const took = charged[d];
    const cap = capacityOf(state.buckets[d], config[d]);
    if (took === undefined || cap === null) continue;
    const b = refilled(state.buckets[d], cap, now);
    const back = took - Math.min(used[d] ?? 0, cap);
    buckets[d] = { ...b, level: Math.min(cap, b.level + back) };
  }
  return { ...state, buckets, probeUntil: null };
}

/**
 * Learns from a provider's response: each window's `limit` becomes its size, and its
 * `remaining` caps the local level — the provider's count is the truth, the local one a faster
 * guess. The cap allows the header's granularity (one whole unit, `remaining` is rounded down
 * and was read a moment ago), so a fleet that alone spends the key keeps its fractional room
 * instead of losing it at every answer; when something else spends the key too, the level
 * drops to what the provider says. A window seen for the first time starts at `remaining`.
 * A response without headers (`seen` null) still marks the key learned: no stated limits.
 */
export function learnRate(state: RateState, seen: RateLimitsSeen | null, now: number): RateState {
  const buckets = { ...state.buckets };
  for (const d of DIMS) {
    const w = seen?.[d];
    if (w === undefined) continue;
    const old = state.buckets[d];
    if (old === undefined) {
      buckets[d] = { limit: w.limit, level: w.remaining, at: now };
      continue;
    }
    const b = refilled({ ...old, limit: w.limit }, w.limit, now);
    buckets[d] = { ...b, level: Math.min(b.level, w.remaining + 1) };
  }
  return { ...state, buckets, learned: true, probeUntil: null };
}

/** The level of each known window at `now` (for `get` and tests). */
export function rateLevels(
  state: RateState,
  now: number,
  config: RateLevels = {},
): Partial<Record<RateDimension, { capacity: number; level: number }>> {
  const out: Partial<Record<RateDimension, { capacity: number; level: number }>> = {};
  for (const d of DIMS) {
    const cap = capacityOf(state.buckets[d], config[d]);
    if (cap === null) continue;
    out[d] = { capacity: cap, level: refilled(state.buckets[d], cap, now).level };
  }
  return out;
}
