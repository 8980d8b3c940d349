/**
 * How many input tokens a call reserves against the budget: the provider's count plus a margin
 * when the client can count, else the UTF-8 byte bound of the request.
 */
import { estimateInputTokens, reservedForCount } from './cost.js';
import type { ModelClient, ModelRequest } from './types.js';

/**
 * The input tokens to reserve for `request`. Never throws: a missing client, a client without
 * `countTokens`, or a count that fails or is not a whole non-negative number all give the
 * byte bound.
 * @example const inputTokens = await reserveInputTokens(() => claude, request, signal);
 */
export async function reserveInputTokens(
  client: () => ModelClient,
  request: ModelRequest,
  signal?: AbortSignal,
): Promise<number> {
  let counted: number | null = null;
  try {
    const model = client();
    if (model.countTokens !== undefined) counted = await model.countTokens(request, signal);
  } catch {
    // No model configured, or a client that broke its never-throw promise: bound instead.
    counted = null;
  }
  if (counted === null || !Number.isSafeInteger(counted) || counted < 0) {
    return estimateInputTokens(request);
  }
  return reservedForCount(counted);
}
