/**
 * `KillWatcher.current` answers "is this run killed?" from the watcher's poll: the first ask for
 * a run reads the store (a kill set before the run started is seen), later asks read nothing,
 * the one query per tick keeps the answer fresh, a stale answer falls back to one read, and runs
 * that stop asking stop being polled.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { KillWatcher } from '../src/runtime/killWatch.js';
import { openSqliteStore } from '../src/store/sqlite.js';
import type { ControlStore, Store } from '../src/store/types.js';

const stores: Store[] = [];
afterEach(async () => {
  for (const s of stores.splice(0)) await s.close();
});

/** A SQLite control store that counts single reads and batched polls (and the ids polled). */
function counted(failPolls = false) {
  const store = openSqliteStore(':memory:');
  stores.push(store);
  const n = { single: 0, batched: 0, polled: [] as string[][] };
  const control: ControlStore = {
    ...store.control,
    getKill: async (id) => {
      n.single += 1;
      return store.control.getKill(id);
    },
    getKills: async (ids) => {
      n.batched += 1;
      n.polled.push([...ids]);
      if (failPolls) throw new Error('store down');
      return store.control.getKills?.(ids) ?? [];
    },
  };
  return { store, control, n };
}

/** Waits until `cond` holds (generous deadline, no upper bound asserted). */
async function until(cond: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('kill watcher: current', () => {
  it('reads the store on the first ask only, and sees a kill set before the run started', async () => {
    const { store, control, n } = counted();
    await store.control.setKill({ runId: 'early', reason: 'before start', at: 1 });
    const w = new KillWatcher(control, 20, { maxAgeMs: 60_000 });
    expect(await w.current('early')).toMatchObject({ reason: 'before start' });
    expect(await w.current('r1')).toBeUndefined();
    expect(n.single).toBe(2);
    for (let i = 0; i < 100; i++) {
      expect(await w.current('r1')).toBeUndefined();
      expect(await w.current('early')).toMatchObject({ reason: 'before start' });
    }
    expect(n.single).toBe(2);
  });

  it('sees a kill set while running from the one poll per tick, without reading per ask', async () => {
    const { store, control, n } = counted();
    const w = new KillWatcher(control, 20, { maxAgeMs: 60_000 });
    for (let i = 0; i < 50; i++) expect(await w.current(`r${i}`)).toBeUndefined();
    await until(() => n.batched >= 2, 'two polls');
    // One query names every run that asked.
    expect(n.polled.at(-1)?.toSorted()).toEqual(
      Array.from({ length: 50 }, (_, i) => `r${i}`).toSorted(),
    );
    await store.control.setKill({ runId: 'r7', reason: 'stop', at: 2 });
    const polls = n.batched;
    await until(() => n.batched >= polls + 2, 'a poll after the kill');
    expect(await w.current('r7')).toMatchObject({ runId: 'r7', reason: 'stop' });
    expect(await w.current('r8')).toBeUndefined();
    expect(n.single).toBe(50);
  });

  it('reads the store again when the polls fall behind (here: they fail)', async () => {
    const { store, control, n } = counted(true);
    const w = new KillWatcher(control, 20);
    expect(await w.current('r1')).toBeUndefined();
    await store.control.setKill({ runId: 'r1', reason: 'stop', at: 3 });
    await until(() => n.batched >= 3, 'failed polls');
    expect(await w.current('r1')).toMatchObject({ reason: 'stop' });
    expect(n.single).toBe(2);
  });

  it('stops polling runs that stopped asking, and then stops its timer', async () => {
    const { control, n } = counted();
    const w = new KillWatcher(control, 10, { idleMs: 50 });
    await w.current('gone');
    await until(() => n.batched >= 1, 'a poll');
    const stop = w.watch('waiting', () => undefined);
    await until(
      () => n.polled.at(-1)?.join() === 'waiting',
      'the idle run to leave the polled set',
    );
    stop();
    const polls = n.batched;
    await new Promise((r) => setTimeout(r, 100));
    expect(n.batched).toBeLessThanOrEqual(polls + 1);
  });

  it("answers a new run from the store's check of every flag (killAsOf), as old as a poll may be", async () => {
    const { store, control, n } = counted();
    let checkAt = performance.now();
    let listing = true;
    const since: number[] = [];
    control.killAsOf = async (id, after) => {
      since.push(after);
      if (!listing) return undefined;
      return { flag: await store.control.getKill(id), at: checkAt };
    };
    await store.control.setKill({ runId: 'early', reason: 'before start', at: 1 });
    const w = new KillWatcher(control, 20, { maxAgeMs: 60_000 });
    expect(await w.current('early')).toMatchObject({ reason: 'before start' });
    for (let i = 0; i < 20; i++) expect(await w.current(`r${i}`)).toBeUndefined();
    expect(n.single).toBe(0);
    // Each asked for a check no older than maxAgeMs.
    expect(since.every((t) => t >= checkAt - 60_000 && t <= performance.now() - 60_000)).toBe(true);
    // The answer is as old as the check: once that is past maxAgeMs, the run asks again.
    // (Polls far apart: no tick refreshes the answer meanwhile.)
    const w2 = new KillWatcher(control, 10_000, { maxAgeMs: 30 });
    checkAt = performance.now() - 25;
    expect(await w2.current('x')).toBeUndefined();
    const asks = since.length;
    await until(() => performance.now() - checkAt > 40, 'the check to age');
    listing = false;
    await store.control.setKill({ runId: 'x', reason: 'late', at: 2 });
    expect(await w2.current('x')).toMatchObject({ reason: 'late' });
    expect(since.length).toBe(asks + 1);
    expect(n.single).toBe(1);
  });

  it('without a batched query, polls no asking run and reads the store once its answer is stale', async () => {
    const store = openSqliteStore(':memory:');
    stores.push(store);
    let single = 0;
    const control: ControlStore = {
      setKill: (f) => store.control.setKill(f),
      getKill: async (id) => {
        single += 1;
        return store.control.getKill(id);
      },
      getBreaker: (k) => store.control.getBreaker(k),
      casBreaker: (k, v, r) => store.control.casBreaker(k, v, r),
    };
    const w = new KillWatcher(control, 10, { maxAgeMs: 30 });
    for (let i = 0; i < 20; i++) expect(await w.current(`r${i}`)).toBeUndefined();
    expect(await w.current('r0')).toBeUndefined();
    expect(single).toBe(20);
    await store.control.setKill({ runId: 'r0', reason: 'stop', at: 4 });
    // Ticks pass without a read for the 20 runs; the next ask after maxAgeMs reads r0 alone.
    const t = Date.now();
    await until(() => Date.now() - t > 60, '60 ms');
    expect(single).toBe(20);
    expect(await w.current('r0')).toMatchObject({ reason: 'stop' });
    expect(single).toBe(21);
  });
});
