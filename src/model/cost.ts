/**
 * Token usage and its cost: maps the API's usage object, prices it, and bounds a request's
 * worst case before it is sent. Pure: no I/O (counting with the API is the adapter's job).
 */
import type { Usage } from '../machines/events.js';
import { buildParams } from './params.js';
import type { ModelRequest, Price } from './types.js';

/** The usage object of a Messages API response, as it comes over the wire (fields may be null or absent). */
export interface ApiUsage {
  input_tokens: number;
  output_tokens: number;
  cache_creation_input_tokens?: number | null;
  cache_read_input_tokens?: number | null;
  cache_creation?: {
    ephemeral_5m_input_tokens?: number | null;
    ephemeral_1h_input_tokens?: number | null;
  } | null;
}

/**
 * Tokens added to every input bound for what the API adds to a request and does not show:
 * the hidden system prompt that enables tools or structured output (the largest published one
 * is 530 tokens, Claude 3 Opus with `tool_choice: auto`) and turn markers. Twice that, rounded.
 */
export const REQUEST_OVERHEAD_TOKENS = 1_024;
/** Margin added to a counted input, as a fraction of the count (the counter is itself an estimate). */
const COUNT_MARGIN_RATIO = 0.05;
/** Margin added to a counted input, in tokens. */
const COUNT_MARGIN_TOKENS = 16;

/**
 * The cost in USD of `usage` at `price` (USD per million tokens), rounded to 1e-9.
 * @example costUsd({ inputTokens: 1_000_000, outputTokens: 0, cacheReadTokens: 0, cacheWrite5mTokens: 0, cacheWrite1hTokens: 0 }, price) // price.input
 */
export function costUsd(usage: Usage, price: Price): number {
  const microUsd =
    usage.inputTokens * price.input +
    usage.cacheWrite5mTokens * price.cacheWrite5m +
    usage.cacheWrite1hTokens * price.cacheWrite1h +
    usage.cacheReadTokens * price.cacheRead +
    usage.outputTokens * price.output;
  return roundUsd(microUsd / 1_000_000);
}

/**
 * Maps the API's usage to {@link Usage}. Cache writes come from the `cache_creation` breakdown;
 * tokens of `cache_creation_input_tokens` the breakdown does not account for (or all of them,
 * when it is absent) count as 5-minute writes, so each token is counted exactly once.
 */
export function usageFromApi(api: ApiUsage | null | undefined): Usage {
  const total = count(api?.cache_creation_input_tokens);
  const breakdown = api?.cache_creation ?? null;
  const write1h = count(breakdown?.ephemeral_1h_input_tokens);
  const write5mListed = count(breakdown?.ephemeral_5m_input_tokens);
  const unlisted = Math.max(0, total - write1h - write5mListed);
  return {
    inputTokens: count(api?.input_tokens),
    outputTokens: count(api?.output_tokens),
    cacheReadTokens: count(api?.cache_read_input_tokens),
    cacheWrite5mTokens: write5mListed + unlisted,
    cacheWrite1hTokens: write1h,
  };
}

/**
 * An upper bound on a request's input tokens with no tokenizer at hand: the UTF-8 byte length of
 * the whole body that is sent (system, messages, the output-format schema or tool definition, as
 * JSON) plus {@link REQUEST_OVERHEAD_TOKENS}. A token covers at least one byte of text, and
 * JSON escaping only adds bytes, so the bound holds for NUL, control characters, CJK and emoji.
 */
export function estimateInputTokens(request: ModelRequest): number {
  let body: string;
  try {
    body = JSON.stringify(buildParams(request));
  } catch {
    // A request the adapter cannot build is never sent; measure what was asked anyway.
    body = JSON.stringify(request);
  }
  return utf8Bytes(body) + REQUEST_OVERHEAD_TOKENS;
}

/**
 * The input tokens to reserve for a request whose input the API's counter put at `counted`:
 * the count plus a small margin (5 % and 16 tokens).
 */
export function reservedForCount(counted: number): number {
  return Math.ceil(counted * (1 + COUNT_MARGIN_RATIO)) + COUNT_MARGIN_TOKENS;
}

/**
 * The most a request can cost: `inputTokens` (by default the byte bound of
 * {@link estimateInputTokens}) at the input price plus `maxTokens` of output at the output
 * price (the cache-write price when the request caches a prefix), in USD rounded to 1e-9.
 */
export function worstCaseUsd(
  request: ModelRequest,
  price: Price,
  inputTokens: number = estimateInputTokens(request),
): number {
  // A cached prefix may be written on this call, at the write price (above the input price).
  const inputPrice =
    request.cache === '1h'
      ? Math.max(price.input, price.cacheWrite1h)
      : request.cache === '5m'
        ? Math.max(price.input, price.cacheWrite5m)
        : price.input;
  const micro = inputTokens * inputPrice + request.maxTokens * price.output;
  return roundUsd(micro / 1_000_000);
}

/**
 * How far a call's actual cost went over what it reserved, in USD (0 when within). Above 0 it
 * should be reported: the reservation was not a bound.
 */
export function overrunUsd(reservedUsd: number, actualUsd: number): number {
  return Math.max(0, roundUsd(actualUsd - reservedUsd));
}

/**
 * The UTF-8 length of `s` in bytes (a lone surrogate counts as the 3 bytes of U+FFFD, as it is
 * sent). Node's own count: ≈ 20× faster than a loop over the characters in JavaScript (≈ 3 µs
 * per KiB of request body, counted for each call's reservation).
 */
export function utf8Bytes(s: string): number {
  return Buffer.byteLength(s, 'utf8');
}

/** Adds two usages field by field (for totals over attempts). */
export function addUsage(a: Usage, b: Usage): Usage {
  return {
    inputTokens: a.inputTokens + b.inputTokens,
    outputTokens: a.outputTokens + b.outputTokens,
    cacheReadTokens: a.cacheReadTokens + b.cacheReadTokens,
    cacheWrite5mTokens: a.cacheWrite5mTokens + b.cacheWrite5mTokens,
    cacheWrite1hTokens: a.cacheWrite1hTokens + b.cacheWrite1hTokens,
  };
}

/** Usage with every count at zero. */
export const ZERO_USAGE: Readonly<Usage> = Object.freeze({
  inputTokens: 0,
  outputTokens: 0,
  cacheReadTokens: 0,
  cacheWrite5mTokens: 0,
  cacheWrite1hTokens: 0,
});

/** Rounds to 1e-9 USD, removing float noise such as 0.30000000000000004. */
function roundUsd(usd: number): number {
  return Math.round(usd * 1e9) / 1e9;
}

function count(value: number | null | undefined): number {
  return typeof value === 'number' && Number.isFinite(value) && value > 0 ? Math.floor(value) : 0;
}
