/**
 * The JetStream run-index queue (jetstreamIndexQueue.ts) with a fake KV: a run's updates are
 * applied in order, one at a time, those that piled up go as one compare-and-set, a failure
 * leaves the entry behind (catch-up decides), and `settled` waits for the run's updates.
 */
import { describe, expect, it } from 'vitest';
import type { RunStatus, StoredEnvelope } from '../src/machines/events.js';
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

/** A fake timer: the test fires it (no wall clock). */
function fakeTimer() {
  const armed: Array<{ ms: number; fire: () => void; cancelled: boolean }> = [];
  return {
    armed,
    setTimer(fire: () => void, ms: number) {
      const t = { ms, fire, cancelled: false };
      armed.push(t);
      return () => void (t.cancelled = true);
    },
    /** Fires the live timers. */
    fire(): void {
      for (const t of armed.filter((x) => !x.cancelled)) {
        t.cancelled = true;
        t.fire();
      }
    },
    get live(): number {
      return armed.filter((x) => !x.cancelled).length;
    },
  };
}

/** Event `seq` of run `runId` at `streamSeq`, with the run's status after it. */
function ev(seq: number, streamSeq: number, status: RunStatus = 'running', runId = 'r'): Located {
  const e = seq === 1 ? started() : stepDone(seq - 1, status);
  return { env: { ...e, runId, seq } as StoredEnvelope, streamSeq };
}

/** Lets pending promise callbacks run (a write the queue started reaches the fake KV). */
async function ticks(n = 20): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
}

/** Lets the queue run until `kv` has taken `n` writes (or 50 turns passed). */
async function writesReach(kv: { writes: unknown[] }, n: number): Promise<void> {
  for (let i = 0; i < 50 && kv.writes.length < n; i++) await ticks(1);
}

