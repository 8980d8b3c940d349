/**
 * JetStream run-index writes held between a run's start and end (`indexDelayMs`, issue 14): a
 * middle append that keeps the run's status waits for the run's next update, while a status
 * change reaches the index at once (listings by status, the stranded-run scan); the delay and
 * `close` write what is held. Another store reads the index as it is (listings never catch up).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openJetStreamStore, type JetStreamStore } from '../src/store/jetstream.js';
import type { RunFilter } from '../src/store/types.js';
import { started, stepDone } from './helpers/envelopes.js';
import { startNatsServer, type NatsServerHandle } from './helpers/natsServer.js';

/** Polls `other`'s listing until the run shows `want` (index entries as stored). */
async function until(
  other: JetStreamStore,
  filter: RunFilter,
  runId: string,
  want: (lastSeq: number | undefined) => boolean,
): Promise<number | undefined> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const seen = (await other.log.listRuns(filter)).find((r) => r.runId === runId)?.lastSeq;
    if (want(seen) || Date.now() > deadline) return seen;
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('jetstream: index writes held between start and end', () => {
  let server: NatsServerHandle;
  let reader: JetStreamStore;
  beforeAll(async () => {
    server = await startNatsServer();
    reader = await openJetStreamStore({ servers: server.url, prefix: 'held' });
  });
  afterAll(async () => {
    await reader?.close();
    await server?.[Symbol.asyncDispose]();
  });

  it('holds middle appends, writes status changes at once, and close writes the rest', async () => {
    // A delay no test outlasts: only status changes, readers in the process and close write.
    const w = await openJetStreamStore({
      servers: server.url,
      prefix: 'held',
      indexDelayMs: 600_000,
    });
    const lastSeq = async (): Promise<number | undefined> =>
      (await reader.log.listRuns({ pipeline: 'p1' })).find((r) => r.runId === 'a')?.lastSeq;
    await w.log.append('a', [started('p1')], 'no_stream');
    expect(await lastSeq()).toBe(1);
    await w.log.append('a', [stepDone(1)], 1);
    await w.log.append('a', [stepDone(2)], 2);
    expect(await lastSeq()).toBe(1);
    // Another store's getRun reads past the index and catches it up: the held update's
    // compare-and-set then fails, and the writer catches up in turn (below).
    expect(await reader.log.getRun('a')).toMatchObject({ lastSeq: 3 });
    expect(await lastSeq()).toBe(3);
    // Parked: listed as parked without waiting for anything.
    await w.log.append('a', [stepDone(3, 'parked')], 3);
    expect(await until(reader, { status: 'parked' }, 'a', (s) => s === 4)).toBe(4);
    // Running again: a change too.
    await w.log.append('a', [stepDone(4, 'running')], 4);
    expect(await until(reader, { status: 'running' }, 'a', (s) => s === 5)).toBe(5);
    await w.log.append('a', [stepDone(5)], 5);
    expect(await lastSeq()).toBe(5);
    await w.close();
    expect(await lastSeq()).toBe(6);
  });

  it('writes a held update once the delay passes', async () => {
    const w = await openJetStreamStore({ servers: server.url, prefix: 'held', indexDelayMs: 50 });
    try {
      await w.log.append('b', [started('p2')], 'no_stream');
      await w.log.append('b', [stepDone(1)], 1);
      await w.log.append('b', [stepDone(2)], 2);
      expect(await until(reader, { pipeline: 'p2' }, 'b', (s) => s === 3)).toBe(3);
    } finally {
      await w.close();
    }
  });

  it('refuses a negative delay, saying what it takes', async () => {
    await expect(
      openJetStreamStore({ servers: server.url, prefix: 'held', indexDelayMs: -1 }),
    ).rejects.toThrow(/indexDelayMs must be a number of milliseconds ≥ 0/);
  });
});
