/**
 * Message Batches settings of the CLI's runtime from `PLUMBLINE_BATCH` (JSON), e.g.
 * `{"maxSize":500,"maxDelayMs":2000,"poll":{"minMs":10000,"maxMs":120000}}`.
 */
import { z } from 'zod';
import { UsageError } from '../errors.js';
import { formatIssue } from '../model/structured.js';
import type { BatcherOptions } from '../runtime/batcher.js';

const Config = z.strictObject({
  maxSize: z.number().int().min(1).max(100_000).optional(),
  maxDelayMs: z.number().min(0).optional(),
  poll: z
    .strictObject({
      minMs: z.number().positive().optional(),
      maxMs: z.number().positive().optional(),
    })
    .optional(),
});

const EXAMPLE = '{"maxSize":500,"maxDelayMs":2000,"poll":{"minMs":10000,"maxMs":120000}}';

/** The batcher options `PLUMBLINE_BATCH` sets (none: the defaults); a UsageError naming the fix. */
export function batchConfigFromEnv(raw = process.env.PLUMBLINE_BATCH): BatcherOptions {
  if (raw === undefined || raw === '') return {};
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    throw new UsageError(`PLUMBLINE_BATCH is not JSON: use e.g. ${EXAMPLE}`);
  }
  const parsed = Config.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new UsageError(
      `PLUMBLINE_BATCH: ${issue !== undefined ? formatIssue(issue) : 'invalid'}; use e.g. ${EXAMPLE}`,
    );
  }
  const { maxSize, maxDelayMs, poll } = parsed.data;
  return {
    ...(maxSize !== undefined ? { maxSize } : {}),
    ...(maxDelayMs !== undefined ? { maxDelayMs } : {}),
    ...(poll !== undefined
      ? {
          poll: {
            ...(poll.minMs !== undefined ? { minMs: poll.minMs } : {}),
            ...(poll.maxMs !== undefined ? { maxMs: poll.maxMs } : {}),
          },
        }
      : {}),
  };
}
