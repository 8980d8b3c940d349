/**
 * Cost of the tracing listener per event: with no OpenTelemetry SDK registered (the default) and
 * with one (SimpleSpanProcessor + InMemorySpanExporter). `node --import tsx bench/tracingOverhead.ts`
 */
import { trace } from '@opentelemetry/api';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { RunTracer } from '../src/runtime/tracing.js';
import type { StoredEnvelope } from '../src/machines/events.js';

// A 10-event run: start, ATTEMPT, MODEL_RESPONSE, ATTEMPT, MODEL_RESPONSE, EFFECT_STARTED, EFFECT_DONE, STEP_DONE ...
function runEvents(runId: string): StoredEnvelope[] {
  const st = (step: string | null, value: unknown, status = 'running') =>
    ({ value, status, step, costUsd: 0.01 }) as StoredEnvelope['state'];
  const usage = {
    inputTokens: 100,
    outputTokens: 50,
    cacheReadTokens: 0,
    cacheWrite5mTokens: 0,
    cacheWrite1hTokens: 0,
  };
  const evs: Array<[StoredEnvelope['event'], StoredEnvelope['state']]> = [
    [
      {
        type: 'run.started',
        pipeline: 'p',
        version: '1',
        machineHash: 'h',
        definition: null,
        module: null,
        input: {},
        limits: { budgetUsd: null, maxIterations: 50, deadlineAt: null },
        forkedFrom: null,
      },
      st('a', { a: 'ready' }),
    ],
    [
      {
        type: 'ATTEMPT',
        step: 'a',
        attempt: 1,
        at: 0,
        estimate: { inputTokens: 1, maxTokens: 10, usd: 0 },
        breaker: 'closed',
        model: 'm',
      },
      st('a', { a: 'calling' }),
    ],
    [
      {
        type: 'MODEL_RESPONSE',
        step: 'a',
        attempt: 1,
        requestId: 'r',
        model: 'm',
        stopReason: 'end_turn',
        usage,
        costUsd: 0.01,
        verdict: 'valid',
        issues: [],
        text: null,
        durationMs: 5,
      },
      st('b', { b: 'ready' }),
    ],
    [
      {
        type: 'ATTEMPT',
        step: 'b',
        attempt: 1,
        at: 0,
        estimate: { inputTokens: 1, maxTokens: 10, usd: 0 },
        breaker: 'closed',
        model: 'm',
      },
      st('b', { b: 'calling' }),
    ],
    [
      {
        type: 'MODEL_RESPONSE',
        step: 'b',
        attempt: 1,
        requestId: 'r',
        model: 'm',
        stopReason: 'end_turn',
        usage,
        costUsd: 0.01,
        verdict: 'valid',
        issues: [],
        text: null,
        durationMs: 5,
      },
      st('c', { c: 'ready' }),
    ],
    [{ type: 'EFFECT_STARTED', step: 'c', key: 'k', attempt: 1 }, st('c', { c: 'running' })],
    [
      { type: 'EFFECT_DONE', step: 'c', key: 'k', result: 1, replayed: false, durationMs: 1 },
      st('d', { d: 'ready' }),
    ],
    [{ type: 'STEP_DONE', step: 'd', output: 1 }, st('e', { e: 'ready' })],
    [{ type: 'STEP_DONE', step: 'e', output: 1 }, st('f', { f: 'ready' })],
    [{ type: 'STEP_DONE', step: 'f', output: 1 }, st('f', 'completed', 'completed')],
  ];
  return evs.map(([event, state], i) => ({ v: 1, at: 1000 + i, event, state, runId, seq: i + 1 }));
}
const N = 20000;
const runs = Array.from({ length: N }, (_, i) => runEvents(`r${i}`));
function measure(label: string): void {
  const t = new RunTracer();
  // warm-up
  for (let i = 0; i < 2000; i++) for (const e of runs[i]!) t.onEvent(e, 'p');
  const best: number[] = [];
  for (let k = 0; k < 5; k++) {
    const t2 = new RunTracer();
    const t0 = process.hrtime.bigint();
    for (const r of runs) for (const e of r) t2.onEvent(e, 'p');
    best.push(Number(process.hrtime.bigint() - t0) / (N * 10));
  }
  best.sort((a, b) => a - b);
  console.log(
    `${label}: median ${best[2]!.toFixed(0)} ns/event (min ${best[0]!.toFixed(0)}, max ${best[4]!.toFixed(0)})`,
  );
}
function baseline(): void {
  const seen = new Map<string, number>();
  const best: number[] = [];
  for (let k = 0; k < 5; k++) {
    const t0 = process.hrtime.bigint();
    for (const r of runs)
      for (const e of r) {
        seen.set(e.runId, e.seq);
        if (e.state.status !== 'running') seen.delete(e.runId);
      }
    best.push(Number(process.hrtime.bigint() - t0) / (N * 10));
  }
  best.sort((a, b) => a - b);
  console.log(`baseline (a Map set/delete per event): median ${best[2]!.toFixed(0)} ns/event`);
}
baseline();
measure('no SDK registered');
const exporter = new InMemorySpanExporter();
trace.setGlobalTracerProvider(
  new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }),
);
measure('SDK + SimpleSpanProcessor + InMemorySpanExporter');
console.log('spans exported:', exporter.getFinishedSpans().length);
