/**
 * The prompt is built once per attempt (issue 11): an llm step's `prompt` and `system` functions
 * run exactly as often as the run records ATTEMPT — across a re-ask, a transport retry and a call
 * lost with its process — through the real SDK against the fake Claude. A prompt that throws, on
 * the first attempt or a later one, fails the step cleanly, and the failed run stays failed:
 * `resume` and `drive` of it do nothing (the old bug left it stuck in `calling`, every resume
 * crashing with 'internal: STEP_FAILED not accepted').
 */
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { route } from '../src/machines/constructs.js';
import { definePipeline, llm, type Step } from '../src/machines/pipeline.js';
import { prepare, type Prepared } from '../src/runtime/prepare.js';
import type { FakeAction } from '../src/testing/index.js';
import { harness, ofType, type Harness } from './helpers/harness.js';

/** A one-step pipeline whose prompt and system functions count their calls (and may throw). */
function counted(name: string, throwOn: (call: number) => boolean = () => false) {
  const calls = { prompt: 0, system: 0 };
  const ask = llm({
    name: 'ask',
    model: 'claude-haiku-4-5',
    system: () => `system #${++calls.system}`,
    prompt: () => {
      calls.prompt += 1;
      if (throwOn(calls.prompt)) throw new Error(`prompt exploded on call ${calls.prompt}`);
      return 'summarise';
    },
    output: z.object({ summary: z.string() }),
  });
  return { calls, prepared: pipelineOf(name, [ask]) };
}

function pipelineOf(name: string, steps: Step[]): Prepared {
  return prepare(
    definePipeline({
      name,
      version: '1',
      input: z.object({}),
      retry: { baseMs: 5, maxBackoffMs: 5 },
      steps,
    }),
  );
}

const invalid: FakeAction = { kind: 'json', value: { wrong: 1 } };

async function attempts(h: Harness, runId: string): Promise<number> {
  return ofType(await h.events(runId), 'ATTEMPT').length;
}

/** The run failed, recorded why, and a later resume or drive appends nothing and throws nothing. */
async function failedForGood(h: Harness, p: Prepared, runId: string, message: string) {
  const events = await h.events(runId);
  const failed = ofType(events, 'STEP_FAILED');
  expect(failed).toHaveLength(1);
  expect(failed[0]?.event.step).toBe('ask');
  expect(failed[0]?.event.message).toContain(message);
  expect(events.at(-1)?.state).toMatchObject({ status: 'failed', value: 'failed' });
  expect((await h.store.log.getRun(runId))?.status).toBe('failed');
  const resumed = await h.runtime().resume(p, runId);
  const driven = await h.runtime().drive(p, runId);
  for (const r of [resumed, driven]) {
    expect(r).toMatchObject({ status: 'failed', seq: events.length });
    expect(r.error).toMatchObject({ step: 'ask', kind: 'step' });
    expect(r.error?.message).toContain(message);
  }
  expect(await h.events(runId)).toHaveLength(events.length);
}

describe('the prompt runs once per attempt', () => {
  it('a re-ask (invalid, then valid): prompt and system calls == ATTEMPT events == 2', async () => {
    await using h = await harness({ script: [invalid, { kind: 'valid' }] });
    const { calls, prepared } = counted('once-reask');
    const r = await h.runtime().start(prepared, { input: {}, runId: 'reask' });
    expect(r.status).toBe('completed');
    expect(await attempts(h, 'reask')).toBe(2);
    expect(calls).toEqual({ prompt: 2, system: 2 });
    expect(h.fake.count).toBe(2);
    // The re-ask sent the system text of the second system call: none ran in between.
    expect(JSON.stringify(h.fake.requests[1]?.body.system)).toContain('system #2');
  });

  it('a transport retry (529, then valid): prompt and system calls == ATTEMPT events == 2', async () => {
    await using h = await harness({
      script: [{ kind: 'status', status: 529 }, { kind: 'valid' }],
    });
    const { calls, prepared } = counted('once-retry');
    const r = await h.runtime({ random: () => 0 }).start(prepared, { input: {}, runId: 'retry' });
    expect(r.status).toBe('completed');
    expect(ofType(await h.events('retry'), 'MODEL_ERROR')).toHaveLength(1);
    expect(await attempts(h, 'retry')).toBe(2);
    expect(calls).toEqual({ prompt: 2, system: 2 });
  });

  it('an llm step inside a route branch: priced, and its prompt runs once per attempt', async () => {
    await using h = await harness({ script: [invalid, { kind: 'valid' }] });
    const { calls, prepared: inner } = counted('inner');
    const p = pipelineOf('once-route', [
      route({ name: 'pick', choose: () => 'only', branches: { only: inner.pipeline.steps } }),
    ]);
    const r = await h.runtime().start(p, { input: {}, runId: 'routed' });
    expect(r.status).toBe('completed');
    expect(await attempts(h, 'routed')).toBe(2);
    expect(calls.prompt).toBe(2);
    expect(r.costUsd).toBeGreaterThan(0);
    // An unpriced model in a branch is refused up front, like one in a top-level step.
    const unpriced = llm({
      name: 'odd',
      model: 'claude-x',
      prompt: () => 'p',
      output: z.object({}),
    });
    expect(() =>
      pipelineOf('unpriced-route', [
        route({ name: 'pick', choose: () => 'a', branches: { a: [unpriced] } }),
      ]),
    ).toThrow(/step 'odd'.*claude-x/);
  });

  it('a call lost with its process (rebuilt in calling): the new attempt runs the prompt once', async () => {
    await using h = await harness({ script: [{ kind: 'valid' }] });
    const { calls, prepared } = counted('once-lost');
    const ac = new AbortController();
    const first = h.runtime({
      hooks: { afterAppend: (_r, _s, type) => type === 'ATTEMPT' && ac.abort() },
    });
    const r1 = await first.start(prepared, { input: {}, runId: 'lost', signal: ac.signal });
    expect(r1).toMatchObject({ status: 'running', stopped: 'aborted' });
    const before = await h.events('lost');
    expect(before.at(-1)?.event.type).toBe('ATTEMPT');
    expect(before.at(-1)?.state.value).toEqual({ ask: 'calling' });
    expect(calls.prompt).toBe(1);
    const r2 = await h.runtime({ random: () => 0 }).resume(prepared, 'lost');
    expect(r2.status).toBe('completed');
    const events = await h.events('lost');
    expect(ofType(events, 'MODEL_ERROR').map((e) => e.event.kind)).toEqual(['lost']);
    expect(await attempts(h, 'lost')).toBe(2);
    expect(calls).toEqual({ prompt: 2, system: 2 });
  });
});

