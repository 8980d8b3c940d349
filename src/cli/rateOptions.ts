/**
 * Shared rate limits from the command line: `--rate-limits`, `--rpm`, `--itpm`, `--otpm` on
 * `worker`, and `PLUMBLINE_RATE_LIMITS` for every verb that drives runs (`on`, or JSON levels
 * by model such as `{"*":{"requests":50}}`). Light: no runtime import.
 */
import type { Command } from 'commander';
import { UsageError } from '../errors.js';
import type { RateLimitOptions } from '../runtime/rateGate.js';
import { positiveInteger } from './options.js';

/** The rate-limit flags a verb's options carry. */
export interface RateFlags {
  rateLimits?: boolean;
  rpm?: number;
  itpm?: number;
  otpm?: number;
}

/** Adds the rate-limit flags to a verb. */
export function addRateOptions(cmd: Command): Command {
  return cmd
    .option(
      '--rate-limits',
      "pace model calls by the provider's rate limits, shared through the store and learned from the anthropic-ratelimit-* headers (also PLUMBLINE_RATE_LIMITS=on)",
    )
    .option(
      '--rpm <n>',
      'at most this many requests per minute per model (implies --rate-limits)',
      positiveInteger('--rpm'),
    )
    .option(
      '--itpm <n>',
      'at most this many input tokens per minute per model (implies --rate-limits)',
      positiveInteger('--itpm'),
    )
    .option(
      '--otpm <n>',
      'at most this many output tokens per minute per model (implies --rate-limits)',
      positiveInteger('--otpm'),
    );
}

/** The runtime's rate-limit options from the flags, then `PLUMBLINE_RATE_LIMITS`; undefined: off. */
export function rateLimitsFrom(flags: RateFlags = {}): RateLimitOptions | undefined {
  const levels = {
    ...(flags.rpm !== undefined ? { requests: flags.rpm } : {}),
    ...(flags.itpm !== undefined ? { inputTokens: flags.itpm } : {}),
    ...(flags.otpm !== undefined ? { outputTokens: flags.otpm } : {}),
  };
  if (Object.keys(levels).length > 0) return { levels: { '*': levels } };
  if (flags.rateLimits === true) return {};
  return rateLimitsFromEnv();
}

function rateLimitsFromEnv(): RateLimitOptions | undefined {
  const raw = (process.env.PLUMBLINE_RATE_LIMITS ?? '').trim();
  if (raw === '' || raw === 'off' || raw === '0') return undefined;
  if (raw === 'on' || raw === '1') return {};
  let levels: unknown;
  try {
    levels = JSON.parse(raw) as unknown;
  } catch {
    levels = null;
  }
  const ok =
    levels !== null &&
    typeof levels === 'object' &&
    Object.values(levels).every(
      (l) =>
        l !== null &&
        typeof l === 'object' &&
        Object.entries(l as object).every(
          ([k, v]) =>
            ['requests', 'inputTokens', 'outputTokens'].includes(k) &&
            typeof v === 'number' &&
            v > 0,
        ),
    );
  if (!ok)
    throw new UsageError(
      'PLUMBLINE_RATE_LIMITS must be on, off, or JSON levels by model, e.g. {"*":{"requests":50,"inputTokens":40000}}',
    );
  return { levels: levels as RateLimitOptions['levels'] };
}
