/**
 * The CLI's model client, with `@anthropic-ai/sdk` imported on the first call rather than when
 * a verb starts: verbs that read the store (`runs`, `cost`, `replay`) never load it (issue 14).
 */
import type { BatchClient } from '../model/batchTypes.js';
import { accountIdOf } from '../model/account.js';
import type { ModelClient, ModelRequest } from '../model/types.js';

/** Settings for {@link createAnthropicClient}, read from the environment by the caller. */
export interface ModelSettings {
  apiKey: string;
  baseURL?: string;
}

/**
 * A {@link ModelClient} that creates the Anthropic client on first use; the same calls, token
 * counts (`null`, the byte bound, where the real client does not count) and errors.
 */
export function lazyAnthropicClient(settings: ModelSettings): ModelClient {
  let client: Promise<ModelClient> | undefined;
  const load = (): Promise<ModelClient> =>
    (client ??= import('../model/anthropic.js').then((m) => m.createAnthropicClient(settings)));
  return {
    // As the real client names it (the SDK reads ANTHROPIC_BASE_URL when no base URL is given).
    accountId: accountIdOf(settings.apiKey, settings.baseURL ?? process.env.ANTHROPIC_BASE_URL),
    call: async (request, signal) => (await load()).call(request, signal),
    countTokens: async (request: ModelRequest, signal?: AbortSignal) => {
      try {
        const real = await load();
        return real.countTokens !== undefined ? await real.countTokens(request, signal) : null;
      } catch {
        // Never throws (the ModelClient contract): the budget reserves the byte bound.
        return null;
      }
    },
    batches: lazyBatches(async () => (await load()).batches),
  };
}

/** The Message Batches port, loaded with the client on first use (the real client has one). */
function lazyBatches(load: () => Promise<BatchClient | undefined>): BatchClient {
  const real = async (): Promise<BatchClient> => {
    const b = await load();
    if (b === undefined) throw new Error('internal: the Anthropic client has no batch port');
    return b;
  };
  return {
    submit: async (items, signal) => (await real()).submit(items, signal),
    status: async (id, signal) => (await real()).status(id, signal),
    cancel: async (id, signal) => (await real()).cancel(id, signal),
    results: async (id, signal) => (await real()).results(id, signal),
  };
}
