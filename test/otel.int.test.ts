/**
 * OpenTelemetry: a run driven through the real SDK against the fake Claude, with a retry (a 529)
 * and a re-ask (an invalid answer), makes one span per drive, step, model attempt and effect,
 * linked attempt → step → run, with the GenAI attributes; replaying its log makes none.
 */
import { SpanStatusCode, trace } from '@opentelemetry/api';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
  type ReadableSpan,
} from '@opentelemetry/sdk-trace-base';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { definePipeline, effect, llm, step } from '../src/machines/pipeline.js';
import { foldLog } from '../src/machines/replay.js';
import { virtualClock } from '../src/runtime/clock.js';
import { prepare } from '../src/runtime/prepare.js';
import { TRACER_NAME } from '../src/runtime/tracing.js';
import { harness, ofType, type Harness } from './helpers/harness.js';

const Label = z.object({ label: z.string().min(3) });
const Summary = z.object({ title: z.string().min(5), score: z.number().int().min(0).max(10) });

const prepared = prepare(
  definePipeline({
    name: 'traced',
    version: '3',
    input: z.object({ text: z.string() }),
    retry: { baseMs: 100, maxBackoffMs: 400 },
    steps: [
      llm({
        name: 'classify',
        model: 'claude-sonnet-4-6',
        prompt: () => 'classify it',
        output: Label,
      }),
      llm({
        name: 'summarize',
        model: 'claude-sonnet-4-6',
        prompt: () => 'summarize it',
        output: Summary,
      }),
      effect({ name: 'save', key: ({ runId }) => `${runId}-save`, run: () => ({ saved: true }) }),
      step({ name: 'finish', run: () => ({ ok: true }) }),
    ],
  }),
);

const exporter = new InMemorySpanExporter();
const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
let h: Harness;

beforeAll(async () => {
  trace.setGlobalTracerProvider(provider);
  h = await harness({
    script: [
      { kind: 'status', status: 529, headers: { 'retry-after-ms': '10' } },
      { kind: 'json', value: { label: 'spam' } },
      { kind: 'json', value: { title: 'no', score: 42 } },
      { kind: 'json', value: { title: 'a fine title', score: 7 } },
    ],
  });
});

afterAll(async () => {
  await h.close();
  await provider.shutdown();
  trace.disable();
});

beforeEach(() => exporter.reset());

/** plumbline's spans only (the Anthropic SDK traces its own calls under another scope). */
const ours = (): ReadableSpan[] =>
  exporter.getFinishedSpans().filter((s) => s.instrumentationScope.name === TRACER_NAME);
const ms = (t: [number, number]): number => t[0] * 1000 + t[1] / 1e6;
const parentOf = (s: ReadableSpan): string | undefined => s.parentSpanContext?.spanId;

