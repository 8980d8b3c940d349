/**
 * The forecast (issue 15): nearest-rank spreads, run samples from logs, and the must-show —
 * on a synthetic history of 500 runs written through the store port with costs drawn from a
 * known distribution (seeded), the p95 it gives contains 95 ± 3 % of 500 further runs.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { NewEnvelope, StoredEnvelope } from '../src/machines/events.js';
import { UsageError } from '../src/errors.js';
import { autoBudgetUsd, forecast, quantile, sampleOf, spreadOf } from '../src/runtime/forecast.js';
import { autoBudget, forecastFromStore } from '../src/runtime/forecastHistory.js';
import { openSqliteStore } from '../src/store/sqlite.js';
import { roundUsd } from '../src/machines/context.js';
import type { Store } from '../src/store/types.js';

/** mulberry32: a small seeded PRNG, so the synthetic history is the same on every machine. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A log-normal cost (median $0.002, σ 0.6), as a run's model spend is skewed to the right. */
function costDraw(rand: () => number): () => number {
  return () => {
    const z = Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
    return Math.round(0.002 * Math.exp(0.6 * z) * 1e9) / 1e9;
  };
}

const state = (step: string | null, status: 'running' | 'completed', costUsd: number) => ({
  value: status === 'running' ? { [step ?? '']: 'ready' } : status,
  status,
  step,
  costUsd,
});

/** A finished run's log: one model call in step `a` costing `usd`, then a transform `b`. */
function runLog(
  usd: number,
  t0: number,
  o: { version?: string; input?: unknown } = {},
): NewEnvelope[] {
  const env = (at: number, event: NewEnvelope['event'], s: NewEnvelope['state']): NewEnvelope => ({
    v: 1,
    at,
    event,
    state: s,
  });
  return [
    env(
      t0,
      {
        type: 'run.started',
        pipeline: 'synthetic',
        version: o.version ?? '1',
        machineHash: 'h',
        definition: null,
        module: null,
        input: o.input ?? { n: 1 },
        limits: { budgetUsd: null, maxIterations: null, deadlineAt: null },
        forkedFrom: null,
      },
      state('a', 'running', 0),
    ),
    env(
      t0 + 5,
      {
        type: 'ATTEMPT',
        step: 'a',
        attempt: 1,
        at: t0 + 5,
        estimate: { inputTokens: 10, maxTokens: 100, usd: roundUsd(usd * 2) },
        breaker: 'closed',
        model: 'claude-haiku-4-5',
      },
      state('a', 'running', 0),
    ),
    env(
      t0 + 805,
      {
        type: 'MODEL_RESPONSE',
        step: 'a',
        attempt: 1,
        requestId: null,
        model: 'claude-haiku-4-5',
        stopReason: 'end_turn',
        usage: {
          inputTokens: 10,
          outputTokens: 10,
          cacheReadTokens: 0,
          cacheWrite5mTokens: 0,
          cacheWrite1hTokens: 0,
        },
        costUsd: usd,
        verdict: 'valid',
        output: {},
        issues: [],
        text: null,
        durationMs: 800,
      },
      state('b', 'running', usd),
    ),
    env(t0 + 815, { type: 'STEP_DONE', step: 'b', output: 1 }, state('b', 'completed', usd)),
  ];
}

const stored = (log: NewEnvelope[], runId = 'r'): StoredEnvelope[] =>
  log.map((e, i) => ({ ...e, runId, seq: i + 1 }));

