/**
 * Shared rate limits at the run level, through the real SDK against the fake Claude enforcing
 * limits: the boundary reads the anthropic-ratelimit-* headers (answers and 429s); runs paced
 * by the shared buckets get (almost) no 429s where unpaced ones get many; a run killed while
 * waiting for room records no attempt. Clocks are accelerated (fake and runtime share one).
 */
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { agent, tool } from '../src/machines/agent.js';
import { definePipeline, llm } from '../src/machines/pipeline.js';
import { createAnthropicClient } from '../src/model/anthropic.js';
import type { ModelRequest } from '../src/model/types.js';
import { acceleratedClock } from '../src/runtime/clock.js';
import { Runtime } from '../src/runtime/driver.js';
import { prepare } from '../src/runtime/prepare.js';
import { openSqliteStore } from '../src/store/sqlite.js';
import { rateLevels } from '../src/store/rateRules.js';
import { startFakeClaude } from '../src/testing/index.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const MODEL = 'claude-haiku-4-5';
const request: ModelRequest = {
  model: MODEL,
  messages: [{ role: 'user', content: 'hi' }],
  maxTokens: 100,
  schema: { type: 'object', properties: { ok: { type: 'boolean' } }, required: ['ok'] },
  schemaName: 'out',
  mode: 'native',
};

const pipeline = prepare(
  definePipeline({
    name: 'paced',
    version: '1',
    input: z.object({ i: z.number() }),
    retry: { maxAttempts: 20 },
    steps: [
      llm({
        name: 'ask',
        model: MODEL,
        maxTokens: 100,
        prompt: ({ input }) => `q${(input as { i: number }).i}`,
        output: z.object({ ok: z.boolean() }),
      }),
    ],
  }),
);

