/**
 * The {@link ModelClient} over the real Anthropic SDK: one `messages.create` per call, SDK
 * retries off (plumbline owns retries), every failure returned as a classified outcome; input
 * tokens counted with `messages.countTokens` (cached per request) for the budget.
 */
import { createHash } from 'node:crypto';
import Anthropic from '@anthropic-ai/sdk';
import { anthropicBatches } from './anthropicBatch.js';
import type { BatchClient } from './batchTypes.js';
import { APIError } from '@anthropic-ai/sdk/core/error';
import { classifyError } from './classify.js';
import { accountIdOf } from './account.js';
import { rateLimitsFromHeaders } from './rateHeaders.js';
import { usageFromApi } from './cost.js';
import { Lru } from './lru.js';
import { sdkSpansMayMatter } from './sdkSpans.js';
import { fetchWithoutCopy } from './sdkFetch.js';
import { httpFetch } from './httpFetch.js';
import { buildParams, countParams, type CreateParams } from './params.js';
import { redactValue, secretValues } from '../runtime/redact.js';
import type {
  ClassifiedError,
  ModelBlock,
  ModelClient,
  ModelOutcome,
  ModelRequest,
} from './types.js';

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
  /**
   * Count input tokens with `messages.countTokens` before each call, so the budget reserves the
   * count instead of the byte bound. Default: on against `https://api.anthropic.com`, off against
   * any other base URL (a proxy or a fake may not serve the count endpoint).
   */
  countTokens?: boolean;
  /** How many distinct requests' counts are kept (default 1,000); a retry or re-ask of the same request is not counted again. */
  tokenCountCacheSize?: number;
  /**
   * The `fetch` to send requests with instead of plumbline's node:http transport: for a proxy or
   * a dispatcher set with undici's `setGlobalDispatcher`, which that transport does not use.
   * @example createAnthropicClient({ fetch: globalThis.fetch })
   */
  fetch?: typeof fetch;
}

type Message = Anthropic.Message & { _request_id?: string | null };

const DEFAULT_TIMEOUT_MS = 10 * 60 * 1000;
/** A count that takes longer than this is abandoned and the byte bound reserved instead. */
const COUNT_TIMEOUT_MS = 30_000;
const DEFAULT_COUNT_CACHE_SIZE = 1_000;
const ANTHROPIC_API = 'https://api.anthropic.com';

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
    fetch: sdkFetch(opts.fetch),
  });
  // The same client (same auth, options and connections) with the SDK's call spans off, used
  // while they could not record or propagate anything anyway (see sdkSpans.ts).
  const untraced = sdk.withOptions({ openTelemetry: false });
  const client = (): Anthropic => (sdkSpansMayMatter() ? sdk : untraced);
  const counting = opts.countTokens ?? sdk.baseURL.replace(/\/+$/, '') === ANTHROPIC_API;
  const counts = new Lru<Promise<number | null>>(
    opts.tokenCountCacheSize ?? DEFAULT_COUNT_CACHE_SIZE,
  );

  /** Counts with the API once per distinct body: concurrent and later asks share the answer. */
  const countTokens = (request: ModelRequest, signal?: AbortSignal): Promise<number | null> => {
    let params: Anthropic.MessageCountTokensParams;
    try {
      params = countParams(request);
    } catch {
      return Promise.resolve(null);
    }
    const key = createHash('sha256').update(JSON.stringify(params)).digest('hex');
    const cached = counts.get(key);
    if (cached !== undefined) return cached;
    const timeout = Math.min(COUNT_TIMEOUT_MS, wholeMs(request.timeoutMs ?? defaultTimeoutMs));
    const counted: Promise<number | null> = client()
      .messages.countTokens(params, { ...(signal !== undefined ? { signal } : {}), timeout })
      .then(
        (r) =>
          Number.isSafeInteger(r.input_tokens) && r.input_tokens >= 0 ? r.input_tokens : null,
        () => null,
      )
      .then((n) => {
        // A failure is not cached: the next ask tries again.
        if (n === null) counts.deleteIf(key, counted);
        return n;
      });
    counts.set(key, counted);
    return counted;
  };

  // Nothing that crosses this boundary (an error message, a body) may carry the credential.
  return scrubbed(secretValues([sdk.apiKey, sdk.authToken]), {
    ...(counting ? { countTokens } : {}),
    batches: anthropicBatches(sdk, clock, wholeMs(defaultTimeoutMs)),
    accountId: accountIdOf(sdk.apiKey ?? sdk.authToken ?? null, sdk.baseURL),
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
        const { data, response, request_id } = await client()
          .messages.create(params, {
            signal,
            timeout: wholeMs(request.timeoutMs ?? defaultTimeoutMs),
          })
          .withResponse();
        const msg: Message = data;
        const limits = rateLimitsFromHeaders(response.headers);
        return {
          ok: true,
          requestId: request_id ?? msg._request_id ?? null,
          model: msg.model,
          stopReason: msg.stop_reason ?? null,
          usage: usageFromApi(msg.usage),
          text: answerText(msg, request),
          content: answerBlocks(msg),
          durationMs: elapsed(),
          ...(limits !== null ? { limits } : {}),
        };
      } catch (e) {
        const limits = e instanceof APIError ? rateLimitsFromHeaders(e.headers) : null;
        return {
          ok: false,
          error: classifyError(e, clock.now()),
          usage: null,
          durationMs: elapsed(),
          ...(limits !== null ? { limits } : {}),
        };
      }
    },
  });
}

/** The client with every outcome scrubbed of the secrets (a provider's error may echo the key). */
function scrubbed(secrets: readonly string[], client: ModelClient): ModelClient {
  const b = client.batches;
  return {
    ...client,
    call: async (request, signal) => redactValue(await client.call(request, signal), secrets),
    ...(b !== undefined ? { batches: scrubbedBatches(secrets, b) } : {}),
  };
}

/** The batch port with every outcome scrubbed of the secrets, like a call's. */
function scrubbedBatches(secrets: readonly string[], b: BatchClient): BatchClient {
  return {
    submit: async (items, signal) => redactValue(await b.submit(items, signal), secrets),
    status: async (id, signal) => redactValue(await b.status(id, signal), secrets),
    cancel: async (id, signal) => redactValue(await b.cancel(id, signal), secrets),
    results: async (id, signal) => {
      const r = await b.results(id, signal);
      if (!r.ok) return redactValue(r, secrets);
      return {
        ok: true,
        results: new Map([...r.results].map(([k, v]) => [k, redactValue(v, secrets)])),
      };
    },
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

/** The answer's text and tool_use blocks (other kinds, such as thinking, are not kept). */
function answerBlocks(msg: Message): ModelBlock[] {
  const out: ModelBlock[] = [];
  for (const b of msg.content) {
    if (b.type === 'text') out.push({ type: 'text', text: b.text });
    else if (b.type === 'tool_use')
      out.push({ type: 'tool_use', id: b.id, name: b.name, input: b.input });
  }
  return out;
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

/**
 * The transport the SDK is given: node:http(s) (see httpFetch.ts), with the platform fetch for
 * what it does not take; a caller's own fetch instead, when given.
 */
function sdkFetch(given: typeof fetch | undefined): typeof fetch {
  if (given !== undefined) return fetchWithoutCopy(given);
  const platform = globalThis.fetch;
  return httpFetch(fetchWithoutCopy(platform), platform);
}

/** The SDK wants a positive integer timeout; round a fractional one up. */
function wholeMs(ms: number): number {
  return Math.max(1, Math.ceil(ms));
}
