/**
 * A model call lost with its process (issue 15, cost truth): the MODEL_ERROR the resumed run
 * records (`kind: 'lost'`, `unconfirmed`, `costUsd` = the attempt's reservation) is spent money
 * to the fold: it counts toward the run's cost, the step's cost, the budget and the call cap.
 */
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import type { MachineEvent } from '../src/machines/events.js';
import { initialSnapshot, step, type RunSnapshot } from '../src/machines/fold.js';
import { definePipeline, llm } from '../src/machines/pipeline.js';
import { prepare } from '../src/runtime/prepare.js';

const p = prepare(
  definePipeline({
    name: 'lost',
    version: '1',
    input: z.object({}),
    steps: [
      llm({
        name: 'a',
        model: 'claude-haiku-4-5',
        prompt: () => 'x',
        output: z.object({ v: z.number() }),
      }),
    ],
  }),
);

const attempt = (usd: number, n: number, at: number): MachineEvent => ({
  type: 'ATTEMPT',
  step: 'a',
  attempt: n,
  at,
  estimate: { inputTokens: 10, maxTokens: 100, usd },
  breaker: 'closed',
  model: 'claude-haiku-4-5',
});

/** What the driver records for a call its process died in (driver.ts lostCallEvent). */
const lost = (usd: number, n: number, at: number): MachineEvent => ({
  type: 'MODEL_ERROR',
  step: 'a',
  attempt: n,
  requestId: null,
  model: 'claude-haiku-4-5',
  status: null,
  kind: 'lost',
  retryable: true,
  message: 'lost',
  delayMs: 0,
  retryAt: at,
  usage: null,
  costUsd: usd,
  durationMs: 0,
  unconfirmed: true,
});

function given(
  limits: { budgetUsd?: number; maxIterations?: number },
  ...events: MachineEvent[]
): RunSnapshot {
  let s = initialSnapshot(p.machine, {
    runId: 'r',
    input: {},
    startedAt: 0,
    limits: {
      budgetUsd: limits.budgetUsd ?? null,
      maxIterations: limits.maxIterations ?? null,
      deadlineAt: null,
    },
  });
  for (const e of events) s = step(p.machine, s, e);
  return s;
}

/** The lost call, then the backoff timer, then the next attempt. */
const afterLost = (usd: number): MachineEvent[] => [
  attempt(usd, 1, 10),
  lost(usd, 1, 20),
  { type: 'TIMER', step: 'a', at: 20 },
];

describe('a lost (unconfirmed) call in the fold', () => {
  it('is counted at its reservation in the run and step cost, and the reservation is released', () => {
    const s = given({}, attempt(0.004, 1, 10), lost(0.004, 1, 20));
    expect(s.context.costUsd).toBe(0.004);
    expect(s.context.stepCostUsd).toEqual({ a: 0.004 });
    expect(s.context.reservedUsd).toBe(0);
    expect(s.context.iterations).toBe(1);
    expect(s.context.attempts.a).toMatchObject({ calls: 1, transport: 1 });
  });

  it('counts against the budget: the next call parks when lost + worst case exceed the cap', () => {
    const fits = given({ budgetUsd: 0.01 }, ...afterLost(0.004), attempt(0.006, 2, 30));
    expect(fits.value).toEqual({ a: 'calling' });
    const over = given({ budgetUsd: 0.01 }, ...afterLost(0.006), attempt(0.006, 2, 30));
    expect(over.value).toBe('parked');
    expect(over.context.parked).toMatchObject({ reason: 'budget' });
    expect(over.context.parked?.detail).toContain('spent $0.006000');
  });

  it('counts against the call cap: with --max-iterations 1 the retry after it parks', () => {
    const s = given({ maxIterations: 1 }, ...afterLost(0), attempt(0, 2, 30));
    expect(s.value).toBe('parked');
    expect(s.context.parked).toMatchObject({ reason: 'iterations' });
    expect(given({ maxIterations: 2 }, ...afterLost(0), attempt(0, 2, 30)).value).toEqual({
      a: 'calling',
    });
  });
});