describe('OpenTelemetry spans', () => {
  it('a run with a retry and a re-ask: run → steps → attempts and effect, with GenAI attributes', async () => {
    const rt = h.runtime({ clock: virtualClock() });
    const r = await rt.start(prepared, { input: { text: 'hello' } });
    expect(r.status).toBe('completed');
    const events = await h.events(r.runId);
    const spans = ours();
    expect(spans.map((s) => s.name).sort()).toEqual(
      [
        'run traced',
        'step classify',
        'step summarize',
        'step save',
        'step finish',
        'chat claude-sonnet-4-6', // classify: 529
        'chat claude-sonnet-4-6', // classify: valid
        'chat claude-sonnet-4-6', // summarize: invalid → re-ask
        'chat claude-sonnet-4-6', // summarize: valid
        'effect save',
      ].sort(),
    );
    const [run] = spans.filter((s) => s.name === 'run traced');
    if (run === undefined) throw new Error('no run span');
    const traceId = run.spanContext().traceId;
    for (const s of spans) expect(s.spanContext().traceId).toBe(traceId);
    expect(parentOf(run)).toBeUndefined();
    expect(run.attributes).toMatchObject({
      'plumbline.run_id': r.runId,
      'plumbline.pipeline': 'traced',
      'plumbline.pipeline_version': '3',
      'plumbline.seq': 1,
      'plumbline.status': 'completed',
      'plumbline.cost_usd': r.costUsd,
      'plumbline.last_seq': r.seq,
    });
    expect(run.status.code).toBe(SpanStatusCode.UNSET);
    expect(ms(run.startTime)).toBe(events[0]?.at);
    expect(ms(run.endTime)).toBe(events[events.length - 1]?.at);

    const stepSpan = (name: string): ReadableSpan => {
      const s = spans.find((x) => x.name === `step ${name}`);
      if (s === undefined) throw new Error(`no step span ${name}`);
      return s;
    };
    for (const name of ['classify', 'summarize', 'save', 'finish']) {
      const s = stepSpan(name);
      expect(parentOf(s)).toBe(run.spanContext().spanId);
      expect(s.attributes['plumbline.step']).toBe(name);
      expect(s.attributes['plumbline.run_id']).toBe(r.runId);
    }
    // Steps follow each other in log order.
    const order = ['classify', 'summarize', 'save', 'finish'].map((n) => stepSpan(n));
    for (let i = 1; i < order.length; i++)
      expect(ms(order[i]!.startTime)).toBeGreaterThanOrEqual(ms(order[i - 1]!.endTime));

    const attempts = spans.filter((s) => s.name.startsWith('chat '));
    const inStep = (name: string) =>
      attempts
        .filter((a) => parentOf(a) === stepSpan(name).spanContext().spanId)
        .sort(
          (a, b) =>
            Number(a.attributes['plumbline.attempt']) - Number(b.attributes['plumbline.attempt']),
        );
    const classify = inStep('classify');
    const summarize = inStep('summarize');
    expect(classify.map((a) => a.attributes['plumbline.attempt'])).toEqual([1, 2]);
    expect(summarize.map((a) => a.attributes['plumbline.attempt'])).toEqual([1, 2]);

    // The 529: status ERROR with the attempt's classification.
    const [err] = ofType(events, 'MODEL_ERROR');
    const [overloaded, ok1] = classify as [ReadableSpan, ReadableSpan];
    expect(err?.event.status).toBe(529);
    expect(overloaded.status.code).toBe(SpanStatusCode.ERROR);
    expect(overloaded.status.message).toContain(`${err?.event.kind}:`);
    expect(overloaded.attributes).toMatchObject({
      'error.type': err?.event.kind,
      'plumbline.error_kind': err?.event.kind,
      'plumbline.retryable': true,
      'http.response.status_code': 529,
      'gen_ai.operation.name': 'chat',
      'gen_ai.provider.name': 'anthropic',
      'gen_ai.request.model': 'claude-sonnet-4-6',
    });
    expect(ms(overloaded.endTime)).toBe(err?.at);

    // Every answered attempt: GenAI attributes from its MODEL_RESPONSE.
    const responses = ofType(events, 'MODEL_RESPONSE');
    expect(responses.map((e) => [e.event.step, e.event.verdict])).toEqual([
      ['classify', 'valid'],
      ['summarize', 'invalid'],
      ['summarize', 'valid'],
    ]);
    const answered = [ok1, ...summarize];
    responses.forEach((e, i) => {
      const a = answered[i]!;
      const u = e.event.usage;
      expect(a.status.code).toBe(SpanStatusCode.UNSET);
      expect(a.attributes).toMatchObject({
        'gen_ai.operation.name': 'chat',
        'gen_ai.provider.name': 'anthropic',
        'gen_ai.request.model': 'claude-sonnet-4-6',
        'gen_ai.response.model': e.event.model,
        'gen_ai.usage.input_tokens':
          u.inputTokens + u.cacheReadTokens + u.cacheWrite5mTokens + u.cacheWrite1hTokens,
        'gen_ai.usage.output_tokens': u.outputTokens,
        'gen_ai.response.finish_reasons': [e.event.stopReason],
        'plumbline.run_id': r.runId,
        'plumbline.pipeline': 'traced',
        'plumbline.step': e.event.step,
        'plumbline.attempt': e.event.attempt,
        'plumbline.cost_usd': e.event.costUsd,
        'plumbline.verdict': e.event.verdict,
        'plumbline.outcome_seq': e.seq,
      });
      expect(e.event.requestId).not.toBeNull();
      expect(a.attributes['gen_ai.response.id']).toBe(e.event.requestId);
      expect(a.attributes['gen_ai.usage.output_tokens']).toBeGreaterThan(0);
      expect(ms(a.endTime)).toBe(e.at);
    });
    expect(summarize[0]!.attributes['plumbline.issues']).toBeDefined();
    // An attempt span opens at its ATTEMPT's seq.
    const attemptSeqs = ofType(events, 'ATTEMPT').map((e) => e.seq);
    expect([...classify, ...summarize].map((a) => a.attributes['plumbline.seq'])).toEqual(
      attemptSeqs,
    );
    // A step's cost is the sum of its attempts'.
    expect(stepSpan('summarize').attributes['plumbline.cost_usd']).toBeCloseTo(
      summarize.reduce((t, a) => t + Number(a.attributes['plumbline.cost_usd']), 0),
      12,
    );

    const eff = spans.find((s) => s.name === 'effect save')!;
    expect(parentOf(eff)).toBe(stepSpan('save').spanContext().spanId);
    expect(eff.attributes).toMatchObject({
      'plumbline.effect.key': `${r.runId}-save`,
      'plumbline.effect.replayed': false,
      'plumbline.attempt': 1,
    });

    // Replaying the log — a fold, and a drive of the finished run — emits nothing.
    exporter.reset();
    const folded = foldLog(prepared.machine, prepared.hash, r.runId, events);
    expect(folded.seq).toBe(r.seq);
    const again = await h.runtime({ clock: virtualClock() }).drive(prepared, r.runId);
    expect(again.status).toBe('completed');
    expect(exporter.getFinishedSpans()).toEqual([]);
  });

  it('a drive that parks ends its spans; a resume here continues the trace, one in another process starts its own', async () => {
    await using h2 = await harness({ script: [{ kind: 'json', value: { label: 'ham' } }] });
    const one = prepare(
      definePipeline({
        name: 'parks',
        version: '1',
        input: z.object({}),
        steps: [
          llm({ name: 'ask', model: 'claude-sonnet-4-6', prompt: () => 'ask', output: Label }),
        ],
      }),
    );
    const here = h2.runtime({ clock: virtualClock() });
    const tiny = { budgetUsd: 1e-9 };
    const a = await here.start(one, { input: {}, limits: tiny });
    expect(a.status).toBe('parked');
    const parked = ours();
    // The refused ATTEMPT made no model call and no attempt span.
    expect(parked.map((s) => s.name).sort()).toEqual(['run parks', 'step ask']);
    const first = parked.find((s) => s.name === 'run parks')!;
    expect(first.attributes['plumbline.status']).toBe('parked');
    expect(parked.find((s) => s.name === 'step ask')!.events.map((e) => e.name)).toEqual([
      'ATTEMPT refused',
    ]);

    exporter.reset();
    expect((await here.resume(one, a.runId, { budgetUsd: 10 })).status).toBe('completed');
    const resumed = ours();
    expect(resumed.map((s) => s.name).sort()).toEqual([
      'chat claude-sonnet-4-6',
      'run parks',
      'step ask',
    ]);
    const second = resumed.find((s) => s.name === 'run parks')!;
    expect(second.spanContext().traceId).toBe(first.spanContext().traceId);
    expect(parentOf(second)).toBe(first.spanContext().spanId);
    const resumeSeq = ofType(await h2.events(a.runId), 'RESUME')[0]?.seq;
    expect(second.attributes).toMatchObject({
      'plumbline.resumed': true,
      'plumbline.seq': resumeSeq,
      'plumbline.status': 'completed',
    });

    // Another process (a runtime with no memory of the run) starts a trace of its own.
    const b = await here.start(one, { input: {}, limits: tiny });
    const firstB = ours().find(
      (s) => s.name === 'run parks' && s.attributes['plumbline.run_id'] === b.runId,
    )!;
    exporter.reset();
    const elsewhere = h2.runtime({ clock: virtualClock() });
    expect((await elsewhere.resume(one, b.runId, { budgetUsd: 10 })).status).toBe('completed');
    const run = ours().find((s) => s.name === 'run parks')!;
    expect(parentOf(run)).toBeUndefined();
    expect(run.spanContext().traceId).not.toBe(firstB.spanContext().traceId);
    expect(run.attributes).toMatchObject({
      'plumbline.run_id': b.runId,
      'plumbline.resumed': true,
    });
  });

  it('a drive stopped mid-effect ends its open spans, marked stopped', async () => {
    let started!: () => void;
    const inEffect = new Promise<void>((res) => (started = res));
    const blocking = prepare(
      definePipeline({
        name: 'stops',
        version: '1',
        input: z.object({}),
        steps: [
          effect({
            name: 'wait',
            key: ({ runId }) => `${runId}-wait`,
            run: ({ signal }) =>
              new Promise((_, reject) => {
                started();
                signal.addEventListener('abort', () => reject(new Error('stopped')));
              }),
          }),
        ],
      }),
    );
    const ac = new AbortController();
    const running = h.runtime().start(blocking, { input: {}, signal: ac.signal });
    await inEffect;
    ac.abort();
    const r = await running;
    expect(r.stopped).toBe('aborted');
    const spans = ours();
    expect(spans.map((s) => s.name).sort()).toEqual(['effect wait', 'run stops', 'step wait']);
    const run = spans.find((s) => s.name === 'run stops')!;
    expect(run.attributes['plumbline.stopped']).toBe('aborted');
    expect(run.attributes['plumbline.status']).toBeUndefined();
    const eff = spans.find((s) => s.name === 'effect wait')!;
    expect(eff.attributes['plumbline.effect.key']).toBe(`${r.runId}-wait`);
  });
});
