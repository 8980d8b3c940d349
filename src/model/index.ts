/**
 * The Claude boundary: the port, its Anthropic adapter, and the pure pieces the runtime uses
 * (error classification, retry timing, prices, cost, structured-output judging).
 */
export type {
  ClassifiedError,
  ModelClient,
  ModelMessage,
  ModelOutcome,
  ModelRequest,
  Price,
  RetryPolicy,
  StructuredMode,
} from './types.js';
export { createAnthropicClient, buildParams } from './anthropic.js';
export type { AnthropicClientOptions } from './anthropic.js';
export { classifyError, retryAfterFromHeaders } from './classify.js';
export { DEFAULT_RETRY_POLICY, resolveRetryPolicy, retryDelayMs, shouldRetry } from './retry.js';
export { DEFAULT_PRICES, PRICES_AS_OF, checkPrice, priceFor, stripDateSuffix } from './prices.js';
export {
  REQUEST_OVERHEAD_TOKENS,
  ZERO_USAGE,
  addUsage,
  costUsd,
  estimateInputTokens,
  overrunUsd,
  reservedForCount,
  usageFromApi,
  utf8Bytes,
  worstCaseUsd,
} from './cost.js';
export { reserveInputTokens } from './reserve.js';
export {
  BATCH_PRICE_FACTOR,
  CUSTOM_ID_PATTERN,
  DEFAULT_POLL,
  batchCustomId,
  batchPrice,
  pollDelayMs,
} from './batch.js';
export type { PollSchedule } from './batch.js';
export { outcomeOfAnswer } from './batchTypes.js';
export type {
  BatchAnswer,
  BatchClient,
  BatchItem,
  BatchItemResult,
  BatchStatus,
} from './batchTypes.js';
export type { ApiUsage } from './cost.js';
export { feedbackMessage, formatIssue, judgeOutput, toJsonSchema } from './structured.js';
export type { Judgement } from './structured.js';
