/**
 * Model fallback at the run level, through the real SDK against the fake Claude: the next model
 * on a 529, on retries used up, on an open breaker; every breaker open parks; a run rebuilt from
 * its log mid-fallback goes on with the model the log says.
 */
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { costReport } from '../src/cli/cost.js';
import { replayLine } from '../src/cli/format.js';
import { verifyRun } from '../src/cli/verify.js';
import { DEFAULT_BREAKER } from '../src/machines/breaker.js';
import { foldLog } from '../src/machines/replay.js';
import { definePipeline, llm } from '../src/machines/pipeline.js';
import { Breakers } from '../src/runtime/breakers.js';
import { virtualClock } from '../src/runtime/clock.js';
import { prepare } from '../src/runtime/prepare.js';
import type { FakeAction, FakeRequest } from '../src/testing/index.js';
import { harness, ofType, type Harness } from './helpers/harness.js';

const OPUS = 'claude-opus-4-8';
const SONNET = 'claude-sonnet-4-6';
const ANSWER: FakeAction = { kind: 'json', value: { v: 1 } };
// Every answer bills 1000 input and 80 output tokens; count_tokens answers 1000.
const USAGE = { input_tokens: 1000, output_tokens: 80 };
const MAX_TOKENS = 100;

const pipeline = prepare(
  definePipeline({
    name: 'fallback',
    version: '1',
    input: z.object({}),
    retry: { maxAttempts: 3 },
    steps: [
      llm({
        name: 'ask',
        model: [OPUS, SONNET],
        prompt: () => 'hello',
        output: z.object({ v: z.number() }),
        maxTokens: MAX_TOKENS,
      }),
    ],
  }),
);

/** Answers model calls by the model asked: `byModel[model]`, else a valid answer. */
function byModel(byModel: Record<string, FakeAction>) {
  return (req: FakeRequest): FakeAction =>
    req.path === '/v1/messages' ? (byModel[String(req.body.model)] ?? ANSWER) : ANSWER;
}

/** Model calls (not token counts) the fake received, by model, in order. */
function calls(h: Harness): string[] {
  return h.fake.requests.filter((r) => r.path === '/v1/messages').map((r) => String(r.body.model));
}

/** A reservation by hand: input bound × input price + max_tokens × output price (USD per M). */
const reserved = (inputTokens: number, input: number, output: number): number =>
  Math.round(((inputTokens * input + MAX_TOKENS * output) / 1e6) * 1e9) / 1e9;

const breakerConfig = { ...DEFAULT_BREAKER, consecutive: 2, coolDownMs: 600_000 };

/** Opens `model`'s breaker in the store, as two failed calls by another process would. */
async function openBreaker(h: Harness, model: string, config = breakerConfig): Promise<void> {
  const gate = new Breakers(h.store.control, config);
  for (let i = 0; i < 2; i++) await gate.record(model, false, 'server', Date.now());
  expect((await gate.state(model)).state).toBe('open');
}

