/**
 * The JetStream run-index queue (jetstreamIndexQueue.ts) with a fake KV: a run's updates are
 * applied in order, one at a time, those that piled up go as one compare-and-set, a failure
 * leaves the entry behind (catch-up decides), and `settled` waits for the run's updates.
 */
import { describe, expect, it } from 'vitest';
import type { StoredEnvelope } from '../src/machines/events.js';
import type { IndexEntry, Located } from '../src/store/jetstreamIndex.js';
import { indexQueue, type Head, type IndexQueueDeps } from '../src/store/jetstreamIndexQueue.js';
import { started, stepDone } from './helpers/envelopes.js';

/** Event `seq` of run r at stream sequence `streamSeq`. */
function at(seq: number, streamSeq: number): Located {
  const e = seq === 1 ? started() : stepDone(seq - 1);
  return { env: { ...e, runId: 'r', seq } as StoredEnvelope, streamSeq };
}

/** A fake KV of one key with revisions, whose writes finish when the test says so. */
function fakeKv(opts: { failWrites?: number } = {}) {
  let stored: Head | undefined;
  let failWrites = opts.failWrites ?? 0;
  const writes: Array<{ lastSeq: number; revision: number }> = [];
  const gates: Array<() => void> = [];
  let catchUps = 0;
  const deps: IndexQueueDeps = {
    async cas(_runId, entry: IndexEntry, revision) {
      await new Promise<void>((r) => gates.push(r));
      if (failWrites > 0) {
        failWrites--;
        throw new Error('kv down');
      }
      if ((stored?.revision ?? 0) !== revision) return null;
      stored = { entry, revision: revision + 1 };
      writes.push({ lastSeq: entry.summary.lastSeq, revision: revision + 1 });
      return revision + 1;
    },
    async catchUp() {
      catchUps++;
      return stored;
    },
    async written() {},
  };
  return {
    deps,
    writes,
    get catchUps() {
      return catchUps;
    },
    get stored() {
      return stored;
    },
    /** Lets the pending write go on (after the queue reached it). */
    async release(): Promise<void> {
      for (let i = 0; i < 50 && gates.length === 0; i++) await new Promise((r) => setImmediate(r));
      gates.shift()?.();
    },
  };
}

const tailOf = (l: Located) => ({
  lastSeq: l.env.seq,
  lastStreamSeq: l.streamSeq,
  firstStreamSeq: 10,
  status: l.env.state.status,
});

describe('jetstream run-index queue', () => {
  it("applies a run's updates in order; those queued meanwhile make one write", async () => {
    const kv = fakeKv();
    const q = indexQueue(kv.deps);
    const e1 = at(1, 10);
    q.published('r', { base: undefined, builtOn: 0, written: [e1] }, tailOf(e1));
    // The tail is known at once: the next append needs no KV read.
    expect(q.tail('r')?.lastStreamSeq).toBe(10);
    const e2 = at(2, 12);
    const e3 = at(3, 15);
    q.published('r', { base: 'tail', builtOn: 10, written: [e2] }, tailOf(e2));
    q.published('r', { base: 'tail', builtOn: 12, written: [e3] }, tailOf(e3));
    await kv.release();
    await kv.release();
    await q.settled('r');
    expect(kv.writes).toEqual([
      { lastSeq: 1, revision: 1 },
      { lastSeq: 3, revision: 2 },
    ]);
    expect(kv.stored?.entry.lastStreamSeq).toBe(15);
    expect(kv.catchUps).toBe(0);
    expect(q.tail('r')?.lastSeq).toBe(3);
  });

  it("runs an append's follow-up after its entry is written, in order", async () => {
    const kv = fakeKv();
    const q = indexQueue(kv.deps);
    const order: string[] = [];
    const e1 = at(1, 10);
    q.published(
      'r',
      {
        base: undefined,
        builtOn: 0,
        written: [e1],
        after: async () => order.push(`listed@${kv.writes.length}`),
      },
      tailOf(e1),
    );
    const e2 = at(2, 11);
    q.published(
      'r',
      {
        base: 'tail',
        builtOn: 10,
        written: [e2],
        after: async () => order.push(`ended@${kv.writes.length}`),
      },
      tailOf(e2),
    );
    await kv.release();
    await kv.release();
    await q.settled('r');
    expect(order).toEqual(['listed@1', 'ended@2']);
  });

  it('leaves the entry behind when a write fails, and catches up on the next update', async () => {
    const kv = fakeKv({ failWrites: 1 });
    const q = indexQueue(kv.deps);
    const e1 = at(1, 10);
    q.published('r', { base: undefined, builtOn: 0, written: [e1] }, tailOf(e1));
    await kv.release();
    await q.settled('r');
    expect(kv.stored).toBeUndefined();
    // The writer no longer knows what KV holds: the next update goes the catch-up way.
    const e2 = at(2, 11);
    q.published('r', { base: 'tail', builtOn: 10, written: [e2] }, tailOf(e2));
    await q.settled('r');
    expect(kv.catchUps).toBe(1);
    expect(kv.writes).toEqual([]);
  });

  it('catches up instead of writing over an entry someone else moved', async () => {
    const kv = fakeKv();
    const q = indexQueue(kv.deps);
    const e1 = at(1, 10);
    q.published('r', { base: undefined, builtOn: 0, written: [e1] }, tailOf(e1));
    await kv.release();
    await q.settled('r');
    // Built on a stream sequence the entry does not end at (another writer's event between).
    const e3 = at(3, 20);
    const base = kv.stored;
    q.published('r', { base, builtOn: 15, written: [e3] }, tailOf(e3));
    await q.settled('r');
    expect(kv.catchUps).toBe(1);
    expect(kv.writes).toHaveLength(1);
  });

  it('forgets the tail when an append fails, so the next one reads the index', async () => {
    const kv = fakeKv();
    const q = indexQueue(kv.deps);
    const e1 = at(1, 10);
    q.published('r', { base: undefined, builtOn: 0, written: [e1] }, tailOf(e1));
    q.forget('r');
    expect(q.tail('r')).toBeUndefined();
    await kv.release();
    await q.settledAll();
    expect(kv.writes).toHaveLength(1);
  });
});
