/**
 * Kill flags of many runs in one request on JetStream (`getKills`, `killAsOf`,
 * src/store/jetstreamKills.ts): whatever order flags are set and runs are asked about in, from
 * whichever process, a call returns exactly the asked runs whose flag was set before it began;
 * with the flagged subjects listed, a run without a flag costs no read of its own; past the
 * listing's bound, runs are read by key as before.
 */
import { jetstreamManager } from '@nats-io/jetstream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KillWatcher } from '../src/runtime/killWatch.js';
import { openJetStreamStore, type JetStreamStore } from '../src/store/jetstream.js';
import { kvKey } from '../src/store/jetstreamIndex.js';
import { kvKillScan, type KillScan } from '../src/store/jetstreamKills.js';
import { openNatsLink, type NatsLink } from '../src/store/natsConnect.js';
import { startNatsServer, type NatsServerHandle } from './helpers/natsServer.js';

describe('jetstream: getKills', () => {
  let server: NatsServerHandle;
  let a: JetStreamStore;
  let b: JetStreamStore;
  let link: NatsLink;
  /** A third reader of the same flags that never lists them: every run read by key. */
  let unlisted: KillScan;
  beforeAll(async () => {
    server = await startNatsServer();
    a = await openJetStreamStore({ servers: server.url, prefix: 'ks' });
    b = await openJetStreamStore({ servers: server.url, prefix: 'ks' });
    link = await openNatsLink({ servers: server.url });
    unlisted = kvKillScan(
      link,
      await jetstreamManager(link.nc),
      'ks_kills',
      kvKey,
      (id) => a.control.getKill(id),
      0,
    );
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
    await link?.close();
    await server?.[Symbol.asyncDispose]();
  });

  /** Counts the requests `s` makes while `f` runs, by the start of their subject. */
  const requests = async (s: JetStreamStore, f: () => Promise<unknown>) => {
    const nc = s.connection as unknown as { request: (subj: string, ...r: unknown[]) => unknown };
    const orig = nc.request;
    const seen: string[] = [];
    nc.request = (subj: string, ...r: unknown[]) => {
      seen.push(subj);
      return orig.call(nc, subj, ...r);
    };
    try {
      await f();
    } finally {
      nc.request = orig;
    }
    return seen;
  };

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

  it('killAsOf: answers runs without a flag from the last listing, one check for many callers', async () => {
    await kill(b, 'q1');
    const since = performance.now();
    // Stale (or no) listing: one check, shared by every caller waiting for it.
    const asked = await requests(a, () =>
      Promise.all(['q0', 'q1', 'q2', 'q3'].map((id) => a.control.killAsOf?.(id, since))),
    );
    expect(asked.filter((s) => s.includes('STREAM.INFO')).length).toBeLessThanOrEqual(2);
    // Only the flagged run is read by key.
    expect(asked.filter((s) => s.includes('DIRECT.GET')).length).toBe(1);
    const q1 = await a.control.killAsOf?.('q1', since);
    expect(q1?.flag?.reason).toBe('stop q1');
    const q0 = await a.control.killAsOf?.('q0', since);
    expect(q0?.flag).toBeUndefined();
    expect(q0?.at).toBeGreaterThanOrEqual(since);
    // A recent enough listing answers with no request at all.
    expect(
      await requests(a, () =>
        Promise.all(['q4', 'q5'].map((id) => a.control.killAsOf?.(id, since))),
      ),
    ).toEqual([]);
    // A flag set after that listing: an answer as of the listing does not have it (the caller
    // accepted that age); asking for a later one does.
    await kill(b, 'q4');
    const after = performance.now();
    expect((await a.control.killAsOf?.('q4', since))?.flag).toBeUndefined();
    const q4 = await a.control.killAsOf?.('q4', after);
    expect(q4?.flag?.reason).toBe('stop q4');
    // Past the listing's bound the store says it cannot answer: the caller reads by key.
    expect(await unlisted.killAsOf('q0', since)).toBeUndefined();
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
      // Two calls at once from one store, and from one that reads by key: each answers its own runs.
      const answers = await Promise.all([
        ...asks.map((ids) => ask(a, ids)),
        ...asks.map(async (ids) => (await unlisted.getKills(ids)).map((f) => f.runId).sort()),
      ]);
      for (const [i, ids] of [...asks, ...asks].entries())
        expect(answers[i], `step ${step}`).toEqual(ids.filter((id) => killed.has(id)).sort());
      // A run asked about alone is answered as of a check begun after the call.
      const one = pool[rand(pool.length)] as string;
      expect((await a.control.killAsOf?.(one, performance.now()))?.flag?.runId).toBe(
        killed.has(one) ? one : undefined,
      );
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
