import Anthropic from '@anthropic-ai/sdk';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { createAnthropicClient } from '../../src/model/anthropic.js';
import { toJsonSchema } from '../../src/model/structured.js';
import type { ModelOutcome, ModelRequest } from '../../src/model/types.js';
import { startFakeClaude } from '../../src/testing/index.js';
import type { FakeClaude } from '../../src/testing/index.js';

const KEY = 'sk-ant-test-fake-claude-key';

function request(over: Partial<ModelRequest> = {}): ModelRequest {
  return {
    model: 'claude-sonnet-4-6',
    messages: [{ role: 'user', content: 'Say something.' }],
    maxTokens: 128,
    schema: toJsonSchema(z.object({ said: z.string().min(2) })),
    schemaName: 'answer',
    mode: 'native',
    ...over,
  };
}

function client(fake: FakeClaude) {
  return createAnthropicClient({ apiKey: KEY, baseURL: fake.url });
}

function failed(outcome: ModelOutcome) {
  if (outcome.ok) throw new Error(`expected a failure, got ${JSON.stringify(outcome)}`);
  return outcome;
}
function succeeded(outcome: ModelOutcome) {
  if (!outcome.ok) throw new Error(`expected an answer, got ${JSON.stringify(outcome.error)}`);
  return outcome;
}

describe('startFakeClaude', () => {
  it('follows a list script, then answers validly; reset restores it', async () => {
    await using fake = await startFakeClaude({ script: [{ kind: 'status', status: 500 }] });
    const claude = client(fake);
    const signal = new AbortController().signal;
    expect((await claude.call(request(), signal)).ok).toBe(false);
    expect((await claude.call(request(), signal)).ok).toBe(true);
    expect(fake.count).toBe(2);
    fake.reset();
    expect(fake.count).toBe(0);
    expect((await claude.call(request(), signal)).ok).toBe(false);
  });

  it('follows a function script with the request and its index', async () => {
    await using fake = await startFakeClaude();
    const seen: number[] = [];
    fake.setScript((req, index) => {
      seen.push(index);
      return req.body.model === 'claude-haiku-4-5'
        ? { kind: 'status', status: 529 }
        : { kind: 'valid' };
    });
    const claude = client(fake);
    const signal = new AbortController().signal;
    expect((await claude.call(request({ model: 'claude-haiku-4-5' }), signal)).ok).toBe(false);
    expect((await claude.call(request(), signal)).ok).toBe(true);
    expect(seen).toEqual([0, 1]);
  });

  it('applies a per-action usage override and a whole custom error body', async () => {
    await using fake = await startFakeClaude({
      script: [
        { kind: 'valid', usage: { output_tokens: 7 } },
        {
          kind: 'status',
          status: 418,
          body: { type: 'error', error: { type: 'teapot_error', message: 'short and stout' } },
        },
      ],
    });
    const claude = client(fake);
    const signal = new AbortController().signal;
    expect(succeeded(await claude.call(request(), signal)).usage).toMatchObject({
      inputTokens: 100,
      outputTokens: 7,
    });
    expect(failed(await claude.call(request(), signal)).error).toMatchObject({
      kind: 'unknown',
      status: 418,
      retryable: false,
      message: 'short and stout',
    });
  });

  it('answers count_tokens for the SDK', async () => {
    await using fake = await startFakeClaude({ usage: { input_tokens: 42 } });
    const sdk = new Anthropic({ apiKey: KEY, baseURL: fake.url, maxRetries: 0 });
    const counted = await sdk.messages.countTokens({
      model: 'claude-sonnet-4-6',
      messages: [{ role: 'user', content: 'hi' }],
    });
    expect(counted.input_tokens).toBe(42);
    expect(fake.requests[0]!.path).toBe('/v1/messages/count_tokens');
  });

  it('closes with pending delays and open connections', async () => {
    const fake = await startFakeClaude({
      script: [{ kind: 'delay', ms: 60_000, then: { kind: 'valid' } }],
    });
    const pending = client(fake).call(request(), new AbortController().signal);
    await waitFor(() => fake.count === 1);
    await fake.close();
    expect(failed(await pending).error.kind).toBe('connection');
  });

  it('bills every answer it produces, even one held until flush() after its client left', async () => {
    await using fake = await startFakeClaude({
      script: [
        { kind: 'status', status: 529 },
        { kind: 'delay', ms: 600_000, then: { kind: 'valid', usage: { output_tokens: 7 } } },
        { kind: 'valid' },
      ],
    });
    const claude = client(fake);
    expect(failed(await claude.call(request(), new AbortController().signal)).error.status).toBe(
      529,
    );
    const ac = new AbortController();
    const held = claude.call(request(), ac.signal);
    await waitFor(() => fake.count === 2);
    ac.abort();
    expect((await held).ok).toBe(false);
    const answered = succeeded(await claude.call(request(), new AbortController().signal));
    expect(fake.billed.map((b) => b.delivered)).toEqual([true]);
    fake.flush();
    // The 529 is not billed; the held answer is, after the delivered one, undelivered.
    expect(fake.billed.map((b) => [b.delivered, b.usage.output_tokens])).toEqual([
      [true, 50],
      [false, 7],
    ]);
    expect(fake.billed[0]?.requestId).toBe(answered.requestId);
  });

  it('turns a throwing script function into a visible 500', async () => {
    await using fake = await startFakeClaude({
      script: () => {
        throw new Error('script bug');
      },
    });
    const outcome = failed(await client(fake).call(request(), new AbortController().signal));
    expect(outcome.error).toMatchObject({ kind: 'server', status: 500 });
    expect(outcome.error.message).toContain('script bug');
  });

  it('answers 404 for other endpoints', async () => {
    await using fake = await startFakeClaude();
    const res = await fetch(`${fake.url}/v1/models`);
    expect(res.status).toBe(404);
    expect(await res.json()).toMatchObject({ type: 'error', error: { type: 'not_found_error' } });
  });
});

async function waitFor(check: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !check(); i++) await new Promise((r) => setTimeout(r, 10));
}
