import { jetstream } from '@nats-io/jetstream';
import { headers } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openJetStreamStore, type JetStreamStore } from '../src/store/jetstream.js';
import { describeStore } from './contract/eventLog.contract.js';
import { started, stepDone } from './helpers/envelopes.js';
import { startNatsServer, type NatsServerHandle } from './helpers/natsServer.js';

let contractServer: NatsServerHandle | undefined;
describeStore(
  'jetstream',
  async () => {
    contractServer = await startNatsServer();
    // The suite's afterAll cannot close a store that failed to open: stop the server here.
    return openJetStreamStore({ servers: contractServer.url, validateAppends: true }).catch(
      async (e: unknown) => {
        await contractServer?.[Symbol.asyncDispose]();
        throw e;
      },
    );
  },
  async () => {
    await contractServer?.[Symbol.asyncDispose]();
  },
);

describe('jetstream store: layout and reads', () => {
  let server: NatsServerHandle;
  let store: JetStreamStore;
  beforeAll(async () => {
    server = await startNatsServer();
    store = await openJetStreamStore({ servers: server.url, prefix: 'scan' });
  });
  afterAll(async () => {
    await store?.close();
    await server?.[Symbol.asyncDispose]();
  });

  it('reads one run without scanning the stream before it', async () => {
    // Given 5,000 events of other runs in the stream (published raw: valid, but not indexed).
    const js = jetstream(store.connection);
    const pending: Promise<unknown>[] = [];
    for (let i = 0; i < 5_000; i++) {
      const runId = `other-${i % 500}`;
      const seq = Math.floor(i / 500) + 1;
      const env = { ...(seq === 1 ? started() : stepDone(seq)), runId, seq };
      const h = headers();
      // Runs were started in the first 500 stream positions, in order.
      if (seq > 1) h.set('Plumbline-First', String((i % 500) + 1));
      pending.push(js.publish(`scan.run.${runId}.ev`, JSON.stringify(env), { headers: h }));
    }
    await Promise.all(pending);
    // When one more run appends 5 events and is read back.
    const id = 'needle';
    await store.log.append(id, [started('needle'), stepDone(1)], 'no_stream');
    await store.log.append(id, [stepDone(2), stepDone(3), stepDone(4, 'completed')], 2);
    const before = { ...store.stats };
    const t0 = performance.now();
    const events = await store.log.read(id);
    const ms = performance.now() - t0;
    // Then it gets exactly its events, from one consumer that started at its first event.
    expect(events.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5]);
    expect(store.stats.consumers - before.consumers).toBe(1);
    expect(store.stats.delivered - before.delivered).toBe(5);
    expect(store.stats.last?.startSeq).toBeGreaterThan(5_000);
    expect(store.stats.last?.pending).toBe(5);
    console.log(`read of a 5-event run after 5,000 others: ${ms.toFixed(1)} ms`);
    // A read from the middle starts no earlier than the wanted event's lowest possible position.
    expect((await store.log.read(id, 4)).map((e) => e.seq)).toEqual([4, 5]);
    expect(store.stats.last?.startSeq).toBeGreaterThanOrEqual(5_004);
    // Other runs are readable (the index is rebuilt from the log on first read).
    const other = await store.log.read('other-7');
    expect(other.map((e) => e.seq)).toEqual(Array.from({ length: 10 }, (_, i) => i + 1));
    expect(await store.log.getRun('other-7')).toMatchObject({ runId: 'other-7', lastSeq: 10 });
    // A run with no index entry at all takes appends at its log's version.
    expect(await store.log.append('other-8', [stepDone(11)], 10)).toBe(11);
    expect(await store.log.getRun('other-8')).toMatchObject({ lastSeq: 11, startedAt: 1_000 });
  });

  it('uses marks to start long runs near the requested seq', async () => {
    const id = 'long';
    await store.log.append(id, [started()], 'no_stream');
    for (let s = 1; s < 150; s += 10) {
      await store.log.append(
        id,
        Array.from({ length: 10 }, (_, i) => stepDone(s + i)),
        s,
      );
      await store.log.append(`noise-${s}`, [started()], 'no_stream');
    }
    const tail = await store.log.read(id, 140);
    expect(tail.map((e) => e.seq)).toEqual(Array.from({ length: 12 }, (_, i) => 140 + i));
    // Started at the mark of event 129 or later: at most 11 + 12 events delivered.
    expect(store.stats.last?.pending).toBeLessThanOrEqual(23);
    expect((await store.log.read(id)).length).toBe(151);
  });

  it('rejects run ids that are not subject tokens, naming the rule', async () => {
    await expect(store.log.append('a.b', [started()], 'no_stream')).rejects.toThrow(
      /subject token/,
    );
    await expect(store.log.read('a b')).rejects.toThrow(/whitespace/);
  });

  it('catches the index up when a writer died between publishing and indexing', async () => {
    const id = 'orphan';
    await store.log.append(id, [started()], 'no_stream');
    // Simulate the crash: publish event 2 by hand, leaving the index at 1.
    const js = jetstream(store.connection);
    const first = (await store.log.getRun(id))?.lastSeq;
    expect(first).toBe(1);
    const stream = await (await js.streams.get('SCAN_EVENTS')).info();
    const h = headers();
    h.set('Plumbline-First', String(stream.state.last_seq));
    await js.publish(`scan.run.${id}.ev`, JSON.stringify({ ...stepDone(1), runId: id, seq: 2 }), {
      headers: h,
      expect: { lastSubjectSequence: stream.state.last_seq },
    });
    // A stale expectation still conflicts; the right one succeeds and the index catches up.
    await expect(store.log.append(id, [stepDone(2)], 1)).rejects.toThrow(/version/);
    expect(await store.log.append(id, [stepDone(2)], 2)).toBe(3);
    expect(await store.log.getRun(id)).toMatchObject({ lastSeq: 3 });
    expect((await store.log.read(id)).map((e) => e.seq)).toEqual([1, 2, 3]);
  });
});

