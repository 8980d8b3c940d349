import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { createAnthropicClient } from '../../src/model/anthropic.js';
import { judgeOutput, toJsonSchema } from '../../src/model/structured.js';
import type { ModelOutcome, ModelRequest } from '../../src/model/types.js';
import { startFakeClaude } from '../../src/testing/index.js';
import type { FakeAction, FakeClaude } from '../../src/testing/index.js';

const KEY = 'sk-ant-test-0123456789abcdefSECRET';
const Answer = z.object({
  title: z.string().min(3),
  score: z.number().int().min(0).max(10),
  tags: z.array(z.enum(['news', 'sport'])).min(1),
});

function request(over: Partial<ModelRequest> = {}): ModelRequest {
  return {
    model: 'claude-sonnet-4-6',
    system: 'You summarise.',
    messages: [{ role: 'user', content: 'Summarise: the cat sat on the mat.' }],
    maxTokens: 256,
    schema: toJsonSchema(Answer),
    schemaName: 'summary',
    mode: 'native',
    ...over,
  };
}

function client(fake: FakeClaude, timeoutMs?: number) {
  return createAnthropicClient({
    apiKey: KEY,
    baseURL: fake.url,
    ...(timeoutMs ? { timeoutMs } : {}),
  });
}

async function callOnce(action: FakeAction, over: Partial<ModelRequest> = {}) {
  const fake = await startFakeClaude({ script: [action] });
  try {
    const outcome = await client(fake).call(request(over), new AbortController().signal);
    return { outcome, count: fake.count, fake };
  } finally {
    await fake.close();
  }
}

function failed(outcome: ModelOutcome) {
  if (outcome.ok) throw new Error(`expected a failure, got ${JSON.stringify(outcome)}`);
  return outcome;
}
function succeeded(outcome: ModelOutcome) {
  if (!outcome.ok) throw new Error(`expected an answer, got ${JSON.stringify(outcome.error)}`);
  return outcome;
}

