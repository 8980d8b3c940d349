/**
 * JetStream appends without a KV get first (issue 14): a writer publishes from the index entry
 * it wrote last. Another writer's appends in between must still make a stale expectation a
 * version conflict, and the run index must stay right.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isVersionConflict } from '../src/errors.js';
import { openJetStreamStore, type JetStreamStore } from '../src/store/jetstream.js';
import { started, stepDone } from './helpers/envelopes.js';
import { startNatsServer, type NatsServerHandle } from './helpers/natsServer.js';

describe('jetstream: appends from the writer-known index entry', () => {
  let server: NatsServerHandle;
  let a: JetStreamStore;
  let b: JetStreamStore;
  beforeAll(async () => {
    server = await startNatsServer();
    a = await openJetStreamStore({ servers: server.url, prefix: 'lean', validateAppends: true });
    b = await openJetStreamStore({ servers: server.url, prefix: 'lean', validateAppends: true });
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
    await server?.[Symbol.asyncDispose]();
  });

  it("refuses a writer's stale expectation after another writer appended, then goes on", async () => {
    await a.log.append('r1', [started(), stepDone(1)], 'no_stream');
    // b extends the run behind a's back; a still holds the entry at seq 2.
    await b.log.append('r1', [stepDone(2)], 2);
    const stale = await a.log.append('r1', [stepDone(3)], 2).catch((e: unknown) => e);
    expect(isVersionConflict(stale)).toBe(true);
    // Once a expects what is there, it appends, and both see one unbroken log and index.
    expect(await a.log.append('r1', [stepDone(3)], 3)).toBe(4);
    expect(await a.log.append('r1', [stepDone(4, 'completed')], 4)).toBe(5);
    for (const s of [a, b]) {
      expect((await s.log.read('r1')).map((e) => e.seq)).toEqual([1, 2, 3, 4, 5]);
      expect(await s.log.getRun('r1')).toMatchObject({ lastSeq: 5, status: 'completed' });
    }
  });

  it('refuses to create a run that another writer created (no index read first)', async () => {
    await b.log.append('r2', [started()], 'no_stream');
    const again = await a.log.append('r2', [started()], 'no_stream').catch((e: unknown) => e);
    expect(isVersionConflict(again)).toBe(true);
    expect((await a.log.read('r2')).length).toBe(1);
  });

  it('keeps the index right when a writer appends many times in a row', async () => {
    await a.log.append('r3', [started()], 'no_stream');
    for (let seq = 1; seq <= 20; seq++) await a.log.append('r3', [stepDone(seq)], seq);
    expect(await b.log.getRun('r3')).toMatchObject({ lastSeq: 21, status: 'running' });
    expect((await b.log.read('r3', 20)).map((e) => e.seq)).toEqual([20, 21]);
  });

  it('lets the index follow mid-run appends: others catch up, close writes it', async () => {
    const c = await openJetStreamStore({ servers: server.url, prefix: 'lean' });
    await c.log.append('r4', [started('p4')], 'no_stream');
    for (let seq = 1; seq <= 5; seq++) await c.log.append('r4', [stepDone(seq)], seq);
    // Another store reads past a lagging index (from the stream), and appends after it.
    expect(await b.log.getRun('r4')).toMatchObject({ lastSeq: 6, status: 'running' });
    await c.close();
    // After close, the index itself has every acked event (a full listing reads only it).
    const listed = await b.log.listRuns({ pipeline: 'p4' });
    expect(listed.map((r) => [r.runId, r.lastSeq])).toEqual([['r4', 6]]);
    expect(await b.log.append('r4', [stepDone(6, 'completed')], 6)).toBe(7);
    expect(await a.log.getRun('r4')).toMatchObject({ lastSeq: 7, status: 'completed' });
  });
});
