/**
 * The spending-pool part of the store contract: every adapter reserves, refuses and settles
 * the same way, and concurrent reservations never cross a pool's caps.
 */
import { expect, it } from 'vitest';
import type { PoolStore, Store } from '../../src/store/types.js';

let counter = 0;
/** A fresh pool name shaped as the runtime makes them (`<runId>/<step>`), dots and all. */
const pid = (): string => `run-${Date.now().toString(36)}-${(counter++).toString(36)}/map.step`;

const zero = { spentUsd: 0, reservedUsd: 0, iterations: 0 };

/** Reserves `n` calls of `usd` at once, keys `<prefix>-<i>`; returns each answer in key order. */
export async function reserveAtOnce(
  pools: PoolStore,
  pool: string,
  prefix: string,
  n: number,
  usd: number,
): Promise<Awaited<ReturnType<PoolStore['reserve']>>[]> {
  return Promise.all(
    Array.from({ length: n }, (_, i) => pools.reserve(pool, `${prefix}-${i}`, usd)),
  );
}

/** Registers the pool tests inside a store contract suite (`store()` is its open store). */
export function describePools(store: () => Store): void {
  const pools = (): PoolStore => store().pools;

  it('pools: opens a pool and reads it back; an unknown pool is undefined', async () => {
    const pool = pid();
    expect(await pools().get(pool)).toBeUndefined();
    await pools().open(pool, { budgetUsd: 1, maxIterations: 5 });
    expect(await pools().get(pool)).toEqual({ budgetUsd: 1, maxIterations: 5, ...zero });
    const open = pid();
    await pools().open(open, { budgetUsd: null, maxIterations: null });
    expect(await pools().get(open)).toEqual({ budgetUsd: null, maxIterations: null, ...zero });
  });

  it('pools: reserves within the caps and refuses what would cross the budget', async () => {
    const pool = pid();
    await pools().open(pool, { budgetUsd: 1, maxIterations: null });
    expect(await pools().reserve(pool, 'a', 0.6)).toEqual({ ok: true });
    const held = {
      budgetUsd: 1,
      maxIterations: null,
      spentUsd: 0,
      reservedUsd: 0.6,
      iterations: 1,
    };
    expect(await pools().get(pool)).toEqual(held);
    // 0.6 reserved + 0.5 > 1: refused with the state it was refused against, nothing counted.
    expect(await pools().reserve(pool, 'b', 0.5)).toEqual({
      ok: false,
      refused: 'budget',
      state: held,
    });
    expect(await pools().get(pool)).toEqual(held);
    // Spent counts as reserved did: 0.4 spent + 0.5 fits, then 0.4 + 0.5 + 0.2 does not.
    await pools().settle(pool, 'a', 0.4);
    expect(await pools().reserve(pool, 'b', 0.5)).toEqual({ ok: true });
    expect(await pools().reserve(pool, 'c', 0.2)).toMatchObject({ ok: false, refused: 'budget' });
    // Exactly up to the cap fits (0.4 + 0.5 + 0.1 = 1, despite float sums).
    expect(await pools().reserve(pool, 'c', 0.1)).toEqual({ ok: true });
    expect(await pools().get(pool)).toMatchObject({
      spentUsd: 0.4,
      reservedUsd: 0.6,
      iterations: 3,
    });
  });

  it('pools: refuses the call past the call cap (reason iterations)', async () => {
    const pool = pid();
    await pools().open(pool, { budgetUsd: null, maxIterations: 2 });
    expect(await pools().reserve(pool, 'a', 100)).toEqual({ ok: true });
    expect(await pools().reserve(pool, 'b', 100)).toEqual({ ok: true });
    const r = await pools().reserve(pool, 'c', 0);
    expect(r).toEqual({
      ok: false,
      refused: 'iterations',
      state: { budgetUsd: null, maxIterations: 2, spentUsd: 0, reservedUsd: 200, iterations: 2 },
    });
    // A key already reserved is still ok at the cap (it is the same call, asked again).
    expect(await pools().reserve(pool, 'b', 100)).toEqual({ ok: true });
    // Settling does not give a call back: calls count when reserved.
    await pools().settle(pool, 'a', 1);
    expect(await pools().reserve(pool, 'c', 0)).toMatchObject({ refused: 'iterations' });
  });

  it('pools: a reserve is idempotent per key, before and after its settle', async () => {
    const pool = pid();
    await pools().open(pool, { budgetUsd: 1, maxIterations: 10 });
    expect(await pools().reserve(pool, 'k', 0.3)).toEqual({ ok: true });
    expect(await pools().reserve(pool, 'k', 0.3)).toEqual({ ok: true });
    expect(await pools().reserve(pool, 'k', 0.9)).toEqual({ ok: true });
    expect(await pools().get(pool)).toMatchObject({ reservedUsd: 0.3, iterations: 1 });
    await pools().settle(pool, 'k', 0.25);
    expect(await pools().reserve(pool, 'k', 0.3)).toEqual({ ok: true });
    expect(await pools().get(pool)).toMatchObject({
      spentUsd: 0.25,
      reservedUsd: 0,
      iterations: 1,
    });
  });

  it('pools: settle moves the reservation to spent at the actual cost, once', async () => {
    const pool = pid();
    await pools().open(pool, { budgetUsd: 2, maxIterations: null });
    await pools().reserve(pool, 'a', 0.5);
    await pools().reserve(pool, 'b', 0.7);
    await pools().settle(pool, 'a', 0.125);
    expect(await pools().get(pool)).toMatchObject({ spentUsd: 0.125, reservedUsd: 0.7 });
    // Settled again (even at another amount): nothing changes.
    await pools().settle(pool, 'a', 0.5);
    expect(await pools().get(pool)).toMatchObject({ spentUsd: 0.125, reservedUsd: 0.7 });
    // An unknown key and an unknown pool are no-ops.
    await pools().settle(pool, 'nobody', 1);
    await pools().settle(pid(), 'a', 1);
    expect(await pools().get(pool)).toMatchObject({ spentUsd: 0.125, reservedUsd: 0.7 });
    await pools().settle(pool, 'b', 0.7);
    expect(await pools().get(pool)).toMatchObject({
      spentUsd: 0.825,
      reservedUsd: 0,
      iterations: 2,
    });
  });

  it('pools: open on an existing pool sets new caps and keeps spend and reservations', async () => {
    const pool = pid();
    await pools().open(pool, { budgetUsd: 5, maxIterations: 10 });
    await pools().reserve(pool, 'a', 1);
    await pools().settle(pool, 'a', 0.75);
    await pools().reserve(pool, 'b', 1);
    await pools().open(pool, { budgetUsd: 2, maxIterations: 3 });
    expect(await pools().get(pool)).toEqual({
      budgetUsd: 2,
      maxIterations: 3,
      spentUsd: 0.75,
      reservedUsd: 1,
      iterations: 2,
    });
    // The new budget applies: 0.75 + 1 + 0.5 > 2.
    expect(await pools().reserve(pool, 'c', 0.5)).toMatchObject({ ok: false, refused: 'budget' });
  });

  it('pools: a reserve in an unknown pool is ok and creates nothing', async () => {
    const pool = pid();
    expect(await pools().reserve(pool, 'a', 1e9)).toEqual({ ok: true });
    expect(await pools().get(pool)).toBeUndefined();
  });

  it('pools: refuses an amount or a cap that is not a finite number ≥ 0, naming the fix', async () => {
    const pool = pid();
    await pools().open(pool, { budgetUsd: 1, maxIterations: null });
    await expect(pools().reserve(pool, 'a', Number.NaN)).rejects.toThrow(
      /finite number of dollars/,
    );
    await expect(pools().reserve(pool, 'a', -0.1)).rejects.toThrow(/finite number of dollars/);
    await expect(pools().settle(pool, 'a', Infinity)).rejects.toThrow(/finite number of dollars/);
    await expect(pools().open(pool, { budgetUsd: -1, maxIterations: null })).rejects.toThrow(
      /null \(no cap\) or a number/,
    );
    await expect(pools().open(pool, { budgetUsd: 1, maxIterations: 1.5 })).rejects.toThrow(
      /whole number/,
    );
    expect(await pools().get(pool)).toEqual({ budgetUsd: 1, maxIterations: null, ...zero });
  });

  it('pools: 50 concurrent reserves of $0.10 against $1.00 → exactly 10 ok; spend never crosses', async () => {
    const pool = pid();
    await pools().open(pool, { budgetUsd: 1, maxIterations: null });
    const answers = await reserveAtOnce(pools(), pool, 'call', 50, 0.1);
    const ok = answers.flatMap((a, i) => (a.ok ? [`call-${i}`] : []));
    expect(ok).toHaveLength(10);
    for (const a of answers) if (!a.ok) expect(a.refused).toBe('budget');
    expect(await pools().get(pool)).toMatchObject({ reservedUsd: 1, spentUsd: 0, iterations: 10 });
    await Promise.all(ok.map((k) => pools().settle(pool, k, 0.1)));
    expect(await pools().get(pool)).toEqual({
      budgetUsd: 1,
      maxIterations: null,
      spentUsd: 1,
      reservedUsd: 0,
      iterations: 10,
    });
    expect(await pools().reserve(pool, 'one-more', 0.01)).toMatchObject({ refused: 'budget' });
  });
}