describe('createAnthropicClient against the fake Claude (real SDK over HTTP)', () => {
  it('native mode: output_config.format json_schema, a valid answer, request id and usage', async () => {
    await using fake = await startFakeClaude();
    const outcome = succeeded(await client(fake).call(request(), new AbortController().signal));

    expect(fake.count).toBe(1);
    const sent = fake.requests[0]!;
    expect(sent.path).toBe('/v1/messages');
    expect(sent.body).toMatchObject({
      model: 'claude-sonnet-4-6',
      max_tokens: 256,
      system: 'You summarise.',
      messages: [{ role: 'user', content: 'Summarise: the cat sat on the mat.' }],
      output_config: {
        format: { type: 'json_schema', schema: { type: 'object', additionalProperties: false } },
      },
    });
    expect(sent.body.tools).toBeUndefined();
    expect(sent.body.tool_choice).toBeUndefined();

    expect(outcome.requestId).toMatch(/^req_fake_\d+$/);
    expect(outcome.model).toBe('claude-sonnet-4-6');
    expect(outcome.stopReason).toBe('end_turn');
    expect(outcome.usage).toEqual({
      inputTokens: 100,
      outputTokens: 50,
      cacheReadTokens: 0,
      cacheWrite5mTokens: 0,
      cacheWrite1hTokens: 0,
    });
    expect(judgeOutput(outcome, Answer).verdict).toBe('valid');
  });

  it('tool mode: one forced tool named after the schema; the text is the tool input as JSON', async () => {
    await using fake = await startFakeClaude();
    const outcome = succeeded(
      await client(fake).call(request({ mode: 'tool' }), new AbortController().signal),
    );

    const body = fake.requests[0]!.body;
    expect(body.tools).toEqual([
      {
        name: 'summary',
        description: 'Record the summary answer.',
        input_schema: toJsonSchema(Answer),
      },
    ]);
    expect(body.tool_choice).toEqual({ type: 'tool', name: 'summary' });
    expect(body.output_config).toBeUndefined();
    expect(outcome.stopReason).toBe('tool_use');
    const judged = judgeOutput(outcome, Answer);
    expect(judged.verdict).toBe('valid');
    expect(JSON.parse(outcome.text!)).toEqual(judged.output);
  });

  it('sends the key only in its auth header, never in the body, and never returns it', async () => {
    await using fake = await startFakeClaude({
      script: [{ kind: 'valid' }, { kind: 'status', status: 401 }],
    });
    const claude = client(fake);
    const outcomes = [
      await claude.call(request(), new AbortController().signal),
      await claude.call(request(), new AbortController().signal),
    ];
    for (const sent of fake.requests) {
      const carrying = Object.entries(sent.headers).filter(([, v]) => String(v).includes(KEY));
      expect(carrying.map(([name]) => name)).toHaveLength(1);
      expect(['x-api-key', 'authorization']).toContain(carrying[0]![0]);
      expect(JSON.stringify(sent.body)).not.toContain(KEY);
    }
    expect(JSON.stringify(outcomes)).not.toContain(KEY);
    expect(JSON.stringify(outcomes)).not.toContain('SECRET');
    expect(failed(outcomes[1]!).error).toMatchObject({
      kind: 'auth',
      retryable: false,
      status: 401,
    });
  });

  it('maps usage with cache reads and both cache-write durations', async () => {
    await using fake = await startFakeClaude({
      usage: {
        input_tokens: 12,
        output_tokens: 34,
        cache_read_input_tokens: 5_000,
        cache_creation_input_tokens: 3_000,
        cache_creation: { ephemeral_5m_input_tokens: 1_000, ephemeral_1h_input_tokens: 2_000 },
      },
    });
    const outcome = succeeded(await client(fake).call(request(), new AbortController().signal));
    expect(outcome.usage).toEqual({
      inputTokens: 12,
      outputTokens: 34,
      cacheReadTokens: 5_000,
      cacheWrite5mTokens: 1_000,
      cacheWrite1hTokens: 2_000,
    });
  });

  describe('fault classes: one HTTP request per call (maxRetries: 0), classified', () => {
    it.each<[string, FakeAction, Record<string, unknown>]>([
      [
        '429 with retry-after',
        { kind: 'status', status: 429, headers: { 'retry-after': '7' } },
        { kind: 'rate_limit', status: 429, retryable: true, retryAfterMs: 7_000 },
      ],
      [
        '429 with retry-after-ms',
        { kind: 'status', status: 429, headers: { 'retry-after-ms': '1250', 'retry-after': '2' } },
        { kind: 'rate_limit', retryable: true, retryAfterMs: 1_250 },
      ],
      [
        '529 overloaded_error',
        { kind: 'status', status: 529, message: 'Overloaded' },
        {
          kind: 'overloaded',
          status: 529,
          retryable: true,
          message: 'Overloaded',
          retryAfterMs: null,
        },
      ],
      [
        '500 api_error',
        { kind: 'status', status: 500 },
        { kind: 'server', status: 500, retryable: true },
      ],
      [
        '503 with x-should-retry: false',
        { kind: 'status', status: 503, headers: { 'x-should-retry': 'false' } },
        { kind: 'server', retryable: false },
      ],
      [
        '400 invalid_request_error',
        { kind: 'status', status: 400, message: 'max_tokens: Field required' },
        {
          kind: 'bad_request',
          status: 400,
          retryable: false,
          message: 'max_tokens: Field required',
        },
      ],
      [
        '429 spend limit',
        {
          kind: 'status',
          status: 429,
          errorType: 'rate_limit_error',
          errorCode: 'enforced_spend_limit_reached',
          message: 'You have reached your monthly spend limit.',
          headers: { 'retry-after': '60' },
        },
        {
          kind: 'spend_limit',
          status: 429,
          retryable: false,
          message: 'You have reached your monthly spend limit.',
        },
      ],
      [
        '404 not_found_error',
        { kind: 'status', status: 404 },
        { kind: 'not_found', retryable: false },
      ],
    ])('%s', async (_name, action, expected) => {
      const { outcome, count } = await callOnce(action);
      expect(count).toBe(1);
      const { error, usage } = failed(outcome);
      expect(error).toMatchObject(expected);
      expect(error.requestId).toMatch(/^req_fake_\d+$/);
      expect(usage).toBeNull();
    });

    it('a dropped connection is a retryable connection error', async () => {
      const { outcome, count } = await callOnce({ kind: 'drop' });
      expect(count).toBe(1);
      expect(failed(outcome).error).toMatchObject({
        kind: 'connection',
        retryable: true,
        status: null,
        requestId: null,
      });
    });

    it('a reply slower than the timeout is a retryable timeout', async () => {
      await using fake = await startFakeClaude({
        script: [{ kind: 'delay', ms: 5_000, then: { kind: 'valid' } }],
      });
      const started = Date.now();
      const outcome = await client(fake, 300).call(request(), new AbortController().signal);
      expect(Date.now() - started).toBeLessThan(3_000);
      expect(fake.count).toBe(1);
      expect(failed(outcome).error).toMatchObject({ kind: 'timeout', retryable: true });
    });

    it("the request's own timeoutMs wins over the client's", async () => {
      await using fake = await startFakeClaude({
        script: [{ kind: 'delay', ms: 5_000, then: { kind: 'valid' } }],
      });
      const outcome = await client(fake, 60_000).call(
        request({ timeoutMs: 200 }),
        new AbortController().signal,
      );
      expect(failed(outcome).error.kind).toBe('timeout');
    });

    it('a slow reply within the timeout is an answer', async () => {
      const { outcome } = await callOnce({ kind: 'delay', ms: 100, then: { kind: 'valid' } });
      expect(succeeded(outcome).stopReason).toBe('end_turn');
    });

    it('an aborted signal is a fatal abort', async () => {
      await using fake = await startFakeClaude({
        script: [{ kind: 'delay', ms: 5_000, then: { kind: 'valid' } }],
      });
      const controller = new AbortController();
      setTimeout(() => controller.abort(), 100);
      const outcome = await client(fake).call(request(), controller.signal);
      expect(failed(outcome).error).toMatchObject({ kind: 'aborted', retryable: false });
      expect(fake.count).toBe(1);
    });

    it('an HTTP-date retry-after is resolved against the injected clock', async () => {
      await using fake = await startFakeClaude({
        script: [
          {
            kind: 'status',
            status: 429,
            headers: { 'retry-after': 'Fri, 27 Nov 2026 12:00:30 GMT' },
          },
        ],
      });
      const now = Date.parse('2026-11-27T12:00:00Z');
      const claude = createAnthropicClient({
        apiKey: KEY,
        baseURL: fake.url,
        clock: { now: () => now },
      });
      const outcome = failed(await claude.call(request(), new AbortController().signal));
      expect(outcome.error.retryAfterMs).toBe(30_000);
      expect(outcome.durationMs).toBe(0);
    });
  });

  describe('answers the guard must judge', () => {
    it('refusal', async () => {
      const { outcome } = await callOnce({ kind: 'refusal' });
      const ok = succeeded(outcome);
      expect(ok.stopReason).toBe('refusal');
      expect(judgeOutput(ok, Answer).verdict).toBe('refusal');
    });

    it('max_tokens: truncated JSON, output tokens at the limit', async () => {
      const { outcome } = await callOnce({ kind: 'max_tokens' });
      const ok = succeeded(outcome);
      expect(ok.stopReason).toBe('max_tokens');
      expect(ok.usage.outputTokens).toBe(256);
      expect(() => JSON.parse(ok.text!)).toThrow();
      expect(judgeOutput(ok, Answer).verdict).toBe('max_tokens');
    });

    it('malformed text', async () => {
      const { outcome } = await callOnce({ kind: 'text', text: '{"title": "abc", "score": ' });
      const judged = judgeOutput(succeeded(outcome), Answer);
      expect(judged.verdict).toBe('invalid');
      expect(judged.issues[0]).toMatch(/^the answer is not JSON/);
    });

    it('prose around the JSON', async () => {
      const { outcome } = await callOnce({
        kind: 'text',
        text: 'Sure! {"title":"abc","score":1,"tags":["news"]}',
      });
      expect(judgeOutput(succeeded(outcome), Answer).issues).toEqual([
        'the answer had text around the JSON',
      ]);
    });

    it('JSON that breaks the schema, in tool mode', async () => {
      const { outcome } = await callOnce(
        { kind: 'json', value: { title: 'ab', score: 11, tags: [] } },
        { mode: 'tool' },
      );
      expect(judgeOutput(succeeded(outcome), Answer).issues).toEqual([
        'title: Too small: expected string to have >=3 characters',
        'score: Too big: expected number to be <=10',
        'tags: Too small: expected array to have >=1 items',
      ]);
    });
  });

  it('a schema the SDK cannot send natively fails locally as a fatal bad request, sending nothing', async () => {
    await using fake = await startFakeClaude();
    const schema = toJsonSchema(z.object({ pair: z.tuple([z.string(), z.number()]) }));
    const outcome = await client(fake).call(request({ schema }), new AbortController().signal);
    expect(failed(outcome).error).toMatchObject({
      kind: 'bad_request',
      retryable: false,
      status: null,
    });
    expect(fake.count).toBe(0);
  });

  it('reads ANTHROPIC_API_KEY and ANTHROPIC_BASE_URL when no options are given', async () => {
    await using fake = await startFakeClaude();
    const saved = { key: process.env.ANTHROPIC_API_KEY, url: process.env.ANTHROPIC_BASE_URL };
    process.env.ANTHROPIC_API_KEY = KEY;
    process.env.ANTHROPIC_BASE_URL = fake.url;
    try {
      const outcome = await createAnthropicClient().call(request(), new AbortController().signal);
      expect(outcome.ok).toBe(true);
      expect(JSON.stringify(fake.requests[0]!.headers)).toContain(KEY);
    } finally {
      restore('ANTHROPIC_API_KEY', saved.key);
      restore('ANTHROPIC_BASE_URL', saved.url);
    }
  });
});

function restore(name: string, value: string | undefined): void {
  if (value === undefined) delete process.env[name];
  else process.env[name] = value;
}
