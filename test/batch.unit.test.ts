/**
 * The pure parts of Message Batches (issue 15): the batch price, the item's custom_id, the poll
 * schedule, the pipeline default, and the fold of BATCH_SUBMITTED (calling → batched, the batch
 * remembered in the context; a direct step's machine has no such transition).
 */
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import type { MachineEvent } from '../src/machines/events.js';
import { initialSnapshot, phaseOf, step, type RunSnapshot } from '../src/machines/fold.js';
import { definePipeline, llm } from '../src/machines/pipeline.js';
import {
  batchCustomId,
  batchPrice,
  CUSTOM_ID_PATTERN,
  pollDelayMs,
  pollsBefore,
} from '../src/model/batch.js';
import { costUsd } from '../src/model/cost.js';
import { priceFor } from '../src/model/prices.js';
import { batchConfigFromEnv } from '../src/cli/batchConfig.js';
import { prepare } from '../src/runtime/prepare.js';
import { fakeScriptFromJson } from '../src/testing/fakeScript.js';

const scorer = (opts: { pipeline?: boolean; step?: boolean } = {}) =>
  definePipeline({
    name: 'scorer',
    version: '1',
    input: z.object({}),
    ...(opts.pipeline !== undefined ? { batch: opts.pipeline } : {}),
    steps: [
      llm({
        name: 'a',
        model: 'claude-opus-4-8',
        prompt: () => 'x',
        output: z.object({ v: z.number() }),
        ...(opts.step !== undefined ? { batch: opts.step } : {}),
      }),
    ],
  });

describe('batch price', () => {
  it('halves input, output and the cache prices (cache multipliers apply on top)', () => {
    // Opus 4.8: $5 in, $6.25 / $10 cache writes, $0.5 cache reads, $25 out per million.
    expect(batchPrice(priceFor('claude-opus-4-8'))).toEqual({
      input: 2.5,
      cacheWrite5m: 3.125,
      cacheWrite1h: 5,
      cacheRead: 0.25,
      output: 12.5,
    });
    const usage = {
      inputTokens: 2_000,
      outputTokens: 400,
      cacheReadTokens: 10_000,
      cacheWrite5mTokens: 0,
      cacheWrite1hTokens: 1_000,
    };
    // By hand: 2000×2.5 + 400×12.5 + 10000×0.25 + 1000×5 = 17,500 micro-USD.
    expect(costUsd(usage, batchPrice(priceFor('claude-opus-4-8')))).toBe(0.0175);
  });

  it('is what a batch step is priced at; a direct step keeps the table price', () => {
    const batch = prepare(scorer({ step: true }));
    const direct = prepare(scorer());
    const s = (p: typeof batch) => p.pipeline.steps[0] as Parameters<typeof p.priceOf>[0];
    expect(batch.priceOf(s(batch)).output).toBe(12.5);
    expect(direct.priceOf(s(direct)).output).toBe(25);
  });
});

describe('custom_id', () => {
  it('is <runId>-<step>-<attempt> when that fits the API rule', () => {
    expect(batchCustomId('01JD0ABC', 'score', 1)).toBe('01JD0ABC-score-1');
    expect(batchCustomId('01JD0ABC', 'score', 2)).not.toBe(batchCustomId('01JD0ABC', 'score', 1));
  });

  it('is a stable hash within 64 allowed characters for a long run id', () => {
    const long = 'r'.repeat(128);
    const id = batchCustomId(long, 'score', 3);
    expect(id).toMatch(CUSTOM_ID_PATTERN);
    expect(id).toHaveLength(51);
    expect(batchCustomId(long, 'score', 3)).toBe(id);
    expect(batchCustomId(long, 'score', 4)).not.toBe(id);
    expect(batchCustomId(long, 'scorf', 3)).not.toBe(id);
  });
});

describe('poll schedule', () => {
  it('doubles from the first delay and stays at the cap', () => {
    const s = { minMs: 5_000, maxMs: 60_000 };
    expect([1, 2, 3, 4, 5, 6, 100, 5_000].map((n) => pollDelayMs(n, s))).toEqual([
      5_000, 10_000, 20_000, 40_000, 60_000, 60_000, 60_000, 60_000,
    ]);
    expect(pollDelayMs(1)).toBe(5_000);
  });

  it('counts the polls made so far from the time since the batch was sent (polls at 5, 15, 35, 75, 135 s…)', () => {
    const s = { minMs: 5_000, maxMs: 60_000 };
    const at = [0, 4_999, 5_000, 14_999, 15_000, 35_000, 74_999, 75_000, 134_999, 135_000, 195_000];
    expect(at.map((ms) => pollsBefore(ms, s))).toEqual([0, 0, 1, 1, 2, 3, 3, 4, 4, 5, 6]);
    // A day of polls at the cap is a division, and a schedule without delays is no position.
    expect(pollsBefore(75_000 + 60_000 * 1_440, s)).toBe(4 + 1_440);
    expect(pollsBefore(1_000, { minMs: 0, maxMs: 0 })).toBe(0);
  });
});

