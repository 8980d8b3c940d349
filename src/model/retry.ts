/**
 * Retry timing for model calls: honour the server's retry-after (capped), otherwise
 * exponential backoff with full jitter. Pure: the random source is injected.
 */
import { UsageError } from '../errors.js';
import type { ClassifiedError, RetryPolicy } from './types.js';

/** The default policy: 4 attempts, 500 ms base, 8 s backoff cap, 60 s retry-after cap. */
export const DEFAULT_RETRY_POLICY: Readonly<RetryPolicy> = Object.freeze({
  maxAttempts: 4,
  baseMs: 500,
  maxBackoffMs: 8_000,
  maxRetryAfterMs: 60_000,
});

/**
 * Fills a partial policy from {@link DEFAULT_RETRY_POLICY} and checks it, throwing a
 * {@link UsageError} that names the bad field.
 * @example resolveRetryPolicy({ maxAttempts: 6 })
 */
export function resolveRetryPolicy(partial: Partial<RetryPolicy> = {}): RetryPolicy {
  const known = Object.keys(DEFAULT_RETRY_POLICY);
  for (const key of Object.keys(partial)) {
    if (!known.includes(key))
      throw new UsageError(`retry.${key} is not a retry setting: use ${known.join(', ')}`);
  }
  const policy: RetryPolicy = { ...DEFAULT_RETRY_POLICY };
  for (const key of known as (keyof RetryPolicy)[]) {
    const value = partial[key];
    if (value !== undefined) policy[key] = value;
  }
  if (!Number.isInteger(policy.maxAttempts) || policy.maxAttempts < 1) {
    throw new UsageError(
      `retry.maxAttempts must be an integer >= 1 (got ${String(policy.maxAttempts)}): use 1 to disable retries`,
    );
  }
  for (const key of ['baseMs', 'maxBackoffMs', 'maxRetryAfterMs'] as const) {
    const value = policy[key];
    if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
      throw new UsageError(
        `retry.${key} must be a finite number of ms >= 0 (got ${String(value)})`,
      );
    }
  }
  return policy;
}

/**
 * How long to wait after failed attempt number `attempt` (1-based) before the next one:
 * the server's retry-after capped at `maxRetryAfterMs`, else
 * `random() * min(maxBackoffMs, baseMs * 2^(attempt-1))` (full jitter), in whole ms.
 * @example retryDelayMs(err, 1, DEFAULT_RETRY_POLICY, Math.random)
 */
export function retryDelayMs(
  error: ClassifiedError,
  attempt: number,
  policy: RetryPolicy,
  random: () => number,
): number {
  if (error.retryAfterMs !== null && Number.isFinite(error.retryAfterMs)) {
    return Math.min(Math.max(0, Math.ceil(error.retryAfterMs)), policy.maxRetryAfterMs);
  }
  const exponent = Math.max(0, Math.floor(attempt) - 1);
  const ceiling = Math.min(policy.maxBackoffMs, policy.baseMs * 2 ** exponent);
  const r = Math.min(Math.max(random(), 0), 1);
  return Math.floor(r * ceiling);
}

/** True when the error is retryable and attempt number `attempt` (1-based) was not the last allowed. */
export function shouldRetry(error: ClassifiedError, attempt: number, policy: RetryPolicy): boolean {
  return error.retryable && attempt < policy.maxAttempts;
}
