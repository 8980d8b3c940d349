/**
 * JetStream opened for reading only (issue 14: the CLI's `runs` and `cost` start fast). A reader
 * asks the server nothing at open, binds each bucket on first use, and creates or writes
 * nothing; a store that does not exist is a StoreNotFoundError naming the fix (not a 5 s
 * timeout). The unfinished runs come from the active set's per-subject state, without a consumer,
 * even after many purged entries.
 */
import { jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isStoreNotFound, isUsageError } from '../src/errors.js';
import { openJetStreamStore, type JetStreamStore } from '../src/store/jetstream.js';
import { plumbline } from './helpers/cli.js';
import { outcome, started, stepDone } from './helpers/envelopes.js';
import { startNatsServer, type NatsServerHandle } from './helpers/natsServer.js';

/** Records the JetStream API requests and KV writes that `f` makes on the server. */
async function watched(nc: NatsConnection, f: () => Promise<void>): Promise<string[]> {
  const seen: string[] = [];
  const subs = [nc.subscribe('$JS.API.>'), nc.subscribe('$KV.>')];
  for (const s of subs)
    void (async () => {
      for await (const m of s) seen.push(m.subject);
    })();
  await nc.flush();
  await f();
  await nc.flush();
  // Requests are seen as they are published: let the last ones arrive.
  await new Promise((r) => setTimeout(r, 200));
  for (const s of subs) s.unsubscribe();
  return seen;
}

