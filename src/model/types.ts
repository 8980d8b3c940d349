/**
 * The Claude boundary port. The runtime only sees {@link ModelClient}: one call, one attempt,
 * an outcome that is either a response or a classified error. No retries happen inside.
 */
import type { Usage } from '../machines/events.js';
import type { BatchClient } from './batchTypes.js';
import type { RateLimitsSeen } from './rateHeaders.js';

/** How structured output is requested: native `output_config.format`, or a forced tool. */
export type StructuredMode = 'native' | 'tool';

/** How long a cached prompt prefix lives: the API's `cache_control.ttl`. */
export type CacheTtl = '5m' | '1h';

/** A content block of a conversation turn: the text, tool calls and tool results agents exchange. */
export type ModelBlock =
  | { type: 'text'; text: string }
  | { type: 'tool_use'; id: string; name: string; input: unknown }
  | { type: 'tool_result'; tool_use_id: string; content: string; is_error?: boolean };

/** One message of the conversation sent to the model. */
export interface ModelMessage {
  role: 'user' | 'assistant';
  /** Plain text, or content blocks (an agent's turns: its tool calls and their results). */
  content: string | ModelBlock[];
}

/** A tool the model may call (an agent step's tools), with the JSON schema of its input. */
export interface ModelTool {
  name: string;
  description: string;
  inputSchema: Record<string, unknown>;
}

/** One model call. */
export interface ModelRequest {
  model: string;
  system?: string;
  messages: ModelMessage[];
  maxTokens: number;
  temperature?: number;
  /** JSON schema of the expected output (from `z.toJSONSchema`). */
  schema: Record<string, unknown>;
  /** Name of the output (tool name in `tool` mode). */
  schemaName: string;
  mode: StructuredMode;
  /** Per-call timeout in ms (the SDK's `timeout`). */
  timeoutMs?: number;
  /** Marks `system` and the first user message as a cached prefix with this lifetime. */
  cache?: CacheTtl;
  /** Tools the model may call (native mode only: the answer still follows `schema`). */
  tools?: ModelTool[];
}

/** An error classified for the retry guard. */
export interface ClassifiedError {
  /** Stable kind: `rate_limit`, `overloaded`, `server`, `timeout`, `connection`, `bad_request`, `auth`, `permission`, `not_found`, `too_large`, `unprocessable`, `spend_limit`, `conflict`, `request_timeout`, `aborted`, `unknown`. */
  kind: string;
  status: number | null;
  retryable: boolean;
  message: string;
  /** The server's requested delay (retry-after-ms / retry-after), uncapped, or null. */
  retryAfterMs: number | null;
  requestId: string | null;
}

/** What one call produced. */
export type ModelOutcome =
  | {
      ok: true;
      requestId: string | null;
      model: string;
      stopReason: string | null;
      usage: Usage;
      /** The text of the answer (native mode), or the JSON of the tool input (tool mode). */
      text: string | null;
      /** The answer's text and tool_use blocks, in order (absent from clients that do not report them). */
      content?: ModelBlock[];
      durationMs: number;
      /** The rate-limit windows the response's headers reported, if any. */
      limits?: RateLimitsSeen;
    }
  | {
      ok: false;
      error: ClassifiedError;
      /** Usage, when the failure still reported some (for example a mid-stream error). */
      usage: Usage | null;
      durationMs: number;
      /** The rate-limit windows the error response's headers reported, if any. */
      limits?: RateLimitsSeen;
    };

/** The port: one call, one HTTP attempt. Must never throw: failures are outcomes. */
export interface ModelClient {
  call(request: ModelRequest, signal: AbortSignal): Promise<ModelOutcome>;
  /**
   * The input tokens `request` would use, from the provider's token counter, or `null` when it
   * could not be counted (the budget then reserves the byte bound). Optional; must never throw.
   */
  countTokens?(request: ModelRequest, signal?: AbortSignal): Promise<number | null>;
  /** The Message Batches API (`batch: true` steps), when the client speaks it. */
  batches?: BatchClient;
  /**
   * Which provider account the calls spend: a short hash of the credential and base URL (never
   * the credential), so shared rate limits are kept per API key. Absent: one shared account.
   */
  readonly accountId?: string;
}

/** USD per million tokens for one model. */
export interface Price {
  input: number;
  cacheWrite5m: number;
  cacheWrite1h: number;
  cacheRead: number;
  output: number;
}

/** Retry policy: how many transport attempts and how long to wait between them. */
export interface RetryPolicy {
  /** Total transport attempts per model call, including the first (default 4). */
  maxAttempts: number;
  /** Backoff base in ms (default 500). */
  baseMs: number;
  /** Backoff cap in ms for computed delays (default 8,000). */
  maxBackoffMs: number;
  /** Cap on a server's retry-after (default 60,000). */
  maxRetryAfterMs: number;
}
