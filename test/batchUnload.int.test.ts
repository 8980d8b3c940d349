/**
 * A run waiting on a Message Batch holds no memory between polls far apart: when its next poll
 * is at least `unloadBackoffMs` away it is let go like a long backoff (its wake-up at that poll
 * in the store, its lease released, the drive stopped), and the wake-up sweep drives it on: it
 * polls the recorded batch (never submitting again), with the delays still growing, and ends at
 * the batch price once the batch ends. On one Runtime and through workers on the SQLite bus.
 * Every wait is on a virtual clock (the default schedule: polls at 5, 15, 35 s… after the send).
 */
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { openSqliteBus } from '../src/bus/sqlite.js';
import { definePipeline, llm } from '../src/machines/pipeline.js';
import { createAnthropicClient } from '../src/model/anthropic.js';
import { virtualClock } from '../src/runtime/clock.js';
import { Runtime, type RunResult } from '../src/runtime/driver.js';
import { silentLogger } from '../src/runtime/logger.js';
import { prepare } from '../src/runtime/prepare.js';
import { runWorker } from '../src/runtime/worker.js';
import type { FakeBatchAction } from '../src/testing/index.js';
import { harness, ofType, type Harness } from './helpers/harness.js';

const prepared = prepare(
  definePipeline({
    name: 'scorer',
    version: '1',
    input: z.object({ text: z.string() }),
    batch: true,
    steps: [
      llm({
        name: 'score',
        model: 'claude-sonnet-4-6',
        prompt: ({ input }) => `Score this: ${(input as { text: string }).text}`,
        output: z.object({ label: z.string(), score: z.number().int() }),
      }),
    ],
  }),
);
const good: FakeBatchAction = {
  kind: 'json',
  value: { label: 'ok', score: 7 },
  usage: { input_tokens: 1_000, output_tokens: 200 },
};
/** Sonnet 4.6 at the batch price ($1.5 in, $7.5 out per million). */
const BATCH_COST = (1_000 * 1.5 + 200 * 7.5) / 1_000_000;

