/**
 * Spending pools in a JetStream KV bucket. One entry per pool holds its caps, spend, reserved
 * total, call count and the calls reserved but not yet settled; every change is a
 * compare-and-set on the entry's revision, retried (after a short random wait) when another
 * writer got there first, so reservations from any number of processes never cross a cap.
 *
 * Keys: a pool `<runId>/<step>` is stored under `kvKey(pool)` (`=` + base64url, since '/' and
 * other run-id characters are not plain KV tokens). A settled call leaves a marker entry
 * `settled.<sha256 of [pool, key]>`, written before the pool entry forgets the call, so a
 * reserve that no longer finds its key in the entry finds the marker and counts nothing twice,
 * however long ago the call was settled (a bounded "recently settled" list would forget).
 */
import type { KV } from '@nats-io/kv';
import { roundUsd } from '../machines/context.js';
import { hashKey, jsSchemas, kvKey } from './jetstreamIndex.js';
import type { PoolRecord } from './jetstreamSchemas.js';
import { isWrongLastSequence, type NatsLink } from './natsConnect.js';
import { checkPoolAmount, checkPoolCaps, poolRefusal } from './poolRules.js';
import type { PoolCaps, PoolReservation, PoolState, PoolStore } from './types.js';

type Value = PoolRecord;

const stateOf = (v: Value): PoolState => ({
  budgetUsd: v.budgetUsd,
  maxIterations: v.maxIterations,
  spentUsd: v.spentUsd,
  reservedUsd: v.reservedUsd,
  iterations: v.iterations,
});

/** Waits a few random milliseconds, more after each lost race, so racers spread out. */
const backoff = (n: number): Promise<void> =>
  new Promise((r) => setTimeout(r, Math.random() * Math.min(2 + 2 ** n, 25)));

/** The pool port over the `<prefix>_pools` bucket. */
export function kvPools(link: NatsLink, kv: KV): PoolStore {
  const settledKey = (pool: string, key: string): string => `settled.${hashKey([pool, key])}`;
  const read = async (pool: string): Promise<{ value: Value; revision: number } | undefined> => {
    const e = await link.retry(() => kv.get(kvKey(pool)));
    if (e === null || e.operation !== 'PUT') return undefined;
    return { value: (await jsSchemas()).PoolRecord.parse(e.json()), revision: e.revision };
  };
  const wasSettled = async (pool: string, key: string): Promise<boolean> => {
    const e = await link.retry(() => kv.get(settledKey(pool, key)));
    return e !== null && e.operation === 'PUT';
  };
  /**
   * Writes `value` over `revision` (0: create); false when another write came first. A retried
   * write whose first attempt landed also reads as false: callers re-read and find it done.
   */
  const cas = async (pool: string, value: Value, revision: number): Promise<boolean> => {
    const body = JSON.stringify(value);
    try {
      await link.retry(() =>
        revision === 0 ? kv.create(kvKey(pool), body) : kv.update(kvKey(pool), body, revision),
      );
      return true;
    } catch (e) {
      if (isWrongLastSequence(e)) return false;
      throw e;
    }
  };

  return {
    async open(pool: string, caps: PoolCaps) {
      const { budgetUsd, maxIterations } = checkPoolCaps(caps);
      for (let n = 0; ; n++) {
        const cur = await read(pool);
        const value: Value = cur
          ? { ...cur.value, budgetUsd, maxIterations }
          : {
              v: 1,
              budgetUsd,
              maxIterations,
              spentUsd: 0,
              reservedUsd: 0,
              iterations: 0,
              held: {},
            };
        if (await cas(pool, value, cur?.revision ?? 0)) return;
        await backoff(n);
      }
    },

    async reserve(pool, key, amount): Promise<PoolReservation> {
      const usd = roundUsd(checkPoolAmount(amount, 'reserve'));
      for (let n = 0; ; n++) {
        const cur = await read(pool);
        if (cur === undefined) return { ok: true };
        const v = cur.value;
        if (Object.hasOwn(v.held, key)) return { ok: true };
        // Absent from the entry read at this revision: if it was settled, its marker was
        // written before that revision.
        if (await wasSettled(pool, key)) return { ok: true };
        const refused = poolRefusal(stateOf(v), usd);
        if (refused !== null) return { ok: false, refused, state: stateOf(v) };
        const next: Value = {
          ...v,
          reservedUsd: roundUsd(v.reservedUsd + usd),
          iterations: v.iterations + 1,
          held: { ...v.held, [key]: usd },
        };
        if (await cas(pool, next, cur.revision)) return { ok: true };
        await backoff(n);
      }
    },

    async settle(pool, key, amount) {
      const usd = roundUsd(checkPoolAmount(amount, 'settle'));
      for (let n = 0; ; n++) {
        const cur = await read(pool);
        const held = cur && Object.hasOwn(cur.value.held, key) ? cur.value.held[key] : undefined;
        if (cur === undefined || held === undefined) return;
        await link.retry(() => kv.put(settledKey(pool, key), JSON.stringify({ usd })));
        const { [key]: _, ...rest } = cur.value.held;
        const next: Value = {
          ...cur.value,
          spentUsd: roundUsd(cur.value.spentUsd + usd),
          reservedUsd: Math.max(0, roundUsd(cur.value.reservedUsd - held)),
          held: rest,
        };
        if (await cas(pool, next, cur.revision)) return;
        await backoff(n);
      }
    },

    async get(pool) {
      const cur = await read(pool);
      return cur === undefined ? undefined : stateOf(cur.value);
    },
  };
}