describe('jetstream run-index queue: held middle updates', () => {
  /** Publishes e (continuing the previous one) as the store's append does. */
  const publish = (
    q: ReturnType<typeof indexQueue>,
    e: Located,
    prev: Located | undefined,
    hold: boolean,
    runId = 'r',
  ) =>
    q.published(
      runId,
      {
        base: prev === undefined ? undefined : 'tail',
        builtOn: prev?.streamSeq ?? 0,
        written: [e],
        ...(hold ? { hold } : {}),
      },
      tailOf(e),
    );

  /** A queue (delay `delayMs`, the default when undefined) whose run `r` has started: its first write taken. */
  async function startedQueue(delayMs?: number) {
    const kv = fakeKv();
    const t = fakeTimer();
    const q = indexQueue(kv.deps, {
      ...(delayMs !== undefined ? { delayMs } : {}),
      setTimer: t.setTimer,
    });
    const [e1, e2, e3] = [ev(1, 10), ev(2, 11), ev(3, 12)];
    publish(q, e1, undefined, false);
    await kv.release();
    await ticks();
    return { kv, t, q, e1, e2, e3 };
  }

  it('holds middle updates and writes them with the next one written at once', async () => {
    const kv = fakeKv();
    const t = fakeTimer();
    const q = indexQueue(kv.deps, { delayMs: 1_000, setTimer: t.setTimer });
    const [e1, e2, e3, e4] = [ev(1, 10), ev(2, 11), ev(3, 12), ev(4, 13, 'completed')];
    publish(q, e1, undefined, false);
    await kv.release();
    await ticks();
    publish(q, e2, e1, true);
    publish(q, e3, e2, true);
    await ticks();
    // Nothing written for the middle appends; one timer armed for both, after the delay.
    expect(kv.writes).toEqual([{ lastSeq: 1, revision: 1 }]);
    expect(t.armed.map((x) => x.ms)).toEqual([1_000]);
    // The tail moved on all the same: the next append publishes without reading the index.
    expect(q.tail('r')?.lastSeq).toBe(3);
    publish(q, e4, e3, false);
    await kv.release();
    await q.settled('r');
    expect(kv.writes).toEqual([
      { lastSeq: 1, revision: 1 },
      { lastSeq: 4, revision: 2 },
    ]);
    expect(kv.stored?.entry.summary.status).toBe('completed');
    expect(t.live).toBe(0);
    expect(kv.catchUps).toBe(0);
  });

  it('writes a status change at once, with the updates held before it', async () => {
    const kv = fakeKv();
    const t = fakeTimer();
    const q = indexQueue(kv.deps, { setTimer: t.setTimer });
    const [e1, e2, e3] = [ev(1, 10), ev(2, 11), ev(3, 12, 'parked')];
    publish(q, e1, undefined, false);
    await kv.release();
    await ticks();
    publish(q, e2, e1, true);
    await ticks();
    expect(kv.writes).toHaveLength(1);
    // The default delay.
    expect(t.armed.map((x) => x.ms)).toEqual([1_000]);
    publish(q, e3, e2, false);
    // Written without settled() or the timer: the write is under way.
    await kv.release();
    await writesReach(kv, 2);
    expect(kv.writes).toEqual([
      { lastSeq: 1, revision: 1 },
      { lastSeq: 3, revision: 2 },
    ]);
    expect(kv.stored?.entry.summary.status).toBe('parked');
    await q.settled('r');
    expect(t.live).toBe(0);
  });

  it('writes held updates when the delay passes', async () => {
    const { kv, t, q, e1, e2, e3 } = await startedQueue(250);
    publish(q, e2, e1, true);
    publish(q, e3, e2, true);
    await ticks();
    expect(kv.writes).toHaveLength(1);
    t.fire();
    await kv.release();
    await writesReach(kv, 2);
    expect(kv.writes).toEqual([
      { lastSeq: 1, revision: 1 },
      { lastSeq: 3, revision: 2 },
    ]);
    expect(t.armed.map((x) => x.ms)).toEqual([250]);
  });

  it('keeps an update held that came while an earlier write was under way', async () => {
    const kv = fakeKv();
    const t = fakeTimer();
    const q = indexQueue(kv.deps, { setTimer: t.setTimer });
    const [e1, e2] = [ev(1, 10), ev(2, 11)];
    publish(q, e1, undefined, false);
    await ticks();
    // The start's write is waiting at the fake KV when the middle append comes.
    publish(q, e2, e1, true);
    await kv.release();
    await ticks();
    expect(kv.writes).toEqual([{ lastSeq: 1, revision: 1 }]);
    expect(t.live).toBe(1);
    t.fire();
    await kv.release();
    await writesReach(kv, 2);
    expect(kv.writes.map((w) => w.lastSeq)).toEqual([1, 2]);
  });

  it("settled and settledAll write the held updates first (readers see this process's writes)", async () => {
    const { kv, t, q, e1, e2, e3 } = await startedQueue();
    publish(q, e2, e1, true);
    const settled = q.settled('r');
    await kv.release();
    await settled;
    expect(kv.writes.map((w) => w.lastSeq)).toEqual([1, 2]);
    expect(t.live).toBe(0);
    publish(q, e3, e2, true);
    const all = q.settledAll();
    await kv.release();
    await all;
    expect(kv.writes.map((w) => w.lastSeq)).toEqual([1, 2, 3]);
    expect(t.live).toBe(0);
  });

  it('settledAll writes the held updates of every run', async () => {
    const stored = new Map<string, Head>();
    const writes: string[] = [];
    const t = fakeTimer();
    const q = indexQueue(
      {
        async cas(runId, entry, revision) {
          if ((stored.get(runId)?.revision ?? 0) !== revision) return null;
          stored.set(runId, { entry, revision: revision + 1 });
          writes.push(`${runId}@${entry.summary.lastSeq}`);
          return revision + 1;
        },
        async catchUp(runId) {
          return stored.get(runId);
        },
        async written() {},
      },
      { setTimer: t.setTimer },
    );
    for (const id of ['x', 'y']) {
      const [e1, e2] = [ev(1, 10, 'running', id), ev(2, 11, 'running', id)];
      publish(q, e1, undefined, false, id);
      await q.settled(id);
      publish(q, e2, e1, true, id);
    }
    await ticks();
    expect(writes).toEqual(['x@1', 'y@1']);
    await q.settledAll();
    expect(writes.sort()).toEqual(['x@1', 'x@2', 'y@1', 'y@2']);
    expect(t.live).toBe(0);
  });

  it('with delayMs 0 holds nothing: every update is written as it comes', async () => {
    const { kv, t, q, e1, e2, e3 } = await startedQueue(0);
    publish(q, e2, e1, true);
    await kv.release();
    await writesReach(kv, 2);
    publish(q, e3, e2, true);
    await kv.release();
    await writesReach(kv, 3);
    expect(kv.writes.map((w) => w.lastSeq)).toEqual([1, 2, 3]);
    expect(t.armed).toEqual([]);
  });
});
