/**
 * Model fallback in the pure core: the choice rule, the machine folding a log of a fallback step
 * (given / when / then), the definition checks, and one-model machines unchanged.
 */
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { isUsageError } from '../src/errors.js';
import { agent, tool } from '../src/machines/agent.js';
import type { MachineEvent } from '../src/machines/events.js';
import { decideAfterError, type FallbackDecision } from '../src/machines/fallback.js';
import { initialSnapshot, step, type RunSnapshot } from '../src/machines/fold.js';
import { definePipeline, llm, type LlmStepOptions } from '../src/machines/pipeline.js';
import { chooseModel } from '../src/runtime/modelChoice.js';
import { prepare } from '../src/runtime/prepare.js';

const OPUS = 'claude-opus-4-8';
const SONNET = 'claude-sonnet-4-6';
const HAIKU = 'claude-haiku-4-5';

function define(model: LlmStepOptions<unknown, z.ZodType>['model'], extra: object = {}) {
  return definePipeline({
    name: 'fb',
    version: '1',
    input: z.object({}),
    retry: { maxAttempts: 2 },
    steps: [
      llm({ name: 'ask', model, prompt: () => 'x', output: z.object({ v: z.number() }), ...extra }),
    ],
  });
}

const three = prepare(define([OPUS, SONNET, HAIKU]));

const attempt = (model: string, breaker: 'closed' | 'open' = 'closed'): MachineEvent => ({
  type: 'ATTEMPT',
  step: 'ask',
  attempt: 1,
  at: 10,
  estimate: { inputTokens: 10, maxTokens: 100, usd: 0.001 },
  breaker,
  model,
});
const failure = (model: string, kind: string, status: number | null): MachineEvent => ({
  type: 'MODEL_ERROR',
  step: 'ask',
  attempt: 1,
  requestId: null,
  model,
  status,
  kind,
  retryable: kind !== 'bad_request',
  message: kind,
  delayMs: 0,
  retryAt: 10,
  usage: null,
  costUsd: 0,
  durationMs: 1,
});
const overloaded = (m: string) => failure(m, 'overloaded', 529);
const server = (m: string) => failure(m, 'server', 500);

function given(...events: MachineEvent[]): RunSnapshot {
  let s = initialSnapshot(three.machine, {
    runId: 'r',
    input: {},
    startedAt: 0,
    limits: { budgetUsd: null, maxIterations: null, deadlineAt: null },
  });
  for (const e of events) s = step(three.machine, s, e);
  return s;
}

describe('the fallback rule', () => {
  const at = (used: number, failures: number[]) => ({ floor: used, used, failures });
  const cases: Array<[string, ReturnType<typeof at>, string, boolean, FallbackDecision]> = [
    ['overload with a next model: next at once', at(0, [1]), 'overloaded', true, 'next'],
    ['overload on the last model: retried', at(1, [1, 1]), 'overloaded', true, 'retry'],
    ['a 500 with attempts left: retried', at(0, [1]), 'server', true, 'retry'],
    ['a 500 with attempts used up: next', at(0, [2]), 'server', true, 'next'],
    ['attempts used up on the last model: fail', at(1, [2, 2]), 'server', true, 'fail'],
    ['not retryable: fail, never the next model', at(0, [1]), 'bad_request', false, 'fail'],
  ];
  it.each(cases)('%s', (_name, state, kind, retryable, want) => {
    expect(decideAfterError(state, { kind, retryable }, 2, 2)).toBe(want);
  });

  it('the driver takes the first model at or after the floor whose breaker lets a call through', async () => {
    const asked: string[] = [];
    const views: Record<string, 'open' | 'closed' | 'half_open'> = {
      [OPUS]: 'open',
      [SONNET]: 'half_open',
      [HAIKU]: 'closed',
    };
    const acquire = (m: string) => (asked.push(m), Promise.resolve(views[m] ?? 'closed'));
    expect(await chooseModel([OPUS, SONNET, HAIKU], 0, acquire)).toEqual({
      model: SONNET,
      breaker: 'half_open',
    });
    // Haiku's breaker was not asked: no probe taken and left unused.
    expect(asked).toEqual([OPUS, SONNET]);
    asked.length = 0;
    expect(await chooseModel([OPUS, SONNET, HAIKU], 2, acquire)).toEqual({
      model: HAIKU,
      breaker: 'closed',
    });
    expect(asked).toEqual([HAIKU]);
    views[HAIKU] = 'open';
    views[SONNET] = 'open';
    expect(await chooseModel([OPUS, SONNET, HAIKU], 1, acquire)).toEqual({
      model: SONNET,
      breaker: 'open',
    });
  });
});