describe('batch option', () => {
  it('a pipeline default reaches steps that do not set their own', () => {
    expect((scorer({ pipeline: true }).steps[0] as { batch?: boolean }).batch).toBe(true);
    expect((scorer({ pipeline: true, step: false }).steps[0] as { batch?: boolean }).batch).toBe(
      false,
    );
  });

  it('a direct step has no batched state; `batch: false` compiles like no option at all', () => {
    const direct = prepare(scorer());
    expect(prepare(scorer({ step: false })).hash).toBe(direct.hash);
    expect(prepare(scorer({ pipeline: false })).hash).toBe(direct.hash);
    expect(direct.graph.nodes.map((n) => n.id)).not.toContain('run.a.batched');
    expect(direct.graph.edges.some((e) => e.event === 'BATCH_SUBMITTED')).toBe(false);
    const batch = prepare(scorer({ step: true }));
    expect(batch.hash).not.toBe(direct.hash);
    expect(batch.graph.nodes.map((n) => n.id)).toContain('run.a.batched');
  });
});

describe('fold of BATCH_SUBMITTED', () => {
  const p = prepare(scorer({ step: true }));
  const fold = (events: MachineEvent[]): RunSnapshot =>
    events.reduce(
      (s, e) => step(p.machine, s, e),
      initialSnapshot(p.machine, {
        runId: 'r',
        input: {},
        limits: { budgetUsd: 1, maxIterations: 5, deadlineAt: null },
        startedAt: 0,
      }),
    );
  const attempt: MachineEvent = {
    type: 'ATTEMPT',
    step: 'a',
    attempt: 1,
    at: 1,
    estimate: { inputTokens: 10, maxTokens: 100, usd: 0.01 },
    breaker: 'closed',
    model: 'claude-opus-4-8',
  };
  const submitted: MachineEvent = {
    type: 'BATCH_SUBMITTED',
    step: 'a',
    attempt: 1,
    batchId: 'msgbatch_1',
    customId: 'r-a-1',
    at: 2,
  };

  it('moves calling to batched and remembers the batch; the reservation stays', () => {
    const s = fold([attempt, submitted]);
    expect(phaseOf(s)).toEqual({ step: 'a', phase: 'batched' });
    expect(s.context.batch).toEqual({
      step: 'a',
      attempt: 1,
      batchId: 'msgbatch_1',
      customId: 'r-a-1',
      at: 2,
    });
    expect(s.context.reservedUsd).toBe(0.01);
    expect(s.context.iterations).toBe(1);
  });

  it('takes the answer in batched like in calling', () => {
    const s = fold([
      attempt,
      submitted,
      {
        type: 'MODEL_RESPONSE',
        step: 'a',
        attempt: 1,
        requestId: 'msg_1',
        model: 'claude-opus-4-8',
        stopReason: 'end_turn',
        usage: {
          inputTokens: 100,
          outputTokens: 10,
          cacheReadTokens: 0,
          cacheWrite5mTokens: 0,
          cacheWrite1hTokens: 0,
        },
        costUsd: 0.000375,
        verdict: 'valid',
        output: { v: 1 },
        issues: [],
        text: null,
        durationMs: 5,
      },
    ]);
    expect(s.value).toBe('completed');
    expect(s.context.costUsd).toBe(0.000375);
    expect(s.context.reservedUsd).toBe(0);
  });

  it('is ignored by a direct step (no transition: it stays calling)', () => {
    const direct = prepare(scorer());
    const s0 = initialSnapshot(direct.machine, {
      runId: 'r',
      input: {},
      limits: { budgetUsd: 1, maxIterations: 5, deadlineAt: null },
      startedAt: 0,
    });
    const s = [attempt, submitted].reduce((x, e) => step(direct.machine, x, e), s0);
    expect(phaseOf(s)).toEqual({ step: 'a', phase: 'calling' });
    expect(s.context.batch).toBeUndefined();
  });
});

describe('fake Claude JSON script', () => {
  it('takes how many polls a batch lasts, and refuses a bad value naming the field', () => {
    expect(fakeScriptFromJson({ answers: [], batches: { endAfterPolls: 3 } }).batches).toEqual({
      endAfterPolls: 3,
    });
    expect(() => fakeScriptFromJson({ batches: { endAfterPolls: 0 } })).toThrow(
      /batches\.endAfterPolls/,
    );
  });
});

describe('PLUMBLINE_BATCH', () => {
  it('sets the CLI batcher, and says the fix for a bad value', () => {
    expect(batchConfigFromEnv(undefined)).toEqual({});
    expect(batchConfigFromEnv('{"maxSize":500,"poll":{"minMs":10000}}')).toEqual({
      maxSize: 500,
      poll: { minMs: 10_000 },
    });
    expect(() => batchConfigFromEnv('{maxSize')).toThrow(/not JSON: use e\.g\./);
    expect(() => batchConfigFromEnv('{"maxSize":0}')).toThrow(/PLUMBLINE_BATCH: maxSize/);
    expect(() => batchConfigFromEnv('{"size":5}')).toThrow(/PLUMBLINE_BATCH/);
  });
});
