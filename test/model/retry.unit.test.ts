import { describe, expect, it } from 'vitest';
import { isUsageError } from '../../src/errors.js';
import {
  DEFAULT_RETRY_POLICY,
  resolveRetryPolicy,
  retryDelayMs,
  shouldRetry,
} from '../../src/model/retry.js';
import type { ClassifiedError } from '../../src/model/types.js';

const err = (retryAfterMs: number | null, retryable = true): ClassifiedError => ({
  kind: 'rate_limit',
  status: 429,
  retryable,
  message: 'slow down',
  retryAfterMs,
  requestId: null,
});
const policy = DEFAULT_RETRY_POLICY;
const one = () => 1;
const half = () => 0.5;

describe('retryDelayMs', () => {
  it('honours the server retry-after', () => {
    expect(retryDelayMs(err(2_000), 1, policy, half)).toBe(2_000);
    expect(retryDelayMs(err(0), 3, policy, half)).toBe(0);
  });

  it('caps retry-after at maxRetryAfterMs (retry-after: 61 → 60 s)', () => {
    expect(retryDelayMs(err(61_000), 1, policy, half)).toBe(60_000);
    expect(retryDelayMs(err(61_000), 1, { ...policy, maxRetryAfterMs: 5_000 }, half)).toBe(5_000);
  });

  it.each([
    [1, 500],
    [2, 1_000],
    [3, 2_000],
    [4, 4_000],
    [5, 8_000],
    [6, 8_000],
    [30, 8_000],
  ])('backoff ceiling after attempt %i is %i ms', (attempt, ceiling) => {
    expect(retryDelayMs(err(null), attempt, policy, one)).toBe(ceiling);
    expect(retryDelayMs(err(null), attempt, policy, half)).toBe(ceiling / 2);
    expect(retryDelayMs(err(null), attempt, policy, () => 0)).toBe(0);
  });

  it('uses full jitter: any value in [0, ceiling)', () => {
    const delays = [0, 0.1, 0.37, 0.999].map((r) => retryDelayMs(err(null), 3, policy, () => r));
    expect(delays).toEqual([0, 200, 740, 1998]);
  });

  it('clamps a misbehaving random source', () => {
    expect(retryDelayMs(err(null), 1, policy, () => 7)).toBe(500);
    expect(retryDelayMs(err(null), 1, policy, () => -1)).toBe(0);
  });
});

describe('shouldRetry', () => {
  it('retries retryable errors until maxAttempts', () => {
    expect(shouldRetry(err(null), 1, policy)).toBe(true);
    expect(shouldRetry(err(null), 3, policy)).toBe(true);
    expect(shouldRetry(err(null), 4, policy)).toBe(false);
    expect(shouldRetry(err(null, false), 1, policy)).toBe(false);
  });
});

describe('resolveRetryPolicy', () => {
  it('fills defaults', () => {
    expect(resolveRetryPolicy()).toEqual({
      maxAttempts: 4,
      baseMs: 500,
      maxBackoffMs: 8_000,
      maxRetryAfterMs: 60_000,
    });
    expect(resolveRetryPolicy({ maxAttempts: 1, baseMs: 100 })).toMatchObject({
      maxAttempts: 1,
      baseMs: 100,
      maxBackoffMs: 8_000,
    });
  });

  it.each([
    { maxAttempts: 0 },
    { maxAttempts: 2.5 },
    { baseMs: -1 },
    { maxBackoffMs: Number.NaN },
    { maxRetryAfterMs: Infinity },
  ])('refuses %j with a UsageError naming the field', (bad) => {
    let thrown: unknown;
    try {
      resolveRetryPolicy(bad);
    } catch (e) {
      thrown = e;
    }
    expect(isUsageError(thrown)).toBe(true);
    expect((thrown as Error).message).toContain(`retry.${Object.keys(bad)[0]}`);
  });
});
