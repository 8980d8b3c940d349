/**
 * The breaker gate keeps breakers in the process: a healthy model costs no store I/O, the store
 * is written on transitions only, re-read on an interval and after a lost compare-and-set, and
 * the half-open probe is still granted to one caller across processes (two connections to one
 * SQLite file stand for two processes).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { initialTransition, transition } from 'xstate';
import { afterEach, describe, expect, it } from 'vitest';
import {
  breakerMachine,
  stayClosed,
  type BreakerEvent,
  type BreakerSnapshot,
} from '../src/machines/breaker.js';
import { Breakers } from '../src/runtime/breakers.js';
import { openSqliteStore } from '../src/store/sqlite.js';
import type { ControlStore, Store } from '../src/store/types.js';

const config = {
  window: 6,
  minCalls: 4,
  failureRate: 0.5,
  consecutive: 3,
  coolDownMs: 1_000,
  probeTimeoutMs: 5_000,
};

/** A control store that counts its breaker reads and writes. */
function counted(control: ControlStore): ControlStore & { reads: number; writes: number } {
  const c = {
    ...control,
    reads: 0,
    writes: 0,
    getBreaker: async (key: string) => {
      c.reads += 1;
      return control.getBreaker(key);
    },
    casBreaker: async (key: string, value: unknown, revision: number) => {
      c.writes += 1;
      return control.casBreaker(key, value, revision);
    },
  };
  return c;
}

const open: Store[] = [];
const dirs: string[] = [];
afterEach(async () => {
  for (const s of open.splice(0)) await s.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** Two stores over one SQLite file: what two processes of a deployment share. */
function twoProcesses(): [Store, Store] {
  const dir = mkdtempSync(join(tmpdir(), 'breaker-cache-'));
  dirs.push(dir);
  const a = openSqliteStore(join(dir, 'p.db'));
  const b = openSqliteStore(join(dir, 'p.db'));
  open.push(a, b);
  return [a, b];
}

describe('breaker cache', () => {
  it("counts a closed breaker's outcomes as the machine does, and defers to it when one trips", () => {
    const type = fc.constantFrom<BreakerEvent['type']>('ACQUIRE', 'SUCCESS', 'FAILURE', 'RELEASE');
    fc.assert(
      fc.property(fc.array(type, { maxLength: 40 }), (types) => {
        let s = initialTransition(breakerMachine, config)[0] as BreakerSnapshot;
        for (const [now, t] of types.entries()) {
          if (s.value !== 'closed') return;
          const event = { type: t, now } as BreakerEvent;
          const kept = stayClosed(s.context, event);
          s = transition(breakerMachine, s, event)[0] as BreakerSnapshot;
          if (kept === null) expect(s.value).toBe('open');
          else
            expect({ value: s.value, context: s.context }).toEqual({
              value: 'closed',
              context: kept,
            });
        }
      }),
      { numRuns: 300 },
    );
  });

  it('reads the store once for 1,000 calls on a closed breaker and writes nothing', async () => {
    const store = openSqliteStore(':memory:');
    open.push(store);
    const control = counted(store.control);
    let t = 0;
    const b = new Breakers(control, config, undefined, { now: () => t });
    for (let i = 0; i < 1000; i++) {
      expect(await b.acquire('m', i)).toBe('closed');
      await b.record('m', true, 'ok', i);
      // Failures that do not trip (one in three) are counted in memory too.
      if (i % 3 === 0) await b.record('m', false, 'overloaded', i);
    }
    expect({ reads: control.reads, writes: control.writes }).toEqual({ reads: 1, writes: 0 });
    t = 1_000;
    await b.acquire('m', 2_000);
    expect(control.reads).toBe(2);
    // The outcomes counted here survive the refresh: the record did not change meanwhile.
    expect((await b.state('m')).outcomes).toHaveLength(6);
  });

  it("sees another process's transition after the refresh interval, and at once on a lost CAS", async () => {
    const [s1, s2] = twoProcesses();
    let t = 0;
    const a = new Breakers(s1.control, config, undefined, { now: () => t });
    const c2 = counted(s2.control);
    const b = new Breakers(c2, config, undefined, { now: () => t });
    expect(await b.acquire('m', 0)).toBe('closed');
    expect(await a.acquire('m', 0)).toBe('closed');
    for (let i = 1; i <= 3; i++) await a.record('m', false, 'overloaded', i);
    expect((await a.state('m')).state).toBe('open');
    // b's cache is fresh: it still calls (no store I/O) until it re-reads.
    expect(await b.acquire('m', 10)).toBe('closed');
    t = 999;
    expect(await b.acquire('m', 11)).toBe('closed');
    t = 1_000;
    expect(await b.acquire('m', 12)).toBe('open');
    // A process whose cache says closed and trips locally loses its CAS, re-reads, and adopts
    // the open breaker instead of opening it a second time.
    const c = new Breakers(s2.control, config, undefined, { now: () => 0 });
    await c.acquire('x', 0);
    for (let i = 1; i <= 3; i++) await a.record('x', false, 'overloaded', i);
    for (let i = 1; i <= 3; i++) await c.record('x', false, 'timeout', 100 + i);
    expect(await c.state('x')).toMatchObject({ state: 'open', opens: 1, openedAt: 3 });
    expect(await c.acquire('x', 500)).toBe('open');
  });

  it('grants one half-open probe across processes, whatever their caches say', async () => {
    const [s1, s2] = twoProcesses();
    const gates = [s1, s2, s1, s2].map((s) => new Breakers(s.control, config));
    for (const g of gates) expect(await g.acquire('m', 0)).toBe('closed');
    for (let i = 0; i < 3; i++) await gates[0]?.record('m', false, 'overloaded', i);
    // gates[1] has read the open breaker; gates[2] and gates[3] still hold a closed one.
    expect((await gates[1]?.state('m'))?.state).toBe('open');
    const views = await Promise.all(
      Array.from({ length: 40 }, (_, i) => gates[i % 4]?.acquire('m', 5_000 + (i % 3))),
    );
    const probes = views.filter((v) => v === 'half_open').length;
    expect(probes).toBe(1);
    // The probe's success closes the breaker for everyone after their next read.
    const winner = gates[views.indexOf('half_open') % 4];
    await winner?.record('m', true, 'ok', 5_100);
    for (const g of gates) expect((await g.state('m')).state).toBe('closed');
  });

  it('writes the probe release and a failed probe through, so another process can probe next', async () => {
    const [s1, s2] = twoProcesses();
    const a = new Breakers(s1.control, config);
    const c1 = counted(s2.control);
    const b = new Breakers(c1, config);
    for (let i = 0; i < 3; i++) await a.record('m', false, 'overloaded', i);
    expect(await a.acquire('m', 2_000)).toBe('half_open');
    expect(await b.acquire('m', 2_001)).toBe('open');
    await a.record('m', false, 'rate_limit', 2_002);
    // b's cache is fresh and says the probe is out, until b reads the store again.
    expect(await b.acquire('m', 2_003)).toBe('open');
    await b.state('m');
    expect(await b.acquire('m', 2_003)).toBe('half_open');
    const writes = c1.writes;
    await b.record('m', false, 'overloaded', 2_004);
    expect(c1.writes).toBe(writes + 1);
    expect(await a.state('m')).toMatchObject({ state: 'open', opens: 2, openedAt: 2_004 });
  });
});
