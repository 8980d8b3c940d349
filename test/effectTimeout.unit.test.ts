/**
 * Effect timeouts are checked when the pipeline is defined, naming the pipeline, the step and
 * the field: a timer cannot wait 0, a fraction, or more than 2^31-1 ms (Node fires those at once).
 */
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { isUsageError } from '../src/errors.js';
import {
  DEFAULT_EFFECT_TIMEOUT_MS,
  definePipeline,
  effect,
  effectTimeoutOf,
} from '../src/machines/pipeline.js';

const send = (timeoutMs?: number) =>
  effect({
    name: 'send',
    key: () => 'k',
    run: () => null,
    ...(timeoutMs !== undefined ? { timeoutMs } : {}),
  });

const define = (effectTimeoutMs?: number, stepTimeoutMs?: number) =>
  definePipeline({
    name: 'p',
    version: '1',
    input: z.object({}),
    ...(effectTimeoutMs !== undefined ? { effectTimeoutMs } : {}),
    steps: [send(stepTimeoutMs)],
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

describe('effect timeouts', () => {
  it.each([0, -1, 1.5, NaN, 2 ** 31])('refuses effectTimeoutMs %s naming the pipeline', (v) => {
    expect(refusal(() => define(v))).toBe(
      `pipeline 'p': effectTimeoutMs must be an integer of milliseconds from 1 to 2147483647 (got ${String(v)}): e.g. 30000 for 30 s`,
    );
  });

  it.each([0, 2.5, Infinity])("refuses an effect's timeoutMs %s naming the step", (v) => {
    expect(refusal(() => define(undefined, v))).toMatch(
      /^pipeline 'p' step 'send': timeoutMs must be an integer of milliseconds from 1 to 2147483647/,
    );
  });

  it("takes the effect's own, else the pipeline's, else 5 minutes", () => {
    const own = define(1_000, 200);
    expect(effectTimeoutOf(own.steps[0] as never, own)).toBe(200);
    const pipelineWide = define(1_000);
    expect(effectTimeoutOf(pipelineWide.steps[0] as never, pipelineWide)).toBe(1_000);
    const neither = define();
    expect(effectTimeoutOf(neither.steps[0] as never, neither)).toBe(DEFAULT_EFFECT_TIMEOUT_MS);
    expect(DEFAULT_EFFECT_TIMEOUT_MS).toBe(300_000);
  });
});
