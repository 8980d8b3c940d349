/**
 * The {@link ModelClient} over the real Anthropic SDK: one `messages.create` per call, SDK
 * retries off (plumbline owns retries), every failure returned as a classified outcome.
 */
import Anthropic from '@anthropic-ai/sdk';
import { classifyError } from './classify.js';
import { usageFromApi } from './cost.js';
import { buildParams, type CreateParams } from './params.js';
import { redactValue, secretValues } from '../runtime/redact.js';
import type { ClassifiedError, ModelClient, ModelOutcome, ModelRequest } from './types.js';

/** Options of {@link createAnthropicClient}; the API key and base URL default to the SDK's environment variables. */
export interface AnthropicClientOptions {
  /**
   * API key; defaults to `ANTHROPIC_API_KEY` (read by the SDK). Never logged or stored
   * elsewhere: an outcome quoting it (a provider's error echoing it) has it scrubbed.
   */
  apiKey?: string;
  /** Base URL; defaults to `ANTHROPIC_BASE_URL`, then `https://api.anthropic.com`. */
  baseURL?: string;
  /** Default per-call timeout in ms when the request has no `timeoutMs` (default 10 minutes). */
  timeoutMs?: number;
  /** Clock for `durationMs` and for resolving an HTTP-date `retry-after`. */
  clock?: { now(): number };
}

type Message = Anthropic.Message & { _request_id?: string | null };

const DEFAULT_TIMEOUT_MS = 10 * 60 * 1000;

// Kept importable from here, where it used to live.
export { buildParams } from './params.js';

/**
 * Creates a {@link ModelClient} over `@anthropic-ai/sdk` with `maxRetries: 0`, so one call is
 * exactly one HTTP request.
 * @example const claude = createAnthropicClient({ timeoutMs: 60_000 });
 */
export function createAnthropicClient(opts: AnthropicClientOptions = {}): ModelClient {
  const clock = opts.clock ?? { now: () => Date.now() };
  const defaultTimeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const sdk = new Anthropic({
    ...(opts.apiKey !== undefined ? { apiKey: opts.apiKey } : {}),
    ...(opts.baseURL !== undefined ? { baseURL: opts.baseURL } : {}),
    maxRetries: 0,
    timeout: wholeMs(defaultTimeoutMs),
  });
  // Nothing that crosses this boundary (an error message, a body) may carry the credential.
  return scrubbed(secretValues([sdk.apiKey, sdk.authToken]), {
    async call(request: ModelRequest, signal: AbortSignal): Promise<ModelOutcome> {
      const started = clock.now();
      const elapsed = () => Math.max(0, clock.now() - started);

      let params: CreateParams;
      try {
        params = buildParams(request);
      } catch (e) {
        return { ok: false, error: localError(e), usage: null, durationMs: elapsed() };
      }

      try {
        // A timeout is always set, so the SDK never refuses a large max_tokens locally.
        const msg: Message = await sdk.messages.create(params, {
          signal,
          timeout: wholeMs(request.timeoutMs ?? defaultTimeoutMs),
        });
        return {
          ok: true,
          requestId: msg._request_id ?? null,
          model: msg.model,
          stopReason: msg.stop_reason ?? null,
          usage: usageFromApi(msg.usage),
          text: answerText(msg, request),
          durationMs: elapsed(),
        };
      } catch (e) {
        return {
          ok: false,
          error: classifyError(e, clock.now()),
          usage: null,
          durationMs: elapsed(),
        };
      }
    },
  });
}

/** The client with every outcome scrubbed of the secrets (a provider's error may echo the key). */
function scrubbed(secrets: readonly string[], client: ModelClient): ModelClient {
  return {
    ...client,
    call: async (request, signal) => redactValue(await client.call(request, signal), secrets),
  };
}

/** The answer text: the forced tool's input as JSON in tool mode, else the text blocks joined. */
function answerText(msg: Message, request: ModelRequest): string | null {
  if (request.mode === 'tool') {
    const use = msg.content.find(
      (block): block is Anthropic.ToolUseBlock =>
        block.type === 'tool_use' && block.name === request.schemaName,
    );
    if (use) return JSON.stringify(use.input);
  }
  const texts = msg.content.filter((block): block is Anthropic.TextBlock => block.type === 'text');
  return texts.length > 0 ? texts.map((block) => block.text).join('') : null;
}

/** A request that could not be built (for example a schema the API cannot take) is a fatal bad request. */
function localError(e: unknown): ClassifiedError {
  const detail = e instanceof Error ? e.message : String(e);
  return {
    kind: 'bad_request',
    status: null,
    retryable: false,
    message: `the request could not be built: ${detail}`,
    retryAfterMs: null,
    requestId: null,
  };
}

/** The SDK wants a positive integer timeout; round a fractional one up. */
function wholeMs(ms: number): number {
  return Math.max(1, Math.ceil(ms));
}