describe('a prompt that throws fails the step cleanly, whatever the phase', () => {
  it('on the first attempt: STEP_FAILED, no ATTEMPT, no call, run failed for good', async () => {
    await using h = await harness();
    const { calls, prepared } = counted('throw-first', () => true);
    const r = await h.runtime().start(prepared, { input: {}, runId: 't1' });
    expect(r.status).toBe('failed');
    expect(r.error).toMatchObject({ step: 'ask', kind: 'step' });
    expect(r.error?.message).toMatch(/step 'ask'.*prompt exploded on call 1/);
    expect(await attempts(h, 't1')).toBe(0);
    expect(h.fake.count).toBe(0);
    await failedForGood(h, prepared, 't1', 'prompt exploded on call 1');
    expect(calls.prompt).toBe(1);
  });

  it('on a later attempt (after a re-ask): the run fails, resume and drive are no-ops', async () => {
    await using h = await harness({ script: [invalid, { kind: 'valid' }] });
    const { calls, prepared } = counted('throw-reask', (n) => n === 2);
    const r = await h.runtime().start(prepared, { input: {}, runId: 't2' });
    expect(r.status).toBe('failed');
    const types = (await h.events('t2')).map((e) => e.event.type);
    expect(types).toEqual(['run.started', 'ATTEMPT', 'MODEL_RESPONSE', 'STEP_FAILED']);
    await failedForGood(h, prepared, 't2', 'prompt exploded on call 2');
    expect(calls.prompt).toBe(2);
    expect(h.fake.count).toBe(1);
  });

  it('on the attempt after a transport retry: the run fails cleanly from the backoff', async () => {
    await using h = await harness({ script: [{ kind: 'status', status: 529 }] });
    const { prepared } = counted('throw-retry', (n) => n === 2);
    const r = await h.runtime({ random: () => 0 }).start(prepared, { input: {}, runId: 't3' });
    expect(r.status).toBe('failed');
    const types = (await h.events('t3')).map((e) => e.event.type);
    expect(types).toEqual(['run.started', 'ATTEMPT', 'MODEL_ERROR', 'TIMER', 'STEP_FAILED']);
    await failedForGood(h, prepared, 't3', 'prompt exploded on call 2');
  });

  it('on the attempt after a lost call: the resumed run fails cleanly', async () => {
    await using h = await harness();
    const { prepared } = counted('throw-lost', (n) => n === 2);
    const ac = new AbortController();
    const first = h.runtime({
      hooks: { afterAppend: (_r, _s, type) => type === 'ATTEMPT' && ac.abort() },
    });
    await first.start(prepared, { input: {}, runId: 't4', signal: ac.signal });
    const r = await h.runtime({ random: () => 0 }).resume(prepared, 't4');
    expect(r.status).toBe('failed');
    const types = (await h.events('t4')).map((e) => e.event.type);
    expect(types).toEqual(['run.started', 'ATTEMPT', 'MODEL_ERROR', 'TIMER', 'STEP_FAILED']);
    await failedForGood(h, prepared, 't4', 'prompt exploded on call 2');
  });
});
