/**
 * Kill flags of many runs in one request on JetStream (`getKills`, src/store/jetstreamKills.ts):
 * whatever order flags are set and runs are asked about in, from whichever process, a call
 * returns exactly the asked runs whose flag was set before it began.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KillWatcher } from '../src/runtime/killWatch.js';
import { openJetStreamStore, type JetStreamStore } from '../src/store/jetstream.js';
import { startNatsServer, type NatsServerHandle } from './helpers/natsServer.js';

describe('jetstream: getKills', () => {
  let server: NatsServerHandle;
  let a: JetStreamStore;
  let b: JetStreamStore;
  beforeAll(async () => {
    server = await startNatsServer();
    a = await openJetStreamStore({ servers: server.url, prefix: 'ks' });
    b = await openJetStreamStore({ servers: server.url, prefix: 'ks' });
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
    await server?.[Symbol.asyncDispose]();
  });

  const kill = (s: JetStreamStore, runId: string) =>
    s.control.setKill({ runId, reason: `stop ${runId}`, at: 1 });
  const ask = async (s: JetStreamStore, ids: string[]) =>
    ((await s.control.getKills?.(ids)) ?? []).map((f) => f.runId).sort();

  it('sees flags set before a run is first asked about, after, and by another process', async () => {
    await kill(b, 'k1');
    expect(await ask(a, ['k1', 'k2'])).toEqual(['k1']); // the baseline: read by key
    expect(await ask(a, ['k2', 'k3'])).toEqual([]);
    await kill(b, 'k2'); // after k2 was read: found by the scan
    await kill(b, 'k4'); // before k4 was ever asked about: read by key
    expect(await ask(a, ['k2', 'k3', 'k4'])).toEqual(['k2', 'k4']);
    // A flag stays: asked again, and from a call that did not see it set.
    expect(await ask(a, ['k1', 'k2', 'k3'])).toEqual(['k1', 'k2']);
    expect(await ask(b, ['k1', 'k3'])).toEqual(['k1']);
    expect((await a.control.getKill('k2'))?.reason).toBe('stop k2');
  });

  it('finds a flag among more new messages than it scans (a new baseline)', async () => {
    expect(await ask(a, ['m0', 'm1'])).toEqual([]);
    for (let i = 0; i < 70; i++) await kill(b, `m${i + 1}`);
    expect(await ask(a, ['m0', 'm1', 'm70'])).toEqual(['m1', 'm70']);
    await kill(b, 'm0');
    expect(await ask(a, ['m0', 'm2'])).toEqual(['m0', 'm2']);
  });

  it('answers like a set of flags under random kills and asks, calls overlapping', async () => {
    let seed = 7;
    const rand = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const pool = Array.from({ length: 12 }, (_, i) => `p${i}`);
    const killed = new Set<string>();
    for (let step = 0; step < 60; step++) {
      if (rand(3) === 0) {
        const id = pool[rand(pool.length)] as string;
        await kill(rand(2) === 0 ? a : b, id);
        killed.add(id);
      }
      const asks = [0, 1].map(() => pool.filter(() => rand(2) === 0));
      // Two calls at once from one store: each answers its own runs.
      const answers = await Promise.all(asks.map((ids) => ask(a, ids)));
      for (const [i, ids] of asks.entries())
        expect(answers[i], `step ${step}`).toEqual(ids.filter((id) => killed.has(id)).sort());
    }
  });

  it("wakes a watched run's listener when another process kills it", async () => {
    // (Its timer is unref'd and stops once nothing is watched.)
    const watcher = new KillWatcher(a.control, 20);
    expect(await watcher.current('w1')).toBeUndefined();
    const seen = new Promise<string>((resolve) => watcher.watch('w1', (f) => resolve(f.reason)));
    await kill(b, 'w1');
    expect(await seen).toBe('stop w1');
    expect(await watcher.current('w1')).toMatchObject({ runId: 'w1' });
  });
});
