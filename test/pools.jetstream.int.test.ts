/**
 * Spending pools on JetStream shared by two connections (two stores on one server): the
 * compare-and-set on the pool's entry keeps the caps across them.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openJetStreamStore, type JetStreamStore } from '../src/store/jetstream.js';
import { reserveAtOnce } from './contract/pools.contract.js';
import { startNatsServer, type NatsServerHandle } from './helpers/natsServer.js';

describe('jetstream pools across connections', () => {
  let server: NatsServerHandle;
  let a: JetStreamStore;
  let b: JetStreamStore;
  beforeAll(async () => {
    server = await startNatsServer();
    a = await openJetStreamStore({ servers: server.url, prefix: 'pools' });
    b = await openJetStreamStore({ servers: server.url, prefix: 'pools' });
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
    await server?.[Symbol.asyncDispose]();
  });

  it('two connections: 50 concurrent reserves of $0.10 against $1.00 → 10 ok, spent 1.00', async () => {
    const pool = 'run 1/map.step';
    await a.pools.open(pool, { budgetUsd: 1, maxIterations: null });
    const [fromA, fromB] = await Promise.all([
      reserveAtOnce(a.pools, pool, 'a', 25, 0.1),
      reserveAtOnce(b.pools, pool, 'b', 25, 0.1),
    ]);
    const ok = [
      ...fromA.flatMap((r, i) => (r.ok ? [`a-${i}`] : [])),
      ...fromB.flatMap((r, i) => (r.ok ? [`b-${i}`] : [])),
    ];
    expect(ok).toHaveLength(10);
    // Settled twice each, from both connections at once: counted once.
    await Promise.all(
      ok.flatMap((k) => [a.pools.settle(pool, k, 0.1), b.pools.settle(pool, k, 0.1)]),
    );
    expect(await b.pools.get(pool)).toEqual({
      budgetUsd: 1,
      maxIterations: null,
      spentUsd: 1,
      reservedUsd: 0,
      iterations: 10,
    });
    // Asked again after settling (a restarted child): ok, nothing counted twice.
    const again = await Promise.all(ok.map((k) => a.pools.reserve(pool, k, 0.1)));
    expect(again.every((r) => r.ok)).toBe(true);
    expect(await a.pools.get(pool)).toMatchObject({ spentUsd: 1, reservedUsd: 0, iterations: 10 });
  });
});
