/**
 * A run in a long backoff (a 429 with `retry-after: 30`) holds no memory: it is let go with its
 * retryAt in the store's wake-up schedule and its lease released, and the wake-up sweep drives
 * it on at retryAt — on one Runtime (its own sweep) and with in-process workers on the SQLite
 * bus. Its log is the log a resident run writes. Every wait is on a virtual clock.
 */
import { describe, expect, it } from 'vitest';
import { openSqliteBus } from '../src/bus/sqlite.js';
import type { StoredEnvelope } from '../src/machines/events.js';
import { createAnthropicClient } from '../src/model/anthropic.js';
import { virtualClock } from '../src/runtime/clock.js';
import { Runtime } from '../src/runtime/driver.js';
import { loadPipeline } from '../src/runtime/load.js';
import { silentLogger } from '../src/runtime/logger.js';
import type { RunResult } from '../src/runtime/driver.js';
import { runWorker } from '../src/runtime/worker.js';
import type { FakeAction } from '../src/testing/index.js';
import { harness, ofType, type Harness } from './helpers/harness.js';

const limited: FakeAction = { kind: 'status', status: 429, headers: { 'retry-after': '30' } };
const answer: FakeAction = { kind: 'json', value: { n: 1 } };
const prepared = await loadPipeline('test/fixtures/pipelines/patient.ts');

/** Polls `f` until it is true (a generous deadline: the machine is loaded). */
async function until(what: string, f: () => Promise<boolean>, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await f())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** The run's events without what differs between two runs (ids, times, request ids). */
function shape(events: StoredEnvelope[]): unknown[] {
  const drop = new Set(['at', 'retryAt', 'requestId', 'durationMs', 'runId', 'input']);
  return events.map((e) =>
    Object.fromEntries(Object.entries(e.event).filter(([k]) => !drop.has(k))),
  );
}

const status = async (h: Harness, id: string) => (await h.store.log.getRun(id))?.status;

