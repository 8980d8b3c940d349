/**
 * Prompt caching (issue 15): `cache: '5m' | '1h'` on an llm step sends `cache_control` on the
 * system prompt and the prompt; the fake Claude caches the prefix, so the first run records
 * cache-write tokens and the second cache-read tokens, each priced by the price table.
 */
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { UsageError } from '../src/errors.js';
import { definePipeline, llm } from '../src/machines/pipeline.js';
import { costUsd, worstCaseUsd } from '../src/model/cost.js';
import { priceFor } from '../src/model/prices.js';
import { prepare } from '../src/runtime/prepare.js';
import { FakePromptCache } from '../src/testing/fakeCache.js';
import { harness, ofType } from './helpers/harness.js';

const SYSTEM = `You summarise notes. ${'Keep it short and plain. '.repeat(80)}`;
const prompt = (topic: string): string => `Summarise the notes about ${topic}.`;
const tokens = (s: string): number => Math.ceil(Buffer.byteLength(s, 'utf8') / 2);

const notes = (cache?: '5m' | '1h', pipelineCache?: '5m' | '1h') =>
  definePipeline({
    name: 'notes',
    version: '1',
    input: z.object({ topic: z.string() }),
    ...(pipelineCache !== undefined ? { cache: pipelineCache } : {}),
    steps: [
      llm({
        name: 'summary',
        model: 'claude-sonnet-4-6',
        system: SYSTEM,
        prompt: ({ input }) => prompt((input as { topic: string }).topic),
        output: z.object({ note: z.string() }),
        ...(cache !== undefined ? { cache } : {}),
      }),
    ],
  });

/** Runs `pipeline` twice on the same input; returns the two model responses and the requests. */
async function twoRuns(pipeline: ReturnType<typeof notes>) {
  await using h = await harness({ script: () => ({ kind: 'json', value: { note: 'ok' } }) });
  const prepared = prepare(pipeline);
  const rt = h.runtime();
  const responses = [];
  for (const runId of ['first', 'second']) {
    expect((await rt.start(prepared, { input: { topic: 'owls' }, runId })).status).toBe(
      'completed',
    );
    const got = ofType(await h.events(runId), 'MODEL_RESPONSE');
    expect(got).toHaveLength(1);
    responses.push(got[0]!.event);
  }
  const requests = h.fake.requests.filter((r) => r.path === '/v1/messages');
  return { responses, requests };
}

describe('prompt caching', { timeout: 60_000 }, () => {
  for (const ttl of ['5m', '1h'] as const) {
    it(`cache: '${ttl}' marks system and the prompt; the first run writes the cache, the second reads it, priced`, async () => {
      const { responses, requests } = await twoRuns(notes(ttl));
      expect(requests).toHaveLength(2);
      const control = { type: 'ephemeral', ttl };
      for (const r of requests) {
        expect(r.body.system).toEqual([{ type: 'text', text: SYSTEM, cache_control: control }]);
        expect(r.body.messages).toEqual([
          {
            role: 'user',
            content: [{ type: 'text', text: prompt('owls'), cache_control: control }],
          },
        ]);
      }
      const prefix = tokens(SYSTEM) + tokens(prompt('owls'));
      const price = priceFor('claude-sonnet-4-6');
      const [first, second] = responses;
      expect(first?.usage).toEqual({
        inputTokens: 100,
        outputTokens: 50,
        cacheReadTokens: 0,
        cacheWrite5mTokens: ttl === '5m' ? prefix : 0,
        cacheWrite1hTokens: ttl === '1h' ? prefix : 0,
      });
      expect(second?.usage).toEqual({
        inputTokens: 100,
        outputTokens: 50,
        cacheReadTokens: prefix,
        cacheWrite5mTokens: 0,
        cacheWrite1hTokens: 0,
      });
      // By hand from the price row of claude-sonnet-4-6 (USD per million tokens).
      const write = ttl === '5m' ? price.cacheWrite5m : price.cacheWrite1h;
      const round = (usd: number): number => Math.round(usd * 1e9) / 1e9;
      expect(first?.costUsd).toBe(
        round((100 * price.input + prefix * write + 50 * price.output) / 1e6),
      );
      expect(second?.costUsd).toBe(
        round((100 * price.input + prefix * price.cacheRead + 50 * price.output) / 1e6),
      );
      expect(second!.costUsd).toBeLessThan(first!.costUsd);
      expect(first?.costUsd).toBe(costUsd(first!.usage, price));
    });
  }

  it("the pipeline's cache is the default of its llm steps", async () => {
    const { requests, responses } = await twoRuns(notes(undefined, '1h'));
    expect(requests[0]?.body.system).toEqual([
      { type: 'text', text: SYSTEM, cache_control: { type: 'ephemeral', ttl: '1h' } },
    ]);
    expect(responses[1]?.usage.cacheReadTokens).toBeGreaterThan(0);
  });

  it('without cache nothing is marked and the usage has no cache tokens (unchanged)', async () => {
    const { requests, responses } = await twoRuns(notes());
    expect(requests[0]?.body.system).toBe(SYSTEM);
    expect(requests[0]?.body.messages).toEqual([{ role: 'user', content: prompt('owls') }]);
    expect(JSON.stringify(requests.map((r) => r.body))).not.toContain('cache_control');
    for (const r of responses)
      expect(r.usage).toMatchObject({
        cacheReadTokens: 0,
        cacheWrite5mTokens: 0,
        cacheWrite1hTokens: 0,
      });
  });

  it('definePipeline refuses a cache other than 5m or 1h, naming the fix', () => {
    expect(() => notes('10m' as never)).toThrow(UsageError);
    expect(() => notes('10m' as never)).toThrow(/step 'summary': cache must be '5m' or '1h'/);
    expect(() => notes(undefined, 'forever' as never)).toThrow(/pipeline 'notes': cache must be/);
  });
});

