/**
 * The Claude boundary at the run level: the real SDK against the fake Claude, one test per fault
 * class — the run's decision, the requests the server saw, the delays honoured (accelerated
 * clock), and the cost recorded.
 */
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { definePipeline, llm } from '../src/machines/pipeline.js';
import { costUsd } from '../src/model/cost.js';
import { priceFor } from '../src/model/prices.js';
import { virtualClock } from '../src/runtime/clock.js';
import { prepare } from '../src/runtime/prepare.js';
import type { FakeAction } from '../src/testing/index.js';
import { harness, ofType } from './helpers/harness.js';

const Out = z.object({ title: z.string().min(3), score: z.number().int().min(0).max(10) });
const good = { title: 'a good title', score: 7 };
const price = priceFor('claude-sonnet-4-6');
const perCall = costUsd(
  {
    inputTokens: 100,
    outputTokens: 50,
    cacheReadTokens: 0,
    cacheWrite5mTokens: 0,
    cacheWrite1hTokens: 0,
  },
  price,
);

function pipelineWith(
  step: Partial<Parameters<typeof llm>[0]> = {},
  retry = { baseMs: 100, maxBackoffMs: 400 },
) {
  return prepare(
    definePipeline({
      name: 'boundary',
      version: '1',
      input: z.object({}),
      retry,
      steps: [
        llm({
          name: 'ask',
          model: 'claude-sonnet-4-6',
          prompt: () => 'give me a title',
          output: Out,
          ...step,
        }),
      ],
    }),
  );
}

async function runScript(actions: FakeAction[], step: Partial<Parameters<typeof llm>[0]> = {}) {
  const h = await harness({ script: [...actions, { kind: 'json', value: good }] });
  try {
    const rt = h.runtime({ clock: virtualClock(), killPollMs: 50 });
    const t0 = Date.now();
    const r = await rt.start(pipelineWith(step), { input: {} });
    const wallMs = Date.now() - t0;
    return {
      r,
      events: await h.events(r.runId),
      requests: h.fake.count,
      bodies: h.fake.requests.map((q) => q.body),
      wallMs,
    };
  } finally {
    await h.close();
  }
}

