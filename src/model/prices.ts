/**
 * The dated price table (USD per million tokens) and the lookup that refuses unpriced models.
 * Pure. Rows are the verified ones from the public pricing page; never guess a price.
 */
import { UsageError } from '../errors.js';
import type { Price } from './types.js';

/** The date the rows of {@link DEFAULT_PRICES} were read from the public pricing page. */
export const PRICES_AS_OF = '2026-11-27';

function row(
  input: number,
  cacheWrite5m: number,
  cacheWrite1h: number,
  cacheRead: number,
  output: number,
): Price {
  return Object.freeze({ input, cacheWrite5m, cacheWrite1h, cacheRead, output });
}

const OPUS_4_5_TO_4_8 = row(5, 6.25, 10, 0.5, 25);
const OPUS_4_AND_4_1 = row(15, 18.75, 30, 1.5, 75);
const SONNET_4_TO_4_6 = row(3, 3.75, 6, 0.3, 15);
const HAIKU_4_5 = row(1, 1.25, 2, 0.1, 5);
// As read: the cache-read price is 0.05× input here, not the usual 0.1×; recheck on the next review.
const OPUS_5_5 = row(4, 5, 8, 0.2, 20);

/**
 * Prices by model id without a date suffix (`claude-sonnet-4-5-20250929` is found as
 * `claude-sonnet-4-5`). Models absent here (Sonnet 5, Haiku 5.5, ...) must be priced by the user.
 */
export const DEFAULT_PRICES: Readonly<Record<string, Price>> = Object.freeze({
  'claude-opus-4-8': OPUS_4_5_TO_4_8,
  'claude-opus-4-7': OPUS_4_5_TO_4_8,
  'claude-opus-4-6': OPUS_4_5_TO_4_8,
  'claude-opus-4-5': OPUS_4_5_TO_4_8,
  'claude-opus-4-1': OPUS_4_AND_4_1,
  'claude-opus-4-0': OPUS_4_AND_4_1,
  'claude-opus-4': OPUS_4_AND_4_1,
  'claude-sonnet-4-6': SONNET_4_TO_4_6,
  'claude-sonnet-4-5': SONNET_4_TO_4_6,
  'claude-sonnet-4-0': SONNET_4_TO_4_6,
  'claude-sonnet-4': SONNET_4_TO_4_6,
  'claude-haiku-4-5': HAIKU_4_5,
  'claude-opus-5-5': OPUS_5_5,
});

/** Removes a trailing `-YYYYMMDD` snapshot date from a model id. */
export function stripDateSuffix(model: string): string {
  return model.replace(/-\d{8}$/, '');
}

/**
 * The price of `model`: `overrides` first, then {@link DEFAULT_PRICES}, each by exact id and
 * then by the id without its date suffix. Throws a {@link UsageError} for an unpriced model.
 * @example priceFor('claude-sonnet-4-5-20250929').output // 15
 */
export function priceFor(model: string, overrides?: Readonly<Record<string, Price>>): Price {
  const bare = stripDateSuffix(model);
  for (const table of [overrides ?? {}, DEFAULT_PRICES]) {
    const found = own(table, model) ?? own(table, bare);
    if (found) return checkPrice(model, found);
  }
  throw new UsageError(
    `unknown model '${model}': add it to prices (definePipeline({ prices: { '${model}': {...} } })) ` +
      'or pass `price` on the step',
  );
}

/** Checks that every field of a price is a finite number >= 0, naming the model and field otherwise. */
export function checkPrice(model: string, price: Price): Price {
  for (const key of ['input', 'cacheWrite5m', 'cacheWrite1h', 'cacheRead', 'output'] as const) {
    const value = price[key];
    if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
      throw new UsageError(
        `price of '${model}' has ${key} = ${String(value)}: give USD per million tokens as a number >= 0 ` +
          '({ input, cacheWrite5m, cacheWrite1h, cacheRead, output })',
      );
    }
  }
  return price;
}

function own(table: Readonly<Record<string, Price>>, key: string): Price | undefined {
  return Object.prototype.hasOwnProperty.call(table, key) ? table[key] : undefined;
}