describe('a long backoff lets the run go', () => {
  it('one Runtime: unloaded, woken by its own sweep at retryAt, and logged as a resident run', async () => {
    await using h = await harness({ script: [limited, answer] });
    const clock = virtualClock();
    const rt = h.runtime({ clock, unloadBackoffMs: 10_000, wakeSweepMs: 20 });
    try {
      const r = await rt.start(prepared, { input: {}, runId: 'u-1' });
      // The drive returned: nothing of the run is left in this process.
      expect(r).toMatchObject({ status: 'running', stopped: 'unloaded' });
      const err = ofType(await h.events('u-1'), 'MODEL_ERROR')[0];
      expect(err?.event.retryAt).toBe(clock.now() + 30_000);
      expect(await h.store.waits.wakeTimes(['u-1'])).toEqual(
        new Map([['u-1', err?.event.retryAt]]),
      );
      // Its lease is free: another process takes it at once.
      const other = h.runtime({ clock });
      const taken = await other.leases.take('u-1');
      expect(taken.ok).toBe(true);
      if (taken.ok) await other.leases.release(taken.held);
      // The sweep looks many times; the virtual time has not moved: nothing is due.
      await new Promise((res) => setTimeout(res, 300));
      expect(h.fake.calls).toBe(1);
      expect(ofType(await h.events('u-1'), 'TIMER')).toEqual([]);
      // Time reaches retryAt: the sweep drives it on, and it completes.
      await clock.sleep(30_000);
      await until('u-1 completed', async () => (await status(h, 'u-1')) === 'completed');
      const timer = ofType(await h.events('u-1'), 'TIMER')[0];
      expect(timer?.event.at).toBe(err?.event.retryAt);
      expect(h.fake.calls).toBe(2);
      expect(await h.store.waits.wakeTimes(['u-1'])).toEqual(new Map());
      expect(await h.store.waits.due(clock.now() + 1e9, 10)).toEqual([]);

      // The same script on a resident run (no unloading) writes the same log.
      h.fake.setScript([limited, answer]);
      const resident = await h.runtime({ clock }).start(prepared, { input: {}, runId: 'u-r' });
      expect(resident.status).toBe('completed');
      expect(shape(await h.events('u-1'))).toEqual(shape(await h.events('u-r')));
    } finally {
      rt.stopWaking();
    }
  });

  it('a process that let a run go dies; a new Runtime that knows the pipeline wakes it at retryAt', async () => {
    await using h = await harness({ script: [limited, answer] });
    const clock = virtualClock();
    // The first process's sweep never looks (an hour between looks): it "dies" after letting go.
    const first = h.runtime({ clock, unloadBackoffMs: 10_000, wakeSweepMs: 3_600_000 });
    expect((await first.start(prepared, { input: {}, runId: 'c-1' })).stopped).toBe('unloaded');
    first.stopWaking();
    await clock.sleep(30_000);
    const second = h.runtime({ clock, unloadBackoffMs: 10_000, wakeSweepMs: 20 });
    try {
      // It has driven no run of this pipeline: it wakes nothing until told the pipeline.
      await new Promise((res) => setTimeout(res, 200));
      expect(await status(h, 'c-1')).toBe('running');
      second.wakes(prepared);
      await until('c-1 completed', async () => (await status(h, 'c-1')) === 'completed');
      const err = ofType(await h.events('c-1'), 'MODEL_ERROR')[0];
      expect(ofType(await h.events('c-1'), 'TIMER')[0]?.event.at).toBe(err?.event.retryAt);
      expect(h.fake.calls).toBe(2);
    } finally {
      second.stopWaking();
    }
  });

  it('a short backoff stays in the process', async () => {
    await using h = await harness({
      script: [{ kind: 'status', status: 429, headers: { 'retry-after': '5' } }, answer],
    });
    const clock = virtualClock();
    const rt = h.runtime({ clock, unloadBackoffMs: 10_000 });
    try {
      const r = await rt.start(prepared, { input: {}, runId: 's-1' });
      expect(r.status).toBe('completed');
      expect(r.stopped).toBeUndefined();
      expect(h.fake.calls).toBe(2);
    } finally {
      rt.stopWaking();
    }
  });

  it('a kill while unloaded is recorded at once; a kill flag alone is recorded at the wake-up', async () => {
    await using h = await harness({ script: () => limited });
    const clock = virtualClock();
    const rt = h.runtime({ clock, unloadBackoffMs: 10_000, wakeSweepMs: 20, killPollMs: 20 });
    try {
      expect((await rt.start(prepared, { input: {}, runId: 'k-1' })).stopped).toBe('unloaded');
      expect((await rt.start(prepared, { input: {}, runId: 'k-2' })).stopped).toBe('unloaded');
      // At once: nobody drives k-1, so the kill takes its lease and records KILL here.
      expect(await rt.kill('k-1', 'operator', prepared, 0)).toBe('killed');
      expect(await h.store.waits.wakeTimes(['k-1'])).toEqual(new Map());
      // On wake: a process that cannot load the pipeline only sets k-2's flag.
      expect(await h.runtime({ clock }).kill('k-2', 'later', undefined, 0)).toBe('running');
      expect((await h.store.waits.wakeTimes(['k-2'])).has('k-2')).toBe(true);
      // Past the kill watcher's poll (20 ms): its answers for k-2 are no older than the flag.
      await new Promise((res) => setTimeout(res, 100));
      await clock.sleep(30_000);
      await until('k-2 killed', async () => (await status(h, 'k-2')) === 'killed');
      const kill = ofType(await h.events('k-2'), 'KILL')[0];
      expect(kill?.event.reason).toBe('later');
      // Neither run called the model again.
      expect(h.fake.calls).toBe(2);
      expect(await h.store.waits.due(clock.now() + 1e9, 10)).toEqual([]);
    } finally {
      rt.stopWaking();
    }
  });

  it('workers on SQLite: a run let go by a worker that then stops is woken and finished by another', async () => {
    await using h = await harness({ script: [limited, answer] });
    const clock = virtualClock();
    const bus = openSqliteBus(h.dbPath, { ackWaitMs: 5_000, pollMs: 20 });
    const model = createAnthropicClient({ apiKey: 'sk-ant-test-unload', baseURL: h.fake.url });
    const worker = (
      owner: string,
      stranded: { strandedCheckMs: number; strandedAfterMs?: number } = { strandedCheckMs: 0 },
    ) => {
      const ac = new AbortController();
      const ended: Array<RunResult | null> = [];
      const runtime = new Runtime({ store: h.store, model, clock, owner, waitForLease: false });
      const done = runWorker({
        runtime,
        bus,
        pipelines: new Map([['patient', prepared]]),
        concurrency: 2,
        signal: ac.signal,
        logger: silentLogger,
        ...stranded,
        onRunEnd: (r) => ended.push(r),
        // unloadBackoffMs left at its default (10 s): the 30 s retry-after is above it.
      });
      const stop = async (): Promise<void> => {
        ac.abort();
        await done;
      };
      return { ended, stop };
    };
    try {
      // Worker a looks for stranded runs every 50 ms, quiet for 1 ms and unleased.
      const a = worker('host/1/a', { strandedCheckMs: 50, strandedAfterMs: 1 });
      await bus.publishStart({ runId: 'w-1', pipeline: 'patient', input: {} });
      // Worker a's drive ends (the command acked, its slot free) with the run let go.
      await until('w-1 let go', async () => a.ended.length >= 1);
      expect(a.ended[0]).toMatchObject({ runId: 'w-1', status: 'running', stopped: 'unloaded' });
      expect((await h.store.waits.wakeTimes(['w-1'])).has('w-1')).toBe(true);
      // Quiet and unleased, but scheduled: the stranded check leaves it to the sweep (a
      // re-queue would drive it again here, a second drive ending).
      await new Promise((res) => setTimeout(res, 1_000));
      expect(a.ended).toHaveLength(1);
      // Worker a stops (nothing of the run is in it); the clock then reaches retryAt.
      await a.stop();
      expect(await status(h, 'w-1')).toBe('running');
      expect(ofType(await h.events('w-1'), 'TIMER')).toEqual([]);
      const err = ofType(await h.events('w-1'), 'MODEL_ERROR')[0];
      await clock.sleep(30_000);
      const b = worker('host/2/b');
      await until('w-1 completed', async () => (await status(h, 'w-1')) === 'completed');
      await b.stop();
      // Woken by worker b's sweep: a resume command, driven there to the end.
      expect(b.ended.map((r) => [r?.runId, r?.status])).toEqual([['w-1', 'completed']]);
      const timer = ofType(await h.events('w-1'), 'TIMER')[0];
      expect(timer?.event.at).toBeGreaterThanOrEqual(err?.event.retryAt ?? Infinity);
      expect(h.fake.calls).toBe(2);
      expect(await h.store.waits.due(clock.now() + 1e9, 10)).toEqual([]);
      expect(await bus.deadLetters()).toEqual([]);
    } finally {
      await bus.close();
    }
  }, 60_000);
});
