/**
 * JetStream: `runs` counts each row's children (issue 14). A run without children must answer
 * "none" from one KV get, not by reading the run list after it (seconds in a large store);
 * a parent's children are still all found, including one listed by the index catch-up after
 * its writer died, and a store that had runs before the marks falls back to reading the list.
 * A page fetches the index entries of the runs its `parent` filter can match only: each run list
 * message names the run's parent; a message written before it did (a bare run id) is fetched.
 */
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
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

  it('fetches only the index entries a page can show: the list message names the parent', async () => {
    const spy = await connect({ servers: server.url });
    /** The run ids whose index entry `f` fetched. */
    const fetched = async (f: () => Promise<unknown>): Promise<string[]> => {
      const seen: string[] = [];
      const sub = spy.subscribe('$JS.API.DIRECT.GET.KV_marks_runs.>', {
        callback: (_e, m) => void seen.push(m.subject.slice(m.subject.lastIndexOf('.') + 1)),
      });
      await spy.flush();
      await f();
      await spy.flush();
      await store.connection.flush();
      sub.unsubscribe();
      return seen.sort();
    };
    try {
      const lone = Array.from({ length: 30 }, (_, i) => `lone-${i}`);
      let top: string[] = [];
      expect(
        await fetched(async () => {
          top = (await store.log.listRuns({ limit: 50, parent: null })).map((r) => r.runId);
        }),
      ).toEqual([...lone, 'parent'].sort());
      expect(top).toHaveLength(31);
      let kids: string[] = [];
      expect(
        await fetched(async () => {
          kids = (await store.log.listRuns({ parent: 'parent', limit: 50 })).map((r) => r.runId);
        }),
      ).toEqual(['parent-each-0', 'parent-each-1', 'parent-each-2']);
      expect(kids.sort()).toEqual(['parent-each-0', 'parent-each-1', 'parent-each-2']);
      // A list message from before the body named the parent (the bare run id): fetched, and
      // still left out of the top-level page by its entry.
      await jetstream(spy).publish('marks.runlist.parent-each-2', 'parent-each-2');
      expect(
        await fetched(async () => {
          top = (await store.log.listRuns({ limit: 50, parent: null })).map((r) => r.runId);
        }),
      ).toEqual([...lone, 'parent', 'parent-each-2'].sort());
      expect(top).toHaveLength(31);
      expect(top).not.toContain('parent-each-2');
    } finally {
      await spy.close();
    }
  });

  it('a reader counts the children of the runs it just listed from the list messages it read', async () => {
    const reader = await openJetStreamStore({
      servers: server.url,
      prefix: 'marks',
      readOnly: true,
    });
    const spy = await connect({ servers: server.url });
    try {
      // The bare body the test above left (parent-each-2): this listing cannot name every child.
      await jetstream(spy).publish(
        'marks.runlist.parent-each-2',
        JSON.stringify({ parent: 'parent' }),
      );
      const page = (await reader.log.listRuns({ limit: 50, parent: null })).map((r) => r.runId);
      expect(page).toContain('parent');
      const seen: string[] = [];
      const sub = spy.subscribe('$JS.API.>', { callback: (_e, m) => void seen.push(m.subject) });
      await spy.flush();
      const counts = await childCounts(reader, page);
      await reader.connection.flush();
      await spy.flush();
      sub.unsubscribe();
      expect([...counts.keys()]).toEqual(['parent']);
      expect(counts.get('parent')).toEqual({ total: 3, byStatus: { completed: 2, failed: 1 } });
      // Only the three children's index entries: no parents mark, no read of the list.
      expect(seen.filter((x) => !x.startsWith('$JS.API.DIRECT.GET.KV_marks_runs.')).sort()).toEqual(
        [],
      );
      expect(seen).toHaveLength(3);
      // A listing with a bare body in it (written before bodies named the parent) is not used.
      await jetstream(spy).publish('marks.runlist.lone-29', 'lone-29');
      await reader.log.listRuns({ limit: 50, parent: null });
      const again = await childCounts(reader, ['parent', 'lone-3']);
      expect(again.get('parent')?.total).toBe(3);
      expect(again.has('lone-3')).toBe(false);
    } finally {
      await spy.close();
      await reader.close();
    }
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
