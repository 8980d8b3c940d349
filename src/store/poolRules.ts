/**
 * The rules of a spending pool that every adapter applies the same way: what a valid amount and
 * valid caps are, and whether one more call of a given worst case fits. Pure.
 */
import { UsageError } from '../errors.js';
import { roundUsd } from '../machines/context.js';
import type { PoolCaps, PoolState } from './types.js';

/** Slack on the dollar cap, as the run's own budget guard allows (sums are rounded to 1e-9). */
const SLACK_USD = 1e-12;

/**
 * `usd` if it is a finite amount ≥ 0: a NaN would pass every cap comparison and a negative
 * amount would hand budget back, so either is refused before it reaches the pool.
 */
export function checkPoolAmount(usd: number, op: 'reserve' | 'settle'): number {
  if (!Number.isFinite(usd) || usd < 0)
    throw new UsageError(
      `pool ${op} of ${String(usd)} USD: pass the call's cost as a finite number of dollars ≥ 0`,
    );
  return usd;
}

/** `caps` if each is null (no cap) or a finite number ≥ 0 (a whole number for iterations). */
export function checkPoolCaps(caps: PoolCaps): PoolCaps {
  const { budgetUsd: b, maxIterations: n } = caps;
  if (b !== null && (!Number.isFinite(b) || b < 0))
    throw new UsageError(`pool budget ${String(b)} USD: pass null (no cap) or a number ≥ 0`);
  if (n !== null && (!Number.isInteger(n) || n < 0))
    throw new UsageError(`pool call cap ${String(n)}: pass null (no cap) or a whole number ≥ 0`);
  return { budgetUsd: b, maxIterations: n };
}

/**
 * Why one more call of at most `usd` does not fit in the pool — its call cap first, as the run's
 * own guards check it, then its dollars (spent + reserved + `usd` > budget) — or null if it fits.
 */
export function poolRefusal(state: PoolState, usd: number): 'iterations' | 'budget' | null {
  if (state.maxIterations !== null && state.iterations + 1 > state.maxIterations)
    return 'iterations';
  if (
    state.budgetUsd !== null &&
    roundUsd(state.spentUsd + state.reservedUsd + usd) > state.budgetUsd + SLACK_USD
  )
    return 'budget';
  return null;
}