const dir = mkdtempSync(join(tmpdir(), 'plumbline-forecast-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function withStore(name: string, f: (s: Store) => Promise<void>): Promise<void> {
  const store = openSqliteStore(join(dir, `${name}.db`));
  try {
    await f(store);
  } finally {
    await store.close();
  }
}

describe('forecast statistics', () => {
  it('nearest-rank quantiles: p95 of 1..100 is 95, of 1..20 is 19; max; NaN when empty', () => {
    const hundred = Array.from({ length: 100 }, (_, i) => i + 1);
    expect(spreadOf(hundred)).toEqual({ p50: 50, p95: 95, p99: 99, max: 100 });
    expect(quantile(hundred.slice(0, 20), 0.95)).toBe(19);
    expect(spreadOf([3])).toEqual({ p50: 3, p95: 3, p99: 3, max: 3 });
    expect(quantile([], 0.5)).toBeNaN();
  });

  it('a run sample: cost from its state, calls from model outcomes, time to the step it was in', () => {
    const s = sampleOf(stored(runLog(0.003, 1_000)));
    expect(s).toMatchObject({
      costUsd: 0.003,
      neededUsd: 0.006,
      calls: 1,
      durationMs: 815,
      status: 'completed',
    });
    expect(s?.steps).toEqual({
      a: { costUsd: 0.003, calls: 1, durationMs: 805 },
      b: { costUsd: 0, calls: 0, durationMs: 10 },
    });
    // Unfinished runs and forks are not history.
    expect(sampleOf(stored(runLog(0.003, 1_000).slice(0, 3)))).toBeNull();
    const fork = runLog(0.003, 1_000);
    fork[0] = {
      ...fork[0],
      event: { ...fork[0]?.event, forkedFrom: { runId: 'x', seq: 3 } },
    } as NewEnvelope;
    expect(sampleOf(stored(fork))).toBeNull();
  });

  it('per step spreads are based on the runs that reached the step; auto budget is p99 of the budget needed × 1.5', () => {
    const samples = [0.001, 0.002, 0.004].map((c, i) => sampleOf(stored(runLog(c, i * 10_000))));
    const f = forecast(samples.filter((s) => s !== null));
    expect(f.runs).toBe(3);
    expect(f.costUsd).toEqual({ p50: 0.002, p95: 0.004, p99: 0.004, max: 0.004 });
    expect(f.steps.map((s) => [s.step, s.runs, s.calls.max])).toEqual([
      ['a', 3, 1],
      ['b', 3, 0],
    ]);
    expect(f.neededUsd.p99).toBe(0.008);
    expect(autoBudgetUsd(f)).toBe(0.012);
  });
});

describe('forecast from a recorded history', () => {
  it('p95 of 500 synthetic runs holds 95 ± 3 % of 500 further runs of the same distribution', async () => {
    const draw = costDraw(prng(15));
    await withStore('synthetic', async (store) => {
      for (let i = 0; i < 500; i++)
        await store.log.append(`run-${i}`, runLog(draw(), 1_000 + i * 1_000), 'no_stream');
      const h = await forecastFromStore(store, { pipeline: 'synthetic' });
      expect(h).toMatchObject({ version: '1', basis: 'all', forecast: { runs: 500 } });
      const p95 = h.forecast.costUsd.p95;
      const further = Array.from({ length: 500 }, draw);
      const held = further.filter((c) => c <= p95).length / further.length;
      expect(held).toBeGreaterThanOrEqual(0.92);
      expect(held).toBeLessThanOrEqual(0.98);
      // And it is near the distribution's true p95 (0.002 · e^(0.6 · 1.645) ≈ $0.00537).
      expect(Math.abs(p95 - 0.002 * Math.exp(0.6 * 1.6449)) / p95).toBeLessThan(0.15);
      expect(h.forecast.calls).toEqual({ p50: 1, p95: 1, p99: 1, max: 1 });
    });
  });

  it('takes the version asked (default the newest), prefers runs with the same input, refuses without history', async () => {
    await withStore('versions', async (store) => {
      await store.log.append('old', runLog(0.5, 1_000, { version: '0' }), 'no_stream');
      await store.log.append('x1', runLog(0.01, 2_000, { input: { n: 2 } }), 'no_stream');
      await store.log.append('x2', runLog(0.03, 3_000), 'no_stream');
      await store.log.append('live', runLog(9, 4_000).slice(0, 3), 'no_stream');
      const newest = await forecastFromStore(store, { pipeline: 'synthetic' });
      expect(newest).toMatchObject({ version: '1', forecast: { runs: 2 } });
      expect(newest.forecast.costUsd.max).toBe(0.03);
      const old = await forecastFromStore(store, { pipeline: 'synthetic', version: '0' });
      expect(old.forecast.costUsd.max).toBe(0.5);
      const same = await forecastFromStore(store, { pipeline: 'synthetic', input: { n: 2 } });
      expect(same).toMatchObject({ basis: 'input', forecast: { runs: 1, costUsd: { max: 0.01 } } });
      const other = await forecastFromStore(store, { pipeline: 'synthetic', input: { n: 7 } });
      expect(other).toMatchObject({ basis: 'all', forecast: { runs: 2 } });
      const auto = await autoBudget(store, { pipeline: 'synthetic' });
      expect(auto.budgetUsd).toBe(0.09);
      expect(auto.note).toMatch(
        /= p99 of the cap runs needed \$0\.060000 .* × margin 1\.5, from 2 finished run\(s\) of synthetic v1$/,
      );

      await expect(forecastFromStore(store, { pipeline: 'nope' })).rejects.toThrow(
        /no finished run of pipeline 'nope' in this store to forecast from: run it a few times first/,
      );
      await expect(
        forecastFromStore(store, { pipeline: 'synthetic', version: '9' }),
      ).rejects.toThrow(UsageError);
      await expect(autoBudget(store, { pipeline: 'nope' })).rejects.toThrow(
        /--budget-usd auto: no finished run of pipeline 'nope' to forecast from: pass --budget-usd <n>/,
      );
    });
  });
});