/** Polls `f` until it is true (a generous deadline: the machine is loaded). */
async function until(what: string, f: () => Promise<boolean>, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await f())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** GETs of one batch: its status polls (and the retrieve the SDK's results() makes first). */
const batchGets = (h: Harness, id: string): number =>
  h.fake.requests.filter((q) => q.method === 'GET' && q.path === `/v1/messages/batches/${id}`)
    .length;
const submitted = async (h: Harness, id: string) =>
  ofType(await h.events(id), 'BATCH_SUBMITTED')[0]!.event;
const wakeAt = async (h: Harness, id: string) => (await h.store.waits.wakeTimes([id])).get(id);
const status = async (h: Harness, id: string) => (await h.store.log.getRun(id))?.status;

describe('a run waiting on a batch lets go between polls', { timeout: 60_000 }, () => {
  it('one Runtime: let go, woken at each next poll, polls the same batch, ends at half price', async () => {
    const clock = virtualClock();
    await using h = await harness({ clock, batches: { hold: true, script: () => good } });
    const rt = h.runtime({ unloadBackoffMs: 10_000, wakeSweepMs: 20 });
    try {
      // Polled once at 5 s (in progress); the next poll, 10 s on, is not waited for here.
      const r = await rt.start(prepared, { input: { text: 'a' }, runId: 'bu-1' });
      expect(r).toMatchObject({ status: 'running', stopped: 'unloaded' });
      const sub = await submitted(h, 'bu-1');
      expect(batchGets(h, sub.batchId)).toBe(1);
      expect(await wakeAt(h, 'bu-1')).toBe(sub.at + 15_000);
      // Its lease is free: another process takes it at once.
      const other = h.runtime();
      const taken = await other.leases.take('bu-1');
      expect(taken.ok).toBe(true);
      if (taken.ok) await other.leases.release(taken.held);
      // The sweep looks many times; the virtual time has not moved: nothing polls.
      await new Promise((res) => setTimeout(res, 200));
      expect(batchGets(h, sub.batchId)).toBe(1);

      // At its poll time it is woken, polls at once (still in progress), and goes again until
      // the next poll, 20 s on: the schedule went on from where it was, not from 5 s.
      await clock.sleep(10_000);
      await until('the second let-go', async () => (await wakeAt(h, 'bu-1')) === sub.at + 35_000);
      expect(batchGets(h, sub.batchId)).toBe(2);
      expect(await status(h, 'bu-1')).toBe('running');
      const again = await other.leases.take('bu-1');
      expect(again.ok).toBe(true);
      if (again.ok) await other.leases.release(again.held);

      // The batch ends; at the next poll the run reads its item and completes.
      h.fake.holdBatches(false);
      await clock.sleep(20_000);
      await until('bu-1 completed', async () => (await status(h, 'bu-1')) === 'completed');
      const events = await h.events('bu-1');
      // No new event kind: the log a resident run writes.
      expect(events.map((e) => e.event.type)).toEqual([
        'run.started',
        'ATTEMPT',
        'BATCH_SUBMITTED',
        'MODEL_RESPONSE',
      ]);
      const [resp] = ofType(events, 'MODEL_RESPONSE');
      expect(resp!.event.durationMs).toBe(35_000);
      expect(resp!.event.costUsd).toBeCloseTo(BATCH_COST, 12);
      // One batch, one item, never the Messages endpoint; three polls and one retrieve.
      expect([h.fake.batches, h.fake.batchItems, h.fake.calls]).toEqual([1, 1, 0]);
      expect(batchGets(h, sub.batchId)).toBe(3 + 1);
      expect(h.fake.requests.filter((q) => q.path.endsWith('/results'))).toHaveLength(1);
      expect(await h.store.waits.due(clock.now() + 1e9, 10)).toEqual([]);
    } finally {
      rt.stopWaking();
    }
  });

  it('a kill while let go is recorded at once; a kill flag alone at the wake-up; lone batches canceled', async () => {
    const clock = virtualClock();
    await using h = await harness({ clock, batches: { hold: true, script: () => good } });
    const rt = h.runtime({ unloadBackoffMs: 10_000, wakeSweepMs: 20, killPollMs: 20 });
    try {
      for (const runId of ['bk-1', 'bk-2'])
        expect((await rt.start(prepared, { input: { text: runId }, runId })).stopped).toBe(
          'unloaded',
        );
      const [sub1, sub2] = [await submitted(h, 'bk-1'), await submitted(h, 'bk-2')];
      expect(sub1.batchId).not.toBe(sub2.batchId);
      // At once: nobody drives bk-1, so the kill takes its lease and records KILL here.
      expect(await rt.kill('bk-1', 'operator', prepared, 0)).toBe('killed');
      expect(await wakeAt(h, 'bk-1')).toBeUndefined();
      // A process that cannot load the pipeline only sets bk-2's flag: recorded when it wakes.
      expect(await h.runtime().kill('bk-2', 'later', undefined, 0)).toBe('running');
      expect(await wakeAt(h, 'bk-2')).toBeDefined();
      // Past the kill watcher's poll (20 ms): its answers for bk-2 are no older than the flag.
      await new Promise((res) => setTimeout(res, 100));
      await clock.sleep(60_000);
      await until('bk-2 killed', async () => (await status(h, 'bk-2')) === 'killed');
      await new Promise((res) => setTimeout(res, 200));
      // bk-1 was never polled again; no run submitted again.
      expect(batchGets(h, sub1.batchId)).toBe(1);
      expect(h.fake.batches).toBe(2);
      for (const id of ['bk-1', 'bk-2'])
        expect((await h.events(id)).map((e) => e.event.type)).toEqual([
          'run.started',
          'ATTEMPT',
          'BATCH_SUBMITTED',
          'KILL',
        ]);
      expect(ofType(await h.events('bk-2'), 'KILL')[0]?.event.reason).toBe('later');
      const cancels = h.fake.requests.filter((q) => q.path.endsWith('/cancel'));
      // Each run's batch held its item alone: both canceled, at the kill and at the wake-up.
      expect(cancels.map((q) => q.path)).toEqual([
        `/v1/messages/batches/${sub1.batchId}/cancel`,
        `/v1/messages/batches/${sub2.batchId}/cancel`,
      ]);
      expect(await h.store.waits.due(clock.now() + 1e9, 10)).toEqual([]);
    } finally {
      rt.stopWaking();
    }
  });

  it('workers on SQLite: the worker slot is freed while the batch runs; a wake-up finishes it', async () => {
    const clock = virtualClock();
    await using h = await harness({ clock, batches: { hold: true, script: () => good } });
    const bus = openSqliteBus(h.dbPath, { ackWaitMs: 5_000, pollMs: 20 });
    const model = createAnthropicClient({ apiKey: 'sk-ant-test-batchwait', baseURL: h.fake.url });
    const ac = new AbortController();
    const ended: Array<RunResult | null> = [];
    const done = runWorker({
      runtime: new Runtime({
        store: h.store,
        model,
        clock,
        owner: 'host/1/a',
        waitForLease: false,
      }),
      bus,
      pipelines: new Map([['scorer', prepared]]),
      concurrency: 1,
      signal: ac.signal,
      logger: silentLogger,
      strandedCheckMs: 0,
      onRunEnd: (r) => ended.push(r),
      // unloadBackoffMs left at its default (10 s).
    });
    try {
      await bus.publishStart({ runId: 'bw-1', pipeline: 'scorer', input: { text: 'w' } });
      await until('bw-1 let go', async () => ended.length >= 1);
      expect(ended[0]).toMatchObject({ runId: 'bw-1', status: 'running', stopped: 'unloaded' });
      const sub = await submitted(h, 'bw-1');
      // Its one slot is free: a second run is driven meanwhile (and let go on its own batch).
      await bus.publishStart({ runId: 'bw-2', pipeline: 'scorer', input: { text: 'x' } });
      await until('bw-2 let go', async () => ended.length >= 2);
      expect(ended[1]).toMatchObject({ runId: 'bw-2', stopped: 'unloaded' });
      h.fake.holdBatches(false);
      // Past both runs' next poll (10 s after their first): the sweep wakes them, they finish.
      await clock.sleep(30_000);
      await until('both completed', async () =>
        (await Promise.all(['bw-1', 'bw-2'].map((id) => status(h, id)))).every(
          (s) => s === 'completed',
        ),
      );
      // The worker reports a run's end after its last append: the store can say so first.
      await until('both reported', async () => ended.length >= 4);
      expect(
        ended
          .slice(2)
          .map((r) => [r?.runId, r?.status])
          .sort(),
      ).toEqual([
        ['bw-1', 'completed'],
        ['bw-2', 'completed'],
      ]);
      expect(h.fake.batches).toBe(2);
      // bw-1: one poll before it went, one at its wake-up (it had ended), one retrieve.
      expect(batchGets(h, sub.batchId)).toBe(2 + 1);
      const [resp] = ofType(await h.events('bw-1'), 'MODEL_RESPONSE');
      expect(resp!.event.costUsd).toBeCloseTo(BATCH_COST, 12);
      expect(await h.store.waits.due(clock.now() + 1e9, 10)).toEqual([]);
      expect(await bus.deadLetters()).toEqual([]);
    } finally {
      ac.abort();
      await done;
      await bus.close();
    }
  });
});
