/**
 * The model boundary calls through a copy of the SDK client with its spans off only while they
 * could have no effect (src/model/sdkSpans.ts): nothing registered. A propagator registered alone
 * still gets its headers sent, and a tracer provider registered after the client was made still
 * gets the SDK's `anthropic.messages.create` spans. Real SDK over HTTP to the fake Claude.
 * The tests run in order: each registers a little more of OpenTelemetry's globals.
 */
import { propagation, trace, type TextMapPropagator } from '@opentelemetry/api';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { afterAll, describe, expect, it } from 'vitest';
import { createAnthropicClient } from '../../src/model/anthropic.js';
import { sdkSpansMayMatter } from '../../src/model/sdkSpans.js';
import { hiRequest } from './hiRequest.js';
import { startFakeClaude } from '../../src/testing/index.js';

const request = hiRequest;

/** A propagator that writes one fixed header, whatever the context. */
const probe: TextMapPropagator = {
  inject: (_ctx, carrier, setter) => setter.set(carrier, 'x-probe', 'seen'),
  extract: (ctx) => ctx,
  fields: () => ['x-probe'],
};

const fake = await startFakeClaude();
const claude = createAnthropicClient({ apiKey: 'sk-test', baseURL: fake.url, countTokens: true });
afterAll(async () => {
  propagation.disable();
  trace.disable();
  await fake.close();
});

describe.sequential('the SDK spans switch', () => {
  it('nothing registered: the spans cannot matter, and the call answers', async () => {
    expect(sdkSpansMayMatter()).toBe(false);
    const outcome = await claude.call(request, new AbortController().signal);
    expect(outcome.ok).toBe(true);
    expect(fake.requests.at(-1)?.headers['x-probe']).toBeUndefined();
  });

  it('a propagator alone: the SDK still sends its headers, as it always did', async () => {
    propagation.setGlobalPropagator(probe);
    expect(sdkSpansMayMatter()).toBe(true);
    const outcome = await claude.call(request, new AbortController().signal);
    expect(outcome.ok).toBe(true);
    expect(fake.requests.at(-1)?.headers['x-probe']).toBe('seen');
    propagation.disable();
    expect(sdkSpansMayMatter()).toBe(false);
  });

  it('a provider registered after the client was made gets the SDK spans of the next call and count', async () => {
    const exporter = new InMemorySpanExporter();
    trace.setGlobalTracerProvider(
      new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }),
    );
    expect(sdkSpansMayMatter()).toBe(true);
    const outcome = await claude.call(request, new AbortController().signal);
    expect(outcome.ok).toBe(true);
    expect(await claude.countTokens?.(request)).toEqual(expect.any(Number));
    const names = exporter.getFinishedSpans().map((s) => s.name);
    expect(names).toEqual(['anthropic.messages.create', 'anthropic.messages.count_tokens']);
    const spans = exporter.getFinishedSpans().filter((s) => s.name === 'anthropic.messages.create');
    expect(spans[0]?.attributes).toMatchObject({
      'gen_ai.provider.name': 'anthropic',
      'gen_ai.request.model': 'claude-sonnet-4-6',
    });
  });
});
