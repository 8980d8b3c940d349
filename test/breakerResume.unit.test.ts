/**
 * Breaker auto-resume decisions, with a scripted breaker and an in-memory list of parked runs:
 * one probe per cool-down, a paced resume once closed, and no sweep of the store when quiet.
 */
import { describe, expect, it } from 'vitest';
import {
  BreakerResumer,
  breakerResumeStep,
  type BreakerParkedRun,
  type BreakerParkingSource,
} from '../src/runtime/breakerResume.js';
import type { BreakerState } from '../src/runtime/breakers.js';
import { silentLogger } from '../src/runtime/logger.js';

const base: BreakerState = {
  key: 'model:m',
  state: 'open',
  openedAt: 1_000,
  probeAt: null,
  opens: 1,
  outcomes: [],
  coolDownMs: 500,
  probeTimeoutMs: 2_000,
};

describe('breakerResumeStep', () => {
  it.each([
    ['open, cooling down', base, 1_400, undefined, 'none'],
    ['open, cool-down over', base, 1_500, undefined, 'probe'],
    ['open, a probe sent within the cool-down', base, 1_900, 1_500, 'none'],
    ['open, the last probe a cool-down ago', base, 2_000, 1_500, 'probe'],
    ['half-open, probe out', { ...base, state: 'halfOpen', probeAt: 1_600 }, 1_700, 1_500, 'none'],
    [
      'half-open, probe lost',
      { ...base, state: 'halfOpen', probeAt: 1_600 },
      3_600,
      1_500,
      'probe',
    ],
    [
      'half-open, probe handed back',
      { ...base, state: 'halfOpen', probeAt: null },
      2_100,
      1_500,
      'probe',
    ],
    ['closed', { ...base, state: 'closed', openedAt: null }, 2_000, 1_500, 'resume'],
  ] as const)('%s', (_, s, now, last, kind) => {
    expect(breakerResumeStep(s as BreakerState, now, last).kind).toBe(kind);
  });
});

/** A source over a list, recording what was resumed and how often the store was swept. */
function listSource(runs: BreakerParkedRun[]) {
  const resumed: Array<[string, string]> = [];
  let sweeps = 0;
  const source: BreakerParkingSource = {
    models: () => ['m'],
    parked: (models) => {
      sweeps++;
      return Promise.resolve(runs.filter((r) => models.has(r.model)));
    },
    resume: (run, why) => {
      resumed.push([run.runId, why]);
      runs.splice(runs.indexOf(run), 1);
      return Promise.resolve();
    },
  };
  return { source, resumed, sweeps: () => sweeps };
}

describe('BreakerResumer', () => {
  it('probes once per cool-down, then resumes the rest at its pace once closed, then goes quiet', async () => {
    const runs = Array.from({ length: 5 }, (_, i) => ({ runId: `r${i}`, model: 'm', seq: 3 }));
    const { source, resumed, sweeps } = listSource(runs);
    let now = 1_000;
    let state: BreakerState = base;
    const r = new BreakerResumer(
      source,
      { state: () => Promise.resolve(state) },
      () => now,
      silentLogger,
      {
        perSecond: 2,
        pollMs: 100,
      },
    );
    expect(await r.tick()).toBe(false);
    expect(resumed).toEqual([]);
    now = 1_500;
    await r.tick();
    expect(resumed).toEqual([['r0', 'probe']]);
    // The probe met the outage again: open anew; no second probe before its cool-down.
    runs.push({ runId: 'r0', model: 'm', seq: 6 });
    state = { ...base, openedAt: 1_600, opens: 2 };
    now = 1_900;
    await r.tick();
    expect(resumed).toHaveLength(1);
    now = 2_100;
    await r.tick();
    expect(resumed.at(-1)).toEqual(['r1', 'probe']);
    // The second probe closed it: the others at 2 per second.
    state = { ...base, state: 'closed', openedAt: null, opens: 2 };
    now = 3_100;
    expect(await r.tick()).toBe(true);
    expect(resumed.slice(2).map(([id, why]) => `${id}:${why}`)).toEqual(['r2:closed', 'r3:closed']);
    now = 4_100;
    expect(await r.tick()).toBe(false);
    expect(resumed.slice(4).map(([id]) => id)).toEqual(['r4', 'r0']);
    // Nothing left: after a grace the closed breaker is quiet and the store is not swept again.
    now = 4_300;
    await r.tick();
    const before = sweeps();
    now = 4_500;
    await r.tick();
    await r.tick();
    expect(sweeps()).toBe(before);
  });
});