/** N concurrent runs against a fake enforcing `rpm` on an accelerated clock; what the fake saw. */
async function burst(n: number, rpm: number, paced: boolean) {
  const clock = acceleratedClock(30);
  await using fake = await startFakeClaude({
    now: () => clock.now(),
    rateLimits: { requestsPerMinute: rpm, outputTokensPerMinute: 100 * rpm },
    script: () => ({ kind: 'json', value: { ok: true } }),
  });
  const dir = mkdtempSync(join(tmpdir(), 'plumbline-rate-'));
  const store = openSqliteStore(join(dir, 'store.db'));
  try {
    const model = createAnthropicClient({ apiKey: 'sk-ant-rate-test', baseURL: fake.url, clock });
    const rt = new Runtime({ store, model, clock, ...(paced ? { rateLimits: {} } : {}) });
    const results = await Promise.all(
      Array.from({ length: n }, (_, i) => rt.start(pipeline, { input: { i }, runId: `p-${i}` })),
    );
    const key = `${MODEL}/${model.accountId ?? ''}`;
    return {
      statuses: results.map((r) => r.status),
      limited: fake.rateLimited,
      answered: fake.answeredAt.length,
      state: await store.rateLimits?.get(key),
      accountId: model.accountId,
    };
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('shared rate limits (run level, real SDK, fake Claude enforcing limits)', () => {
  it('the boundary reads the rate-limit headers of answers and of 429s', async () => {
    await using fake = await startFakeClaude({ rateLimits: { requestsPerMinute: 2 } });
    const claude = createAnthropicClient({ apiKey: 'sk-ant-secret-1', baseURL: fake.url });
    const a = await claude.call(request, new AbortController().signal);
    expect(a).toMatchObject({ ok: true, limits: { requests: { limit: 2, remaining: 1 } } });
    const b = await claude.call(request, new AbortController().signal);
    expect(b).toMatchObject({ ok: true, limits: { requests: { limit: 2, remaining: 0 } } });
    const c = await claude.call(request, new AbortController().signal);
    expect(c).toMatchObject({
      ok: false,
      error: { kind: 'rate_limit', status: 429 },
      limits: { requests: { limit: 2, remaining: 0 } },
    });
    if (c.ok) throw new Error('unreachable');
    // One request refills in 30 s at 2 a minute: retry-after says so, in whole seconds.
    expect(c.error.retryAfterMs).toBeGreaterThanOrEqual(29_000);
    expect(c.limits?.requests?.resetAt).toBeGreaterThan(Date.now());
    // The account is named by a hash: neither the key nor a part of it.
    expect(claude.accountId).toMatch(/^[0-9a-f]{12}$/);
    expect(claude.accountId).not.toContain('secret');
  });

  it('30 concurrent runs at 10 requests/min: unpaced they draw many 429s, paced by the shared buckets almost none', async () => {
    const unpaced = await burst(30, 10, false);
    const paced = await burst(30, 10, true);
    // Unpaced, the runs retry in a herd after each retry-after and one may use up its 20
    // attempts (then it fails): only its 429s are asserted. Paced, every run completes.
    expect(paced.statuses).toEqual(Array(30).fill('completed'));
    console.log(
      `rate limits in process: unpaced ${unpaced.limited} 429s for ${unpaced.answered} answers; paced ${paced.limited} 429s for ${paced.answered}`,
    );
    expect(unpaced.limited).toBeGreaterThan(20);
    expect(paced.limited).toBeLessThanOrEqual(1);
    expect(paced.answered).toBe(30);
    // Learned from the headers, kept under the model and the account hash.
    expect(paced.state?.learned).toBe(true);
    expect(paced.state?.buckets.requests?.limit).toBe(10);
    expect(paced.state?.buckets.outputTokens?.limit).toBe(1_000);
  }, 120_000);

  it('a run killed while it waits for room records KILL and no attempt', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'plumbline-rate-'));
    const store = openSqliteStore(join(dir, 'store.db'));
    await using fake = await startFakeClaude({
      script: () => ({ kind: 'json', value: { ok: true } }),
    });
    try {
      const model = createAnthropicClient({ apiKey: 'sk-ant-rate-kill', baseURL: fake.url });
      // One request a minute, configured: the second run waits about a minute for room.
      const rt = new Runtime({
        store,
        model,
        killPollMs: 20,
        rateLimits: { levels: { '*': { requests: 1 } } },
      });
      const first = await rt.start(pipeline, { input: { i: 1 }, runId: 'k-1' });
      expect(first.status).toBe('completed');
      const waiting = rt.start(pipeline, { input: { i: 2 }, runId: 'k-2' });
      // It is waiting: started, no attempt, and the fake saw only the first run's call.
      for (let i = 0; i < 100 && (await store.log.getRun('k-2')) === undefined; i++)
        await new Promise((r) => setTimeout(r, 20));
      await new Promise((r) => setTimeout(r, 300));
      expect(fake.calls).toBe(1);
      await rt.kill('k-2', 'operator stop', pipeline, 5_000);
      const ended = await waiting;
      expect(ended.status).toBe('killed');
      const types = (await store.log.read('k-2')).map((e) => e.event.type);
      expect(types).not.toContain('ATTEMPT');
      expect(types[types.length - 1]).toBe('KILL');
      expect(fake.calls).toBe(1);
    } finally {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);

  it('an attempt parked before its call (over budget) gives its rate-limit room back', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'plumbline-rate-'));
    const store = openSqliteStore(join(dir, 'store.db'));
    await using fake = await startFakeClaude();
    try {
      const model = createAnthropicClient({ apiKey: 'sk-ant-rate-park', baseURL: fake.url });
      const rt = new Runtime({ store, model, rateLimits: { levels: { '*': { requests: 2 } } } });
      const r = await rt.start(pipeline, {
        input: { i: 1 },
        runId: 'b-1',
        limits: { budgetUsd: 1e-9 },
      });
      expect(r.status).toBe('parked');
      expect(fake.calls).toBe(0);
      const state = await store.rateLimits?.get(`${MODEL}/${model.accountId ?? ''}`);
      if (state === undefined) throw new Error('no rate state: the attempt took nothing');
      // Back to the full 2 (without the give-back: 1, plus a few ms of refill).
      const level = rateLevels(state, state.buckets.requests?.at ?? 0, { requests: 2 }).requests
        ?.level;
      expect(level).toBe(2);
    } finally {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('agent turns are paced too: at 1 request a minute its two turns go out a minute apart, no 429', async () => {
    const clock = acceleratedClock(60);
    await using fake = await startFakeClaude({
      now: () => clock.now(),
      rateLimits: { requestsPerMinute: 1 },
      script: (req) =>
        (req.body.messages as unknown[]).length === 1
          ? { kind: 'tool_use', calls: [{ name: 'look', input: { q: 'a' } }] }
          : { kind: 'json', value: { ok: true } },
    });
    const dir = mkdtempSync(join(tmpdir(), 'plumbline-rate-'));
    const store = openSqliteStore(join(dir, 'store.db'));
    try {
      const model = createAnthropicClient({ apiKey: 'sk-ant-agent', baseURL: fake.url, clock });
      const rt = new Runtime({ store, model, clock, rateLimits: {} });
      const p = prepare(
        definePipeline({
          name: 'pacedAgent',
          version: '1',
          input: z.object({}),
          retry: { maxAttempts: 5 },
          steps: [
            agent({
              name: 'ask',
              model: MODEL,
              prompt: () => 'look it up',
              tools: {
                look: tool({
                  description: 'look',
                  input: z.object({ q: z.string() }),
                  run: () => ({ found: true }),
                }),
              },
              output: z.object({ ok: z.boolean() }),
            }),
          ],
        }),
      );
      const r = await rt.start(p, { input: {}, runId: 'agent-1' });
      expect(r.status).toBe('completed');
      expect(fake.rateLimited).toBe(0);
      const [a = 0, b = 0] = fake.answeredAt;
      expect(fake.answeredAt).toHaveLength(2);
      // Virtual time (the fake's clock): the second turn waited for the bucket to refill.
      expect(b - a).toBeGreaterThanOrEqual(55_000);
    } finally {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
