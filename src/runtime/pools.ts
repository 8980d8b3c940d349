/**
 * A child run's calls against its ancestors' spending pools: reserved before the limits judge
 * the attempt (a refusal parks the child as over that cap), settled at the actual cost after.
 */
import type { RunContext } from '../machines/context.js';
import type { Store } from '../store/types.js';

/** The ATTEMPT's `pool` field: the reservation's key, and the refusal if one pool refused. */
export interface PoolMark {
  key: string;
  refused?: 'budget' | 'iterations' | undefined;
  detail?: string | undefined;
}

const usd = (x: number): string => `$${x.toFixed(6)}`;

/**
 * Reserves a call of at most `cost` under `key` in each of the run's pools, outermost first;
 * on a refusal the reservations already made are released. Null when the run has no pools.
 */
export async function reservePools(
  store: Store,
  ctx: RunContext,
  key: string,
  cost: number,
): Promise<PoolMark | null> {
  const pools = ctx.limits.pools ?? [];
  if (pools.length === 0 || store.pools === undefined) return null;
  const made: string[] = [];
  for (const pool of pools) {
    const r = await store.pools.reserve(pool, key, cost);
    if (r.ok) {
      made.push(pool);
      continue;
    }
    for (const m of made) await store.pools.settle(m, key, 0);
    const s = r.state;
    const owner = pool.slice(0, pool.lastIndexOf('/'));
    const detail =
      r.refused === 'budget'
        ? `the budget of parent run ${owner}: children spent ${usd(s.spentUsd)} + reserved ${usd(s.reservedUsd)} + this call's worst case ${usd(cost)} > ${usd(s.budgetUsd ?? 0)} left for them; resume ${owner} with a higher --budget-usd`
        : `the call cap of parent run ${owner}: children made ${s.iterations} calls of ${String(s.maxIterations)} left for them; resume ${owner} with a higher --max-iterations`;
    return { key, refused: r.refused, detail };
  }
  return { key };
}

/** Settles the pending call's reservation (if any) at `cost` in each of the run's pools. */
export async function settlePools(store: Store, ctx: RunContext, cost: number): Promise<void> {
  const key = ctx.pending?.pool?.key;
  if (key === undefined || ctx.pending?.pool?.refused !== undefined) return;
  for (const pool of ctx.limits.pools ?? []) await store.pools?.settle(pool, key, cost);
}

/** Releases a reservation whose call is not made (the attempt parked): settled at nothing. */
export async function releasePools(
  store: Store,
  ctx: RunContext,
  mark: PoolMark | undefined,
): Promise<void> {
  if (mark === undefined || mark.refused !== undefined) return;
  for (const pool of ctx.limits.pools ?? []) await store.pools?.settle(pool, mark.key, 0);
}