describe('the fake prompt cache', () => {
  const body = (model: string, text: string, ttl = '5m') => ({
    model,
    system: [{ type: 'text', text: 'sys', cache_control: { type: 'ephemeral', ttl } }],
    messages: [
      {
        role: 'user',
        content: [{ type: 'text', text, cache_control: { type: 'ephemeral', ttl } }],
      },
    ],
  });

  it('reads the longest live prefix of the same model, writes the rest, and expires after the TTL', () => {
    let now = 0;
    const cache = new FakePromptCache(() => now);
    expect(cache.use({ model: 'm', system: 'plain', messages: [] })).toBeNull();
    expect(cache.use(body('m', 'abcd'))).toMatchObject({ cache_creation_input_tokens: 4 });
    // Same system, other prompt: the system prefix (2 tokens) is read, the prompt written.
    expect(cache.use(body('m', 'wxyz'))).toMatchObject({
      cache_read_input_tokens: 2,
      cache_creation_input_tokens: 2,
    });
    // Another model shares nothing.
    expect(cache.use(body('n', 'abcd'))).toMatchObject({ cache_read_input_tokens: 0 });
    now = 299_999;
    expect(cache.use(body('m', 'abcd'))).toMatchObject({ cache_read_input_tokens: 4 });
    now += 300_000; // past the refreshed 5 minutes
    expect(cache.use(body('m', 'abcd'))).toMatchObject({
      cache_read_input_tokens: 0,
      cache_creation: { ephemeral_5m_input_tokens: 4, ephemeral_1h_input_tokens: 0 },
    });
    now += 3_599_000;
    expect(cache.use(body('m', 'abcd', '1h'))).toMatchObject({
      cache_creation: { ephemeral_5m_input_tokens: 0, ephemeral_1h_input_tokens: 4 },
    });
    now += 3_599_000;
    expect(cache.use(body('m', 'abcd', '1h'))).toMatchObject({ cache_read_input_tokens: 4 });
  });
});

describe('the reservation of a cached request', () => {
  it('prices its input at the cache-write price, which is above the input price', () => {
    const price = priceFor('claude-sonnet-4-6');
    const request = {
      model: 'claude-sonnet-4-6',
      messages: [{ role: 'user' as const, content: 'hi' }],
      maxTokens: 10,
      schema: {},
      schemaName: 'x',
      mode: 'native' as const,
    };
    const at = (p: number): number => Math.round((1000 * p + 10 * price.output) * 1e3) / 1e9;
    expect(worstCaseUsd(request, price, 1000)).toBe(at(price.input));
    expect(worstCaseUsd({ ...request, cache: '5m' }, price, 1000)).toBe(at(price.cacheWrite5m));
    expect(worstCaseUsd({ ...request, cache: '1h' }, price, 1000)).toBe(at(price.cacheWrite1h));
  });
});