describe('a fallback step folded from its log', () => {
  it('an overload moves to the next model at once (no backoff), recorded in the context', () => {
    const s = given(attempt(OPUS), overloaded(OPUS));
    expect(s.value).toEqual({ ask: 'ready' });
    expect(s.context.fallback?.ask).toEqual({ floor: 1, used: 1, failures: [1] });
    expect(s.context.waitUntil).toBeNull();
  });

  it('a 500 is retried on the same model until its attempts are used up, then the next model', () => {
    expect(given(attempt(OPUS), server(OPUS)).value).toEqual({ ask: 'backoff' });
    const s = given(
      attempt(OPUS),
      server(OPUS),
      { type: 'TIMER', step: 'ask', at: 10 },
      attempt(OPUS),
      server(OPUS),
    );
    expect(s.value).toEqual({ ask: 'ready' });
    expect(s.context.fallback?.ask).toEqual({ floor: 1, used: 1, failures: [2] });
  });

  it('fails when the last model used up its attempts, and on an error that is not retryable', () => {
    const timer: MachineEvent = { type: 'TIMER', step: 'ask', at: 10 };
    const s = given(
      attempt(OPUS),
      overloaded(OPUS),
      attempt(SONNET),
      overloaded(SONNET),
      attempt(HAIKU),
      server(HAIKU),
      timer,
      attempt(HAIKU),
      server(HAIKU),
    );
    expect(s.value).toBe('failed');
    expect(s.context.fallback?.ask).toEqual({ floor: 2, used: 2, failures: [1, 1, 2] });
    expect(given(attempt(OPUS), failure(OPUS, 'bad_request', 400)).value).toBe('failed');
  });

  it('an attempt on a later model (earlier breakers open) is recorded; all open parks', () => {
    const s = given(attempt(SONNET), server(SONNET));
    expect(s.context.fallback?.ask).toEqual({ floor: 0, used: 1, failures: [0, 1] });
    const parked = given(attempt(OPUS, 'open'));
    expect(parked.value).toBe('parked');
    expect(parked.context.parked?.reason).toBe('breaker');
  });
});

describe('model lists at definition', () => {
  const fails = (f: () => unknown, ...parts: string[]) => {
    let err: unknown;
    try {
      f();
    } catch (e) {
      err = e;
    }
    expect(isUsageError(err)).toBe(true);
    for (const p of parts) expect((err as Error).message).toContain(p);
  };

  it('refuses an empty list, a duplicate, an unpriced model and a step price with several models', () => {
    fails(() => define([]), "step 'ask'", 'empty list', 'at least one model id');
    fails(() => define([OPUS, SONNET, OPUS]), `'${OPUS}' twice`);
    fails(() => define([OPUS, 'claude-unknown-9']), "'claude-unknown-9' has no price", 'prices');
    fails(
      () =>
        define([OPUS, SONNET], {
          price: { input: 1, cacheWrite5m: 1, cacheWrite1h: 1, cacheRead: 1, output: 1 },
        }),
      'remove it',
      'prices',
    );
    fails(() => define([OPUS, 3 as unknown as string]), 'model id string');
  });

  it('accepts an unlisted model priced in the pipeline prices', () => {
    const price = { input: 1, cacheWrite5m: 1.25, cacheWrite1h: 2, cacheRead: 0.1, output: 5 };
    const p = definePipeline({
      name: 'fb',
      version: '1',
      input: z.object({}),
      prices: { 'claude-new-1': price },
      steps: [
        llm({
          name: 'ask',
          model: [OPUS, 'claude-new-1'],
          prompt: () => 'x',
          output: z.object({}),
        }),
      ],
    });
    const prepared = prepare(p);
    const s = p.steps[0] as Parameters<typeof prepared.priceOf>[0];
    expect(prepared.priceOf(s, 'claude-new-1')).toEqual(price);
    expect(prepared.priceOf(s, OPUS).input).toBe(5);
    expect(prepared.priceOf(s).input).toBe(5);
  });

  it('an agent step takes one model: a list is a definition error naming llm()', () => {
    const lookup = tool({ description: 'd', input: z.object({}), run: () => 1 });
    fails(
      () =>
        definePipeline({
          name: 'ag',
          version: '1',
          input: z.object({}),
          steps: [
            agent({
              name: 'help',
              model: [OPUS, SONNET] as unknown as string,
              prompt: () => 'x',
              tools: { lookup },
              output: z.object({}),
            }),
          ],
        }),
      "agent 'help'",
      'llm() steps only',
    );
  });
});

describe('machine hashes', () => {
  it('a one-model step compiles to the same machine as before; a list of one is the same; fallback differs', () => {
    const one = prepare(define(SONNET));
    expect(prepare(define([SONNET])).hash).toBe(one.hash);
    expect(three.hash).not.toBe(one.hash);
    // The one-model graph has no fallback transitions at all.
    const names = JSON.stringify(one.graph);
    for (const n of ['useModel', 'countModelFailure', 'fallbackRetry', 'fallbackNext', 'fallBack'])
      expect(names).not.toContain(n);
  });
});