describe('model boundary, run level', () => {
  it('retries a 429 after its retry-after and bills nothing for it', async () => {
    const { r, events, requests } = await runScript([
      { kind: 'status', status: 429, headers: { 'retry-after': '2' } },
    ]);
    expect(r.status).toBe('completed');
    expect(requests).toBe(2);
    const [err] = ofType(events, 'MODEL_ERROR');
    expect(err?.event).toMatchObject({
      status: 429,
      kind: 'rate_limit',
      retryable: true,
      delayMs: 2000,
    });
    const [timer] = ofType(events, 'TIMER');
    expect((timer?.event.at ?? 0) - (err?.event.retryAt ?? 0)).toBeGreaterThanOrEqual(0);
    // Virtual clock: time moves only by the sleeps, so the wait is exactly the delay.
    expect((timer?.event.at ?? 0) - (err?.at ?? 0)).toBe(2000);
    expect(r.costUsd).toBe(perCall);
  });

  it('waits the 60 s cap, not 61 s, for retry-after: 61', async () => {
    const { r, events, requests, wallMs } = await runScript([
      { kind: 'status', status: 529, headers: { 'retry-after': '61' } },
    ]);
    expect(r.status).toBe('completed');
    expect(requests).toBe(2);
    const [err] = ofType(events, 'MODEL_ERROR');
    expect(err?.event.delayMs).toBe(60_000);
    const waited = (ofType(events, 'TIMER')[0]?.event.at ?? 0) - (err?.at ?? 0);
    expect(waited).toBe(60_000);
    // The 60 s Retry-After went by on the virtual clock: far less real time than the wait itself.
    expect(wallMs).toBeLessThan(50_000);
  });

  it.each([
    ['529 overloaded', { kind: 'status', status: 529 } as FakeAction, 'overloaded'],
    ['500 server error', { kind: 'status', status: 500 } as FakeAction, 'server'],
    ['503', { kind: 'status', status: 503 } as FakeAction, 'server'],
    ['dropped connection', { kind: 'drop' } as FakeAction, 'connection'],
  ])('retries a %s with backoff and jitter', async (_name, action, kind) => {
    const { r, events, requests } = await runScript([action, action]);
    expect(r.status).toBe('completed');
    expect(requests).toBe(3);
    const errs = ofType(events, 'MODEL_ERROR');
    expect(errs.map((e) => e.event.kind)).toEqual([kind, kind]);
    expect(errs.every((e) => e.event.retryable)).toBe(true);
    // Full jitter: delay n lies in [0, min(cap, base·2^(n-1))).
    expect(errs[0]?.event.delayMs).toBeLessThan(100);
    expect(errs[1]?.event.delayMs).toBeLessThan(200);
  });

  it('retries a timeout', async () => {
    const { r, events, requests } = await runScript(
      [{ kind: 'delay', ms: 3000, then: { kind: 'json', value: good } }],
      { timeoutMs: 300 },
    );
    expect(r.status).toBe('completed');
    expect(requests).toBe(2);
    expect(ofType(events, 'MODEL_ERROR')[0]?.event).toMatchObject({
      kind: 'timeout',
      retryable: true,
    });
  });

  it("sends a 400 exactly once and fails the step with the API's message", async () => {
    const { r, requests } = await runScript([
      { kind: 'status', status: 400, message: 'max_tokens: must be at most 64000' },
    ]);
    expect(requests).toBe(1);
    expect(r.status).toBe('failed');
    expect(r.error).toMatchObject({ step: 'ask', kind: 'bad_request', status: 400 });
    expect(r.error?.message).toContain('max_tokens: must be at most 64000');
  });

  it('does not retry a spend-limit 429', async () => {
    const { r, requests } = await runScript([
      {
        kind: 'status',
        status: 429,
        errorCode: 'enforced_spend_limit_reached',
        message: 'spend limit reached',
      },
    ]);
    expect(requests).toBe(1);
    expect(r.status).toBe('failed');
    expect(r.error?.kind).toBe('spend_limit');
  });

  it('gives up after the transport-attempt limit', async () => {
    const overloaded: FakeAction = { kind: 'status', status: 529 };
    const { r, requests } = await runScript([
      overloaded,
      overloaded,
      overloaded,
      overloaded,
      overloaded,
    ]);
    expect(requests).toBe(4);
    expect(r.status).toBe('failed');
    expect(r.error?.kind).toBe('overloaded');
  });

  it.each([
    ['not JSON', { kind: 'text', text: 'I think the title is "Foo"' } as FakeAction, /not JSON/],
    [
      'prose around JSON',
      { kind: 'text', text: 'Here you go: {"title":"abc","score":1}' } as FakeAction,
      /text around the JSON/,
    ],
    ['a missing field', { kind: 'json', value: { title: 'abcd' } } as FakeAction, /score/],
    [
      'a failed refinement',
      { kind: 'json', value: { title: 'ab', score: 11 } } as FakeAction,
      /title.*\n?.*|score/,
    ],
    ['an empty answer', { kind: 'text', text: '' } as FakeAction, /empty/],
  ])(
    're-asks after %s with the errors, and bills the invalid attempt',
    async (_name, action, issue) => {
      const { r, events, requests, bodies } = await runScript([action]);
      expect(r.status).toBe('completed');
      expect(requests).toBe(2);
      const [bad] = ofType(events, 'MODEL_RESPONSE');
      expect(bad?.event.verdict).toBe('invalid');
      expect(bad?.event.issues.join('\n')).toMatch(issue);
      const reask = JSON.stringify(bodies[1]);
      expect(reask).toContain('Your previous answer was not accepted');
      expect(r.costUsd).toBe(Math.round(perCall * 2 * 1e9) / 1e9);
    },
  );

  it('fails after the validation-attempt limit, kept apart from transport retries', async () => {
    const bad: FakeAction = { kind: 'json', value: { title: 'x' } };
    const { r, requests, events } = await runScript(
      [{ kind: 'status', status: 529 }, bad, bad, bad],
      { maxValidationAttempts: 3 },
    );
    expect(requests).toBe(4);
    expect(ofType(events, 'MODEL_ERROR')).toHaveLength(1);
    expect(r.status).toBe('failed');
    expect(r.error?.kind).toBe('validation:invalid');
  });

  it('does not re-ask a refusal by default', async () => {
    const { r, requests } = await runScript([{ kind: 'refusal' }]);
    expect(requests).toBe(1);
    expect(r.status).toBe('failed');
    expect(r.error?.kind).toBe('validation:refusal');
  });

  it('fails on max_tokens unless a larger budget is configured, then re-asks with it', async () => {
    const plain = await runScript([{ kind: 'max_tokens' }]);
    expect(plain.requests).toBe(1);
    expect(plain.r.error?.kind).toBe('validation:max_tokens');
    const bigger = await runScript([{ kind: 'max_tokens' }], {
      maxTokens: 256,
      maxTokensOnRetry: 2048,
    });
    expect(bigger.r.status).toBe('completed');
    expect(bigger.bodies.map((b) => b.max_tokens)).toEqual([256, 2048]);
  });

  it('records the cost of cache reads and both cache-write durations, with the request id', async () => {
    const usage = {
      input_tokens: 1000,
      output_tokens: 500,
      cache_read_input_tokens: 20_000,
      cache_creation_input_tokens: 3000,
      cache_creation: { ephemeral_5m_input_tokens: 2000, ephemeral_1h_input_tokens: 1000 },
    };
    const { r, events } = await runScript([{ kind: 'json', value: good, usage }]);
    // Sonnet 4.6: 1000×3 + 2000×3.75 + 1000×6 + 20000×0.30 + 500×15 = 30,000 µ$ → $0.03
    expect(r.costUsd).toBe(0.03);
    const [resp] = ofType(events, 'MODEL_RESPONSE');
    expect(resp?.event.usage).toEqual({
      inputTokens: 1000,
      outputTokens: 500,
      cacheReadTokens: 20_000,
      cacheWrite5mTokens: 2000,
      cacheWrite1hTokens: 1000,
    });
    expect(resp?.event.requestId).toMatch(/^req_/);
  });

  it('works with forced tool use as the structured-output mode', async () => {
    const { r, bodies } = await runScript([], { mode: 'tool' });
    expect(r.status).toBe('completed');
    expect(r.outputs.ask).toEqual(good);
    expect(bodies[0]?.tool_choice).toEqual({ type: 'tool', name: 'ask' });
  });
});
