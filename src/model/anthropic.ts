/**
 * The {@link ModelClient} over the real Anthropic SDK: one `messages.create` per call, SDK
 * retries off (plumbline owns retries), every failure returned as a classified outcome.
 */
import Anthropic from '@anthropic-ai/sdk';
import { jsonSchemaOutputFormat } from '@anthropic-ai/sdk/helpers/json-schema';
import { classifyError } from './classify.js';
import { usageFromApi } from './cost.js';
import type { ClassifiedError, ModelClient, ModelOutcome, ModelRequest } from './types.js';

/** Options of {@link createAnthropicClient}; the API key and base URL default to the SDK's environment variables. */
export interface AnthropicClientOptions {
  /** API key; defaults to `ANTHROPIC_API_KEY` (read by the SDK). Never logged or stored elsewhere. */
  apiKey?: string;
  /** Base URL; defaults to `ANTHROPIC_BASE_URL`, then `https://api.anthropic.com`. */
  baseURL?: string;
  /** Default per-call timeout in ms when the request has no `timeoutMs` (default 10 minutes). */
  timeoutMs?: number;
  /** Clock for `durationMs` and for resolving an HTTP-date `retry-after`. */
  clock?: { now(): number };
}

type CreateParams = Anthropic.MessageCreateParamsNonStreaming;
type Message = Anthropic.Message & { _request_id?: string | null };

const DEFAULT_TIMEOUT_MS = 10 * 60 * 1000;

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

  return {
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
  };
}

/** Builds the Messages API body for a request, in native (`output_config.format`) or tool mode. */
export function buildParams(request: ModelRequest): CreateParams {
  const params: CreateParams = {
    model: request.model,
    max_tokens: request.maxTokens,
    messages: request.messages.map((m) => ({ role: m.role, content: m.content })),
    ...(request.system !== undefined ? { system: request.system } : {}),
    ...(request.temperature !== undefined ? { temperature: request.temperature } : {}),
  };
  if (request.mode === 'tool') {
    params.tools = [
      {
        name: request.schemaName,
        description: `Record the ${request.schemaName} answer.`,
        input_schema: request.schema as Anthropic.Tool.InputSchema,
      },
    ];
    params.tool_choice = { type: 'tool', name: request.schemaName };
    return params;
  }
  // The helper moves constraints the API does not enforce (minLength, maximum, ...) into
  // descriptions; the guard validates them with zod afterwards.
  const format = jsonSchemaOutputFormat(request.schema as { type: 'object' });
  params.output_config = { format: { type: format.type, schema: format.schema } };
  return params;
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
