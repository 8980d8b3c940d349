/**
 * The Anthropic client's token counter, through the real SDK against the fake Claude: the same
 * params as the call, one count per distinct request (LRU), and never a throw.
 */
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { createAnthropicClient } from '../../src/model/anthropic.js';
import { toJsonSchema } from '../../src/model/structured.js';
import type { ModelClient, ModelRequest } from '../../src/model/types.js';
import { countByBytes, startFakeClaude, type FakeClaude } from '../../src/testing/index.js';

const KEY = 'sk-ant-test-count-tokens';

function request(content: string, over: Partial<ModelRequest> = {}): ModelRequest {
  return {
    model: 'claude-haiku-4-5',
    system: 'Be brief.',
    messages: [{ role: 'user', content }],
    maxTokens: 64,
    temperature: 0.5,
    schema: toJsonSchema(z.object({ said: z.string().min(2) })),
    schemaName: 'answer',
    mode: 'native',
    ...over,
  };
}

function counter(fake: FakeClaude, extra: { tokenCountCacheSize?: number } = {}) {
  const client = createAnthropicClient({
    apiKey: KEY,
    baseURL: fake.url,
    countTokens: true,
    ...extra,
  });
  const count = client.countTokens;
  if (count === undefined) throw new Error('countTokens: true gave no counter');
  return { client, count: count.bind(client) };
}

const countsAt = (fake: FakeClaude) =>
  fake.requests.filter((r) => r.path === '/v1/messages/count_tokens');

describe('createAnthropicClient countTokens', () => {
  it('is off against another base URL unless asked, on against api.anthropic.com', async () => {
    await using fake = await startFakeClaude();
    expect(createAnthropicClient({ apiKey: KEY, baseURL: fake.url }).countTokens).toBeUndefined();
    const official: ModelClient = createAnthropicClient({
      apiKey: KEY,
      baseURL: 'https://api.anthropic.com/',
    });
    expect(official.countTokens).toBeTypeOf('function');
    expect(
      createAnthropicClient({
        apiKey: KEY,
        baseURL: 'https://api.anthropic.com',
        countTokens: false,
      }).countTokens,
    ).toBeUndefined();
  });

  it.each(['native', 'tool'] as const)(
    'counts with the params the call sends (%s mode), without the sampling settings',
    async (mode) => {
      await using fake = await startFakeClaude({ countTokens: countByBytes });
      const { client, count } = counter(fake);
      const r = request('漢字 😀 \u0000', { mode });
      const counted = await count(r);
      await client.call(r, new AbortController().signal);
      const [countReq, callReq] = fake.requests;
      expect(countReq?.path).toBe('/v1/messages/count_tokens');
      expect(callReq?.path).toBe('/v1/messages');
      const { max_tokens: _m, temperature: _t, ...sent } = callReq?.body ?? {};
      expect(countReq?.body).toEqual(sent);
      expect(counted).toBe(countByBytes(callReq?.body ?? {}));
    },
  );

  it('asks once per distinct request, concurrent asks included', async () => {
    await using fake = await startFakeClaude({ countTokens: countByBytes });
    const { count } = counter(fake);
    const same = await Promise.all([1, 2, 3, 4, 5].map(() => count(request('same'))));
    expect(new Set(same).size).toBe(1);
    await count(request('same', { maxTokens: 4_096 })); // a max_tokens re-ask reads the same input
    expect(countsAt(fake).length).toBe(1);
    await count(request('other'));
    expect(countsAt(fake).length).toBe(2);
  });

  it('keeps a bounded number of counts (least recently used dropped)', async () => {
    await using fake = await startFakeClaude({ countTokens: countByBytes });
    const { count } = counter(fake, { tokenCountCacheSize: 1 });
    await count(request('a'));
    await count(request('b'));
    await count(request('a'));
    await count(request('a'));
    expect(
      countsAt(fake).map((r) => (r.body.messages as Array<{ content: string }>)[0]?.content),
    ).toEqual(['a', 'b', 'a']);
  });

  it('answers null on a failed count, never throws, and tries again next time', async () => {
    let failing = true;
    await using fake = await startFakeClaude({
      countTokens: (body) => {
        if (failing) throw new Error('counter down');
        return countByBytes(body);
      },
    });
    const { count } = counter(fake);
    expect(await count(request('x'))).toBeNull();
    failing = false;
    expect(await count(request('x'))).toBe(countByBytes(countsAt(fake)[1]?.body ?? {}));
    expect(await count(request('x'))).not.toBeNull();
    expect(countsAt(fake).length).toBe(2);
  });

  it('answers null for a request that cannot be built, or an aborted count', async () => {
    await using fake = await startFakeClaude({ countTokens: countByBytes });
    const { count } = counter(fake);
    expect(await count(request('x', { schema: { type: 'string' } }))).toBeNull();
    const aborted = new AbortController();
    aborted.abort();
    expect(await count(request('y'), aborted.signal)).toBeNull();
    expect(countsAt(fake).length).toBe(0);
  });

  it('answers null when the server is gone', async () => {
    const fake = await startFakeClaude({ countTokens: countByBytes });
    const { count } = counter(fake);
    await fake.close();
    expect(await count(request('x'))).toBeNull();
  });
});