describe('model fallback', () => {
  it('a 529 on the first model calls the second at once; the recorded model and cost are the second’s', async () => {
    await using h = await harness({
      usage: USAGE,
      script: byModel({ [OPUS]: { kind: 'status', status: 529, errorType: 'overloaded_error' } }),
    });
    const r = await h.runtime().start(pipeline, { input: {}, runId: 'f-529' });
    expect(r.status).toBe('completed');
    expect(calls(h)).toEqual([OPUS, SONNET]);
    const events = await h.events('f-529');
    const attempts = ofType(events, 'ATTEMPT').map((a) => a.event);
    expect(attempts.map((a) => a.model)).toEqual([OPUS, SONNET]);
    // Each reservation at its own model's price (Opus $5/$25, Sonnet $3/$15 per M tokens).
    const [a0, a1] = attempts.map((a) => a.estimate);
    expect(a0?.usd).toBe(reserved(a0?.inputTokens ?? NaN, 5, 25));
    expect(a1?.usd).toBe(reserved(a1?.inputTokens ?? NaN, 3, 15));
    expect(a0?.maxTokens).toBe(MAX_TOKENS);
    const [error] = ofType(events, 'MODEL_ERROR');
    expect(error?.event).toMatchObject({
      model: OPUS,
      kind: 'overloaded',
      status: 529,
      delayMs: 0,
    });
    expect(ofType(events, 'TIMER')).toHaveLength(0);
    const [answer] = ofType(events, 'MODEL_RESPONSE');
    // Sonnet: 1000 × $3/M + 80 × $15/M = $0.003 + $0.0012 (Opus would be $0.007).
    expect(answer?.event).toMatchObject({ model: SONNET, costUsd: 0.0042, verdict: 'valid' });
    expect(r.costUsd).toBe(0.0042);
    // `replay` names the model of each attempt; `cost --by model` bills each model its own calls.
    const lines = attempts.map((_, i) =>
      replayLine(ofType(events, 'ATTEMPT')[i] as never, null, null),
    );
    expect(lines[0]).toContain(`attempt 1 ${OPUS}, reserve`);
    expect(lines[1]).toContain(`attempt 2 ${SONNET}, reserve`);
    const perModel = (await costReport(h.store, 'model', { fromLog: true })).rows;
    expect(perModel.map((row) => [row.key, row.calls, row.costUsd])).toEqual(
      expect.arrayContaining([
        [OPUS, 1, 0],
        [SONNET, 1, 0.0042],
      ]),
    );
    // `verify` prices each recorded call at the model it used.
    const verified = await verifyRun(h.store, 'f-529', new Map([['fallback', pipeline]]));
    expect(verified).toMatchObject({ ok: true, problems: [] });
  });

  it('500s use up the first model’s attempts (3 by the policy), then the second answers', async () => {
    await using h = await harness({
      usage: USAGE,
      script: byModel({ [OPUS]: { kind: 'status', status: 500, errorType: 'api_error' } }),
    });
    // A fixed jitter: full jitter can draw a 0 ms backoff (1 in 500 for the first), which is
    // not what this test is about.
    const r = await h
      .runtime({ clock: virtualClock(), random: () => 0.5 })
      .start(pipeline, { input: {}, runId: 'f-500' });
    expect(r.status).toBe('completed');
    expect(calls(h)).toEqual([OPUS, OPUS, OPUS, SONNET]);
    const events = await h.events('f-500');
    const errors = ofType(events, 'MODEL_ERROR').map((e) => e.event);
    expect(errors.map((e) => `${e.model}:${e.kind}`)).toEqual(Array(3).fill(`${OPUS}:server`));
    // Two backoffs on Opus, then the next model at once.
    expect(errors.map((e) => e.delayMs > 0)).toEqual([true, true, false]);
    expect(ofType(events, 'TIMER')).toHaveLength(2);
    expect(ofType(events, 'MODEL_RESPONSE')[0]?.event).toMatchObject({
      model: SONNET,
      costUsd: 0.0042,
    });
  });

  it('500s on every model: each gets its attempts, then the step fails as with one model', async () => {
    await using h = await harness({
      usage: USAGE,
      script: () => ({ kind: 'status', status: 500, errorType: 'api_error' }),
    });
    const r = await h
      .runtime({ clock: virtualClock() })
      .start(pipeline, { input: {}, runId: 'f-all' });
    expect(r.status).toBe('failed');
    expect(r.error).toMatchObject({ step: 'ask', kind: 'server', status: 500 });
    expect(calls(h)).toEqual([OPUS, OPUS, OPUS, SONNET, SONNET, SONNET]);
  });

  it('the first model’s breaker open: the second is called and the first never is', async () => {
    await using h = await harness({ usage: USAGE });
    await openBreaker(h, OPUS);
    const r = await h
      .runtime({ breakerConfig, autoResume: false })
      .start(pipeline, { input: {}, runId: 'f-open' });
    expect(r.status).toBe('completed');
    expect(calls(h)).toEqual([SONNET]);
    const [attempt] = ofType(await h.events('f-open'), 'ATTEMPT');
    expect(attempt?.event).toMatchObject({ model: SONNET, breaker: 'closed' });
    expect(attempt?.event.estimate.usd).toBe(
      reserved(attempt?.event.estimate.inputTokens ?? NaN, 3, 15),
    );
  });

  it('every breaker open: the run parks on the breaker with no call made', async () => {
    await using h = await harness({ usage: USAGE });
    await openBreaker(h, OPUS);
    await openBreaker(h, SONNET);
    const r = await h
      .runtime({ breakerConfig, autoResume: false })
      .start(pipeline, { input: {}, runId: 'f-park' });
    expect(r.status).toBe('parked');
    expect(r.parked).toEqual({
      step: 'ask',
      reason: 'breaker',
      detail: `the circuit breakers of all its models are open: ${OPUS}, ${SONNET}`,
    });
    expect(calls(h)).toEqual([]);
    const attempts = ofType(await h.events('f-park'), 'ATTEMPT').map((a) => a.event);
    expect(attempts.map((a) => `${a.model}:${a.breaker}`)).toEqual([`${OPUS}:open`]);
  });

  it('every breaker open: the parked run resumes by itself after the cool-down; a 529 on the first probe falls to the second', async () => {
    await using h = await harness({
      usage: USAGE,
      script: byModel({ [OPUS]: { kind: 'status', status: 529, errorType: 'overloaded_error' } }),
    });
    const quick = { ...breakerConfig, coolDownMs: 500 };
    await openBreaker(h, OPUS, quick);
    await openBreaker(h, SONNET, quick);
    const rt = h.runtime({ breakerConfig: quick, autoResume: { perSecond: 50, pollMs: 50 } });
    const r = await rt.start(pipeline, { input: {}, runId: 'f-auto' });
    expect(r.status).toBe('parked');
    expect(calls(h)).toEqual([]);
    // No command: the runtime that parked it resumes it once Opus's breaker lets a probe through.
    const deadline = Date.now() + 60_000;
    while ((await h.store.log.getRun('f-auto'))?.status !== 'completed') {
      if (Date.now() > deadline) throw new Error('the parked run was not resumed');
      await new Promise((done) => setTimeout(done, 50));
    }
    expect(calls(h)).toEqual([OPUS, SONNET]);
    const attempts = ofType(await h.events('f-auto'), 'ATTEMPT').map((a) => a.event);
    expect(attempts.map((a) => `${a.model}:${a.breaker}`)).toEqual([
      `${OPUS}:open`,
      `${OPUS}:half_open`,
      `${SONNET}:half_open`,
    ]);
  });

  it('a run stopped after the 529 and rebuilt from its log calls the second model, not the first', async () => {
    await using h = await harness({
      usage: USAGE,
      script: byModel({ [OPUS]: { kind: 'status', status: 529, errorType: 'overloaded_error' } }),
    });
    const ac = new AbortController();
    const first = h.runtime({
      hooks: { afterAppend: (_r, _s, type) => type === 'MODEL_ERROR' && ac.abort() },
    });
    const r1 = await first.start(pipeline, { input: {}, runId: 'f-crash', signal: ac.signal });
    expect(r1).toMatchObject({ status: 'running', stopped: 'aborted' });
    // The fold of the log alone says the step has moved on to the second model.
    const folded = foldLog(pipeline.machine, pipeline.hash, 'f-crash', await h.events('f-crash'));
    expect(folded.snapshot.context.fallback?.ask).toMatchObject({ floor: 1, used: 1 });
    const r2 = await h.runtime().drive(pipeline, 'f-crash');
    expect(r2.status).toBe('completed');
    expect(calls(h)).toEqual([OPUS, SONNET]);
  });

  it('a run stopped during its call to the second model resumes on the second model', async () => {
    await using h = await harness({
      usage: USAGE,
      script: byModel({
        [OPUS]: { kind: 'status', status: 529, errorType: 'overloaded_error' },
        // Slow enough that the stop lands while the call is in flight.
        [SONNET]: { kind: 'delay', ms: 300, then: ANSWER },
      }),
    });
    const ac = new AbortController();
    let attempts = 0;
    const first = h.runtime({
      hooks: {
        afterAppend: (_r, _s, type) => type === 'ATTEMPT' && ++attempts === 2 && ac.abort(),
      },
    });
    const r1 = await first.start(pipeline, { input: {}, runId: 'f-mid', signal: ac.signal });
    expect(r1).toMatchObject({ status: 'running', stopped: 'aborted' });
    const r2 = await h.runtime().drive(pipeline, 'f-mid');
    expect(r2.status).toBe('completed');
    const events = await h.events('f-mid');
    // The lost call is recorded against the model it went to, and the retry goes there too.
    const lost = ofType(events, 'MODEL_ERROR').find((e) => e.event.kind === 'lost');
    const sonnetAttempt = ofType(events, 'ATTEMPT')[1]?.event;
    expect(lost?.event).toMatchObject({
      model: SONNET,
      unconfirmed: true,
      costUsd: sonnetAttempt?.estimate.usd,
    });
    expect(sonnetAttempt?.estimate.usd).toBe(
      reserved(sonnetAttempt?.estimate.inputTokens ?? NaN, 3, 15),
    );
    expect(ofType(events, 'ATTEMPT').map((a) => a.event.model)).toEqual([OPUS, SONNET, SONNET]);
    expect(calls(h).filter((m) => m === OPUS)).toHaveLength(1);
    expect(ofType(events, 'MODEL_RESPONSE')[0]?.event.model).toBe(SONNET);
  });
});
