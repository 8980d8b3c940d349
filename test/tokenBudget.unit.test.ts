/**
 * The limits guard with token caps (pure): used so far + reserved + this call's bound > cap
 * parks, with the detail naming the cap; lost calls count at their reservation.
 */
import { describe, expect, it } from 'vitest';
import { actions } from '../src/machines/actions.js';
import { initialContext, type RunContext, type RunLimits } from '../src/machines/context.js';
import type { MachineEvent } from '../src/machines/events.js';
import { budgetCrossed, overBudget } from '../src/machines/guards.js';

const noLimits: RunLimits = { budgetUsd: null, maxIterations: null, deadlineAt: null };

function ctx(limits: Partial<RunLimits>, over: Partial<RunContext> = {}): RunContext {
  return {
    ...initialContext({
      runId: 'r',
      input: {},
      limits: { ...noLimits, ...limits },
      startedAt: 0,
    }),
    pending: {
      step: 's',
      attempt: 1,
      at: 0,
      estimateUsd: 0.001,
      inputTokens: 100,
      maxTokens: 50,
      breaker: 'closed',
    },
    ...over,
  };
}
const judge = (c: RunContext): boolean =>
  overBudget({ context: c, event: { type: 'KILL', reason: '' } as MachineEvent });

describe('overBudget with token caps', () => {
  it('lets a call through when used + reserved + its bound fits exactly', () => {
    expect(judge(ctx({ maxInputTokens: 100, maxOutputTokens: 50 }))).toBe(false);
    expect(
      judge(
        ctx(
          { maxInputTokens: 400 },
          { inputTokens: 250, reservedTokens: { input: 50, output: 0 } },
        ),
      ),
    ).toBe(false);
  });

  it('refuses the call whose input bound would cross maxInputTokens', () => {
    const c = ctx(
      { maxInputTokens: 399 },
      { inputTokens: 250, reservedTokens: { input: 50, output: 0 } },
    );
    expect(judge(c)).toBe(true);
    expect(budgetCrossed(c)).toBe('inputTokens');
  });

  it('refuses the call whose max_tokens would cross maxOutputTokens', () => {
    const c = ctx({ maxOutputTokens: 120 }, { outputTokens: 71 });
    expect(budgetCrossed(c)).toBe('outputTokens');
  });

  it('reads contexts and limits from before token caps as uncapped', () => {
    const old = ctx({});
    delete old.inputTokens;
    delete old.reservedTokens;
    delete old.limits.maxInputTokens;
    expect(judge(old)).toBe(false);
    expect(budgetCrossed(ctx({ budgetUsd: 0.0005 }))).toBe('usd');
  });

  it('parks with a detail naming the token cap', () => {
    const c = ctx({ maxOutputTokens: 120 }, { outputTokens: 71 });
    const parked = actions.park as unknown as {
      assignment: (
        a: { context: RunContext; event: MachineEvent },
        p: unknown,
      ) => Partial<RunContext>;
    };
    const out = parked.assignment(
      { context: c, event: { type: 'KILL', reason: '' } },
      { reason: 'budget' },
    );
    expect(out.parked?.detail).toBe(
      "maxOutputTokens: used 71 output tokens + next call's max_tokens 50 > cap 120",
    );
  });

  it('counts a lost call at its reservation and a response at its usage', () => {
    const errAssign = (
      actions.recordModelError as unknown as {
        assignment: (
          a: { context: RunContext; event: MachineEvent },
          p: unknown,
        ) => Partial<RunContext>;
      }
    ).assignment;
    const c = ctx(
      {},
      { inputTokens: 10, outputTokens: 5, reservedTokens: { input: 100, output: 50 } },
    );
    const lost: MachineEvent = {
      type: 'MODEL_ERROR',
      step: 's',
      attempt: 1,
      requestId: null,
      model: 'm',
      status: null,
      kind: 'lost',
      retryable: true,
      message: '',
      delayMs: 0,
      retryAt: 0,
      usage: null,
      costUsd: 0.001,
      durationMs: 0,
      unconfirmed: true,
    };
    expect(errAssign({ context: c, event: lost }, { step: 's' })).toMatchObject({
      inputTokens: 110,
      outputTokens: 55,
      reservedTokens: { input: 0, output: 0 },
    });
    const failed: MachineEvent = { ...lost, kind: 'server', status: 500, unconfirmed: undefined };
    expect(errAssign({ context: c, event: failed }, { step: 's' })).toMatchObject({
      inputTokens: 10,
      outputTokens: 5,
    });
  });
});
