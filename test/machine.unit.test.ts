/**
 * The run statechart, event by event (given / when / then): limits, resume, kill, skip.
 */
import { describe, expect, it } from 'vitest';
import { initialTransition } from 'xstate';
import { z } from 'zod';
import type { MachineEvent } from '../src/machines/events.js';
import { initialSnapshot, statusOf, step, type RunSnapshot } from '../src/machines/fold.js';
import { definePipeline, effect, llm } from '../src/machines/pipeline.js';
import { prepare } from '../src/runtime/prepare.js';

const p = prepare(
  definePipeline({
    name: 'm',
    version: '1',
    input: z.object({}),
    steps: [
      llm({
        name: 'a',
        model: 'claude-haiku-4-5',
        prompt: () => 'x',
        output: z.object({ v: z.number() }),
      }),
      effect({ name: 'b', key: () => 'k', run: () => 1 }),
    ],
  }),
);

const attempt = (
  usd: number,
  at = 10,
  breaker: 'closed' | 'open' | 'half_open' = 'closed',
): MachineEvent => ({
  type: 'ATTEMPT',
  step: 'a',
  attempt: 1,
  at,
  estimate: { inputTokens: 10, maxTokens: 100, usd },
  breaker,
  model: 'claude-haiku-4-5',
});
const response = (costUsd: number, verdict: 'valid' | 'invalid' = 'valid'): MachineEvent => ({
  type: 'MODEL_RESPONSE',
  step: 'a',
  attempt: 1,
  requestId: 'r',
  model: 'm',
  stopReason: 'end_turn',
  costUsd,
  verdict,
  usage: {
    inputTokens: 1,
    outputTokens: 1,
    cacheReadTokens: 0,
    cacheWrite5mTokens: 0,
    cacheWrite1hTokens: 0,
  },
  ...(verdict === 'valid' ? { output: { v: 1 } } : {}),
  issues: verdict === 'valid' ? [] : ['v: required'],
  text: null,
  durationMs: 1,
});

function given(
  limits: { budgetUsd?: number; maxIterations?: number; deadlineAt?: number },
  ...events: MachineEvent[]
): RunSnapshot {
  let s = initialSnapshot(p.machine, {
    runId: 'r',
    input: {},
    startedAt: 0,
    limits: {
      budgetUsd: limits.budgetUsd ?? null,
      maxIterations: limits.maxIterations ?? null,
      deadlineAt: limits.deadlineAt ?? null,
    },
  });
  for (const e of events) s = step(p.machine, s, e);
  return s;
}

describe('run statechart', () => {
  it('calls when the worst case fits the budget, reserving it', () => {
    const s = given({ budgetUsd: 0.01 }, attempt(0.01));
    expect(s.value).toEqual({ a: 'calling' });
    expect(s.context.reservedUsd).toBe(0.01);
    expect(s.context.iterations).toBe(1);
  });

  it('parks on budget when spent + worst case exceeds the cap, and the actual cost replaces the reservation', () => {
    const s = given(
      { budgetUsd: 0.01 },
      attempt(0.004),
      response(0.003, 'invalid'),
      attempt(0.008),
    );
    expect(s.value).toBe('parked');
    expect(s.context.costUsd).toBe(0.003);
    expect(s.context.reservedUsd).toBe(0);
    expect(s.context.parked).toMatchObject({ step: 'a', reason: 'budget' });
  });

  it('parks on the iteration cap, on the deadline, and on an open breaker', () => {
    expect(
      given({ maxIterations: 1 }, attempt(0), response(0, 'invalid'), attempt(0)).context.parked
        ?.reason,
    ).toBe('iterations');
    expect(given({ deadlineAt: 100 }, attempt(0, 100)).context.parked?.reason).toBe('deadline');
    expect(given({ deadlineAt: 100 }, attempt(0, 99)).value).toEqual({ a: 'calling' });
    expect(given({}, attempt(0, 1, 'open')).context.parked?.reason).toBe('breaker');
    expect(given({}, attempt(0, 1, 'half_open')).value).toEqual({ a: 'calling' });
  });

  it('resumes a parked run in the step it parked in, with raised limits', () => {
    const parked = given({ budgetUsd: 0.001 }, attempt(0.01));
    const s = step(p.machine, parked, {
      type: 'RESUME',
      budgetUsd: 1,
      maxIterations: null,
      deadlineAt: null,
    });
    expect(s.value).toEqual({ a: 'ready' });
    expect(s.context.limits.budgetUsd).toBe(1);
    expect(step(p.machine, s, attempt(0.01)).value).toEqual({ a: 'calling' });
  });

  it('kills from any live state, including parked, and ignores events once final', () => {
    for (const s of [given({}), given({}, attempt(0)), given({ budgetUsd: 0 }, attempt(1))]) {
      const k = step(p.machine, s, { type: 'KILL', reason: 'x' });
      expect(statusOf(k)).toBe('killed');
      expect(step(p.machine, k, attempt(0))).toBe(k);
    }
  });

  it('moves on after a skip and records the reason', () => {
    const s = given({}, { type: 'SKIP', step: 'a', reason: 'not needed' });
    expect(s.value).toEqual({ b: 'ready' });
    expect(s.context.skipped).toEqual({ a: 'not needed' });
    expect(s.context.outputs).toEqual({ a: null });
  });

  it('ignores an event the current state does not accept (same snapshot)', () => {
    const s = given({});
    expect(
      step(p.machine, s, {
        type: 'EFFECT_DONE',
        step: 'b',
        key: 'k',
        result: 1,
        replayed: false,
        durationMs: 0,
      }),
    ).toBe(s);
  });
});

describe('initialSnapshot', () => {
  it("equals XState's initialTransition (value, context, status) without its per-call actor", () => {
    const input = {
      runId: 'r',
      input: { q: 1 },
      limits: { budgetUsd: 1, maxIterations: 5, deadlineAt: null },
      startedAt: 42,
      outputs: { before: 'x' },
    };
    const ours = initialSnapshot(p.machine, input);
    const theirs = initialTransition(p.machine, input)[0] as RunSnapshot;
    expect(ours.value).toEqual(theirs.value);
    expect(ours.context).toEqual(theirs.context);
    expect(ours.status).toBe(theirs.status);
    // And it folds on the same way.
    expect(step(p.machine, ours, attempt(0.01)).value).toEqual(
      step(p.machine, theirs, attempt(0.01)).value,
    );
  });
});
