/**
 * JetStream: `runs` counts each row's children (issue 14). A run without children must answer
 * "none" from one KV get, not by reading the run list after it (seconds in a large store);
 * a parent's children are still all found, including one listed by the index catch-up after
 * its writer died, and a store that had runs before the marks falls back to reading the list.
 */
import { jetstreamManager } from '@nats-io/jetstream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { childCounts } from '../src/client/children.js';
import { openJetStreamStore, type JetStreamStore } from '../src/store/jetstream.js';
import { started, stepDone } from './helpers/envelopes.js';
import { startNatsServer, type NatsServerHandle } from './helpers/natsServer.js';

/** A child run's `run.started`, of `parent`'s map step, item `part`. */
function childStarted(parent: string, part: number): ReturnType<typeof started> {
  const s = started('child', 2_000 + part);
  (s.event as { parent: unknown }).parent = { runId: parent, step: 'each', part };
  return s;
}

describe('jetstream: child counts from parent marks', { timeout: 60_000 }, () => {
  let server: NatsServerHandle;
  let store: JetStreamStore;
  beforeAll(async () => {
    server = await startNatsServer();
    store = await openJetStreamStore({ servers: server.url, prefix: 'marks' });
    for (let i = 0; i < 30; i++)
      await store.log.append(`lone-${i}`, [started('p', 1_000 + i), stepDone(1)], 'no_stream');
    await store.log.append('parent', [started('p', 1_500)], 'no_stream');
    for (const part of [0, 1, 2])
      await store.log.append(
        `parent-each-${part}`,
        [childStarted('parent', part), stepDone(1, part === 1 ? 'failed' : 'completed')],
        'no_stream',
      );
  });
  afterAll(async () => {
    await store?.close();
    await server?.[Symbol.asyncDispose]();
  });

  it('counts a parent’s children, and answers runs without children without reading the list', async () => {
    const before = store.stats.consumers;
    const lone = await childCounts(
      store,
      Array.from({ length: 30 }, (_, i) => `lone-${i}`),
    );
    expect(lone.size).toBe(0);
    // No read consumer was made: each "none" came from one KV get.
    expect(store.stats.consumers).toBe(before);
    const counts = await childCounts(store, ['parent', 'lone-3']);
    expect(counts.get('parent')).toEqual({ total: 3, byStatus: { completed: 2, failed: 1 } });
    expect(counts.has('lone-3')).toBe(false);
  });

  it('a store with runs made before the marks reads the list for every parent', async () => {
    // The marks bucket lost (as in a store from before it): reopen, children still counted.
    await (await jetstreamManager(store.connection)).streams.delete('KV_marks_parents');
    const again = await openJetStreamStore({ servers: server.url, prefix: 'marks' });
    try {
      const counts = await childCounts(again, ['parent', 'lone-0']);
      expect(counts.get('parent')?.total).toBe(3);
      expect(counts.has('lone-0')).toBe(false);
    } finally {
      await again.close();
    }
  });
});
