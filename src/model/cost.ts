/**
 * Token usage and its cost: maps the API's usage object, prices it, and bounds a request's
 * worst case before it is sent. Pure.
 */
import type { Usage } from '../machines/events.js';
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

/** Fixed tokens added to every estimate for the request envelope and role markers. */
const REQUEST_OVERHEAD_TOKENS = 50;
/** Tokens added per message for its role and separators. */
const MESSAGE_OVERHEAD_TOKENS = 8;
/** Characters per token assumed by the estimate; real English text is nearer 4, so this errs high. */
const CHARS_PER_TOKEN = 3;

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
 * A conservative local estimate of a request's input tokens: `ceil(chars / 3)` over the
 * system prompt, the messages and the JSON schema, plus a fixed overhead per request and message.
 */
export function estimateInputTokens(request: ModelRequest): number {
  let chars = (request.system ?? '').length + JSON.stringify(request.schema).length;
  chars += request.schemaName.length;
  for (const message of request.messages) chars += message.content.length;
  return (
    Math.ceil(chars / CHARS_PER_TOKEN) +
    REQUEST_OVERHEAD_TOKENS +
    MESSAGE_OVERHEAD_TOKENS * request.messages.length
  );
}

/**
 * The most a request can cost: its estimated input at the input price plus `maxTokens`
 * of output at the output price, in USD rounded to 1e-9.
 */
export function worstCaseUsd(request: ModelRequest, price: Price): number {
  const micro = estimateInputTokens(request) * price.input + request.maxTokens * price.output;
  return roundUsd(micro / 1_000_000);
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