describe('jetstream: a store opened for reading only', { timeout: 60_000 }, () => {
  let server: NatsServerHandle;
  let writer: JetStreamStore;
  let spy: NatsConnection;
  beforeAll(async () => {
    server = await startNatsServer();
    spy = await connect({ servers: server.url });
    writer = await openJetStreamStore({ servers: server.url, prefix: 'ro' });
    for (let i = 0; i < 12; i++) {
      const id = `done-${i}`;
      await writer.log.append(id, [started('p', 1_000 + i)], 'no_stream');
      await writer.log.append(
        id,
        [outcome(1_100 + i, 0.25, 'claude-haiku-4-5'), stepDone(2, 'completed', 0.25)],
        1,
      );
    }
    for (let i = 0; i < 3; i++)
      await writer.log.append(`live-${i}`, [started('p', 2_000 + i)], 'no_stream');
  });
  afterAll(async () => {
    await writer?.close();
    await spy?.close();
    await server?.[Symbol.asyncDispose]();
  });

  it('answers as the writer does, asking only about what it reads and writing nothing', async () => {
    const want = {
      page: await writer.log.listRuns({ limit: 6, parent: null }),
      running: await writer.log.listRuns({ status: 'running', limit: 51 }),
      cost: await writer.log.costRollup?.(),
      run: await writer.log.getRun('done-3'),
    };
    let reader: JetStreamStore | undefined;
    const atOpen = await watched(spy, async () => {
      reader = await openJetStreamStore({ servers: server.url, prefix: 'ro', readOnly: true });
    });
    expect(atOpen).toEqual([]);
    const r = reader as JetStreamStore;
    try {
      let got: typeof want | undefined;
      const asked = await watched(spy, async () => {
        got = {
          page: await r.log.listRuns({ limit: 6, parent: null }),
          running: await r.log.listRuns({ status: 'running', limit: 51 }),
          cost: await r.log.costRollup?.(),
          run: await r.log.getRun('done-3'),
        };
      });
      expect(got).toEqual(want);
      expect(want.running.map((s) => s.runId).sort()).toEqual(['live-0', 'live-1', 'live-2']);
      // The spy sees a reader's requests: the run list and the run index were asked about.
      expect(asked).toContain('$JS.API.STREAM.INFO.RO_RUNLIST');
      expect(asked).toContain('$JS.API.STREAM.INFO.KV_ro_runs');
      // Nothing created, updated or written; no bucket of the write side looked at.
      expect(asked.filter((s) => /STREAM\.(CREATE|UPDATE|PURGE|DELETE)/.test(s))).toEqual([]);
      expect(asked.filter((s) => s.startsWith('$KV.'))).toEqual([]);
      for (const b of ['leases', 'pools', 'waits', 'ratelimits', 'effects', 'kills', 'breakers'])
        expect(asked.filter((s) => s.includes(`ro_${b}`))).toEqual([]);
      // The unfinished runs came from the active set's subjects, not a consumer over it.
      expect(asked.filter((s) => s.includes('CONSUMER.CREATE.RO_ACTIVE'))).toEqual([]);
      // Appending through a reader is refused.
      const e: unknown = await r.log.append('x', [started('p', 9)], 'no_stream').catch((x) => x);
      expect(isUsageError(e)).toBe(true);
    } finally {
      await r.close();
    }
  });

  it('lists the unfinished runs after many purged ones without a consumer', async () => {
    // Runs that started then ended: each left a purged message in the active set.
    for (let i = 0; i < 200; i++) {
      await writer.log.append(`gone-${i}`, [started('p', 3_000 + i)], 'no_stream');
      await writer.log.append(`gone-${i}`, [stepDone(1, 'completed')], 1);
    }
    const jsm = await jetstreamManager(writer.connection);
    const state = (await jsm.streams.info('RO_ACTIVE')).state;
    expect(state.messages).toBe(3);
    expect(state.last_seq).toBeGreaterThanOrEqual(203);
    const reader = await openJetStreamStore({ servers: server.url, prefix: 'ro', readOnly: true });
    try {
      const before = reader.stats.consumers;
      const running = await reader.log.listRuns({ status: 'running', limit: 51 });
      expect(running.map((s) => s.runId).sort()).toEqual(['live-0', 'live-1', 'live-2']);
      expect(reader.stats.consumers).toBe(before);
    } finally {
      await reader.close();
    }
  });

  it('a store that does not exist is a clear error, and nothing is created', async () => {
    const reader = await openJetStreamStore({
      servers: server.url,
      prefix: 'absent',
      readOnly: true,
    });
    try {
      for (const read of [
        () => reader.log.listRuns({ limit: 51, parent: null }),
        () => reader.log.listRuns({ status: 'running', limit: 51 }),
        async () => reader.log.costRollup?.(),
        () => reader.log.getRun('any'),
        () => reader.leases.holders(['any']),
      ]) {
        const e: unknown = await read().then(
          () => undefined,
          (err: unknown) => err,
        );
        expect(isStoreNotFound(e), String(e)).toBe(true);
        expect((e as Error).message).toMatch(/no plumbline store at .*prefix 'absent'/);
        expect((e as Error).message).toContain('plumbline run <pipeline> --store');
      }
    } finally {
      await reader.close();
    }
    const jsm = await jetstreamManager(writer.connection);
    const names: string[] = [];
    for await (const n of jsm.streams.names()) names.push(n);
    expect(names.filter((n) => /absent/i.test(n))).toEqual([]);
  });

  it('a store from before a part a read needs says to open it once with a writer', async () => {
    const old = await openJetStreamStore({ servers: server.url, prefix: 'old' });
    await old.log.append('a', [started('p', 1_000)], 'no_stream');
    await (await jetstreamManager(old.connection)).streams.delete('OLD_RUNLIST');
    await old.close();
    const reader = await openJetStreamStore({ servers: server.url, prefix: 'old', readOnly: true });
    try {
      const e: unknown = await reader.log.listRuns({ limit: 51 }).then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(isStoreNotFound(e), String(e)).toBe(true);
      expect((e as Error).message).toContain('open it once with a writer');
    } finally {
      await reader.close();
    }
  });

  it('the CLI: `runs` and `cost` where no store exists say how to create one, and create none', async () => {
    await using empty = await startNatsServer();
    for (const verb of [['runs'], ['runs', '--status', 'running'], ['cost', '--by', 'day']]) {
      const r = await plumbline([...verb, '--store', empty.url]);
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr).toContain('no plumbline store at');
      expect(r.stderr).toContain('plumbline run <pipeline> --store');
    }
    const nc = await connect({ servers: empty.url });
    try {
      const names: string[] = [];
      for await (const n of (await jetstreamManager(nc)).streams.names()) names.push(n);
      expect(names).toEqual([]);
    } finally {
      await nc.close();
    }
  });

  it('reads a large event (kept in the object store) back whole', async () => {
    const big = stepDone(1, 'completed');
    (big.event as { output: unknown }).output = { text: 'x'.repeat(2_000_000) };
    await writer.log.append('big', [started('p', 5_000), big], 'no_stream');
    const reader = await openJetStreamStore({ servers: server.url, prefix: 'ro', readOnly: true });
    try {
      const events = await reader.log.read('big');
      expect(events.map((e) => e.seq)).toEqual([1, 2]);
      expect(events[1]?.event).toEqual(big.event);
    } finally {
      await reader.close();
    }
  });

  it("answers the unconfirmed USD of the runs it just listed from the entries it read (runs' column)", async () => {
    await writer.log.append(
      'lost-1',
      [started('p', 3_000), outcome(3_001, 0.125, 'claude-haiku-4-5', true)],
      'no_stream',
    );
    await writer.log.append('lost-1', [stepDone(2, 'failed', 0.125)], 2);
    const reader = await openJetStreamStore({ servers: server.url, prefix: 'ro', readOnly: true });
    try {
      const ids = (await reader.log.listRuns({ limit: 50 })).map((r) => r.runId);
      expect(ids).toContain('lost-1');
      let answered = new Map<string, number>();
      const seen = await watched(spy, async () => {
        answered = (await reader.log.unconfirmedUsd?.(ids)) ?? new Map();
      });
      // No index entry read again: the listing's were kept.
      expect(seen.filter((s) => s.includes('KV_ro_runs'))).toEqual([]);
      expect(answered.get('lost-1')).toBe(0.125);
      expect(answered).toEqual(await writer.log.unconfirmedUsd?.(ids));
      // A run with no children (the `children` column): answered by the listing just read.
      const listed = await watched(spy, async () => {
        expect(await reader.log.listRuns({ parent: 'lost-1' })).toEqual([]);
      });
      expect(listed).toEqual([]);
    } finally {
      await reader.close();
    }
    // A reader that listed nothing: the parents bucket alone answers, not the run list.
    const fresh = await openJetStreamStore({ servers: server.url, prefix: 'ro', readOnly: true });
    try {
      const childless = await watched(spy, async () => {
        expect(await fresh.log.listRuns({ parent: 'lost-1' })).toEqual([]);
      });
      expect(childless.filter((s) => s.includes('RUNLIST'))).toEqual([]);
      expect(childless.some((s) => s.includes('KV_ro_parents'))).toBe(true);
    } finally {
      await fresh.close();
    }
  });
});