describe('jetstream store: server crash', () => {
  let server: NatsServerHandle;
  let store: JetStreamStore;
  beforeAll(async () => {
    server = await startNatsServer();
    store = await openJetStreamStore({ servers: server.url, prefix: 'crash' });
  });
  afterAll(async () => {
    await store?.close();
    await server?.[Symbol.asyncDispose]();
  });

  it('reconnects after kill -9 and restart, and appends continue with no event lost', async () => {
    const id = 'survivor';
    await store.log.append(id, [started(), stepDone(1), stepDone(2)], 'no_stream');
    await server.kill('SIGKILL');
    // An append issued while the server is down completes once it is back.
    const during = store.log.append(id, [stepDone(3)], 3);
    await new Promise((r) => setTimeout(r, 500));
    await server.restart();
    expect(await during).toBe(4);
    expect(await store.log.append(id, [stepDone(4, 'completed')], 4)).toBe(5);
    const events = await store.log.read(id);
    expect(events.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5]);
    expect(await store.log.getRun(id)).toMatchObject({ lastSeq: 5, status: 'completed' });
    expect(await store.ledger.claim(id, 's', 'k', 1)).toEqual({ status: 'claimed' });
  });

  it('keeps every acknowledged append of a writer that runs through a kill -9', async () => {
    const id = 'through';
    await store.log.append(id, [started()], 'no_stream');
    let seq = 1;
    let stop = false;
    const writer = (async () => {
      while (!stop) {
        seq = await store.log.append(id, [stepDone(seq)], seq);
      }
    })();
    await new Promise((r) => setTimeout(r, 150));
    await server.kill('SIGKILL');
    const atKill = seq;
    await new Promise((r) => setTimeout(r, 300));
    await server.restart();
    await new Promise((r) => setTimeout(r, 300));
    stop = true;
    await writer;
    console.log(`appends: ${atKill} before the kill, ${seq} in all`);
    expect(seq).toBeGreaterThan(atKill);
    const events = await store.log.read(id);
    expect(events.map((e) => e.seq)).toEqual(Array.from({ length: seq }, (_, i) => i + 1));
    expect(await store.log.getRun(id)).toMatchObject({ lastSeq: seq });
  });
});
