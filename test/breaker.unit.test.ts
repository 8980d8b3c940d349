/**
 * The breaker machine and its shared, compare-and-set gate.
 */
import { describe, expect, it } from 'vitest';
import { Breakers } from '../src/runtime/breakers.js';
import { openSqliteStore } from '../src/store/sqlite.js';

const config = {
  window: 6,
  minCalls: 4,
  failureRate: 0.5,
  consecutive: 3,
  coolDownMs: 1_000,
  probeTimeoutMs: 5_000,
};

describe('circuit breaker', () => {
  it('opens on a failure streak, refuses during the cool-down, lets one probe through, closes on its success', async () => {
    const store = openSqliteStore(':memory:');
    const b = new Breakers(store.control, config);
    expect(await b.acquire('m', 0)).toBe('closed');
    await b.record('m', false, 'overloaded', 1);
    await b.record('m', false, 'server', 2);
    expect((await b.state('m')).state).toBe('closed');
    await b.record('m', false, 'overloaded', 3);
    expect((await b.state('m')).state).toBe('open');
    expect(await b.acquire('m', 500)).toBe('open');
    expect(await b.acquire('m', 1_003)).toBe('half_open');
    expect(await b.acquire('m', 1_004)).toBe('open');
    await b.record('m', true, 'ok', 1_100);
    expect(await b.state('m')).toMatchObject({ state: 'closed', opens: 1, outcomes: [] });
    expect(await b.acquire('m', 1_200)).toBe('closed');
    await store.close();
  });

  it('opens on the failure rate of the window, and a failed probe opens it again', async () => {
    const store = openSqliteStore(':memory:');
    const b = new Breakers(store.control, config);
    for (const [i, ok] of [true, false, true, false].entries())
      await b.record('m', ok, ok ? 'ok' : 'overloaded', i);
    expect((await b.state('m')).state).toBe('open');
    expect(await b.acquire('m', 2_000)).toBe('half_open');
    await b.record('m', false, 'overloaded', 2_001);
    expect(await b.state('m')).toMatchObject({ state: 'open', openedAt: 2_001, opens: 2 });
    await store.close();
  });

  it("ignores client errors (a 400 is not the provider's trouble) and re-grants a lost probe", async () => {
    const store = openSqliteStore(':memory:');
    const b = new Breakers(store.control, config);
    for (let i = 0; i < 10; i++) await b.record('m', false, 'bad_request', i);
    expect((await b.state('m')).state).toBe('closed');
    for (let i = 0; i < 3; i++) await b.record('m', false, 'timeout', 10 + i);
    expect(await b.acquire('m', 2_000)).toBe('half_open');
    expect(await b.acquire('m', 3_000)).toBe('open');
    expect(await b.acquire('m', 7_001)).toBe('half_open');
    await store.close();
  });

  it('never counts 429s, and a 429 answering the half-open probe hands the probe to the next caller', async () => {
    const store = openSqliteStore(':memory:');
    const b = new Breakers(store.control, config);
    for (let i = 0; i < 20; i++) await b.record('m', false, 'rate_limit', i);
    expect(await b.state('m')).toMatchObject({ state: 'closed', opens: 0, outcomes: [] });
    for (let i = 0; i < 3; i++) await b.record('m', false, 'overloaded', 100 + i);
    expect(await b.acquire('m', 2_000)).toBe('half_open');
    expect(await b.acquire('m', 2_001)).toBe('open');
    await b.record('m', false, 'rate_limit', 2_002);
    expect((await b.state('m')).state).toBe('halfOpen');
    // Well within the probe timeout: the probe is free again, not lost for 5 s.
    expect(await b.acquire('m', 2_003)).toBe('half_open');
    expect(await b.acquire('m', 2_004)).toBe('open');
    await b.record('m', true, 'ok', 2_100);
    expect((await b.state('m')).state).toBe('closed');
    await store.close();
  });

  it('is shared: two gates over one store see one breaker, and racing acquirers get one probe', async () => {
    const store = openSqliteStore(':memory:');
    const a = new Breakers(store.control, config);
    const c = new Breakers(store.control, config);
    for (let i = 0; i < 3; i++) await a.record('m', false, 'overloaded', i);
    expect((await c.state('m')).state).toBe('open');
    const views = await Promise.all(
      Array.from({ length: 10 }, (_, i) => (i % 2 ? a : c).acquire('m', 5_000)),
    );
    expect(views.filter((v) => v === 'half_open')).toHaveLength(1);
    await store.close();
  });
});
