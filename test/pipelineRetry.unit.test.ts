/**
 * A retry policy that cannot work is refused when the pipeline is defined (or prepared), with
 * an error naming the pipeline, the step and the field, instead of mid-run at the first failure.
 */
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { isUsageError } from '../src/errors.js';
import { definePipeline, effect, llm, type Pipeline } from '../src/machines/pipeline.js';
import { prepare } from '../src/runtime/prepare.js';

const ask = (retry?: Record<string, unknown>) =>
  llm({
    name: 'ask',
    model: 'claude-haiku-4-5',
    prompt: () => 'hi',
    output: z.object({}),
    ...(retry !== undefined ? { retry } : {}),
  });

function refusal(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    expect(isUsageError(e), String(e)).toBe(true);
    return (e as Error).message;
  }
  throw new Error('expected a UsageError');
}

describe('retry policies at definition', () => {
  it.each([
    [
      { retry: { maxAttempts: 0 } },
      {},
      /^pipeline 'p': retry.maxAttempts must be an integer >= 1 \(got 0\)/,
    ],
    [
      { retry: { baseMs: -5 } },
      {},
      /^pipeline 'p': retry.baseMs must be a finite number of ms >= 0 \(got -5\)/,
    ],
    [
      {},
      { maxAttempts: 1.5 },
      /^pipeline 'p' step 'ask': retry.maxAttempts must be an integer >= 1 \(got 1.5\)/,
    ],
    [
      {},
      { maxBackoffMs: Number.NaN },
      /^pipeline 'p' step 'ask': retry.maxBackoffMs must be a finite/,
    ],
    [
      {},
      { maxAttempt: 3 },
      /^pipeline 'p' step 'ask': retry.maxAttempt is not a retry setting: use maxAttempts, baseMs/,
    ],
  ])('pipeline %j with step retry %j', (pipelineOpts, stepRetry, message) => {
    const text = refusal(() =>
      definePipeline({
        name: 'p',
        version: '1',
        input: z.object({}),
        steps: [ask(stepRetry)],
        ...pipelineOpts,
      }),
    );
    expect(text).toMatch(message);
  });

  it("an effect's maxAttempts below 1 names the step", () => {
    const text = refusal(() =>
      definePipeline({
        name: 'p',
        version: '1',
        input: z.object({}),
        steps: [effect({ name: 'send', key: () => 'k', run: () => null, maxAttempts: 0 })],
      }),
    );
    expect(text).toMatch(
      /^pipeline 'p' step 'send': maxAttempts must be an integer >= 1 \(got 0\)/,
    );
  });

  it('a valid policy is accepted, and prepare resolves it per step over the pipeline', () => {
    const p = definePipeline({
      name: 'p',
      version: '1',
      input: z.object({}),
      retry: { maxAttempts: 6 },
      steps: [ask({ baseMs: 10 })],
    });
    const prepared = prepare(p);
    expect(prepared.retryOf(p.steps[0] as never)).toEqual({
      maxAttempts: 6,
      baseMs: 10,
      maxBackoffMs: 8_000,
      maxRetryAfterMs: 60_000,
    });
  });

  it('prepare refuses a hand-built pipeline (not from definePipeline) with a bad policy', () => {
    const p = {
      kind: 'pipeline',
      name: 'p',
      version: '1',
      input: z.object({}),
      steps: [{ ...ask(), retry: { baseMs: -1 } }],
    } as unknown as Pipeline;
    expect(refusal(() => prepare(p))).toMatch(/^pipeline 'p' step 'ask': retry.baseMs must be/);
  });
});
