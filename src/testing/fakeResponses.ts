/**
 * The bodies the fake Claude answers with: its scripted actions and the Messages API JSON each
 * one produces. Pure.
 */
import type { ApiUsage } from '../model/cost.js';
import { sampleFromSchema } from './schemaSample.js';
import type { JsonSchema } from './schemaSample.js';

/** Usage reported by the fake, as the API spells it. */
export type FakeUsage = Partial<ApiUsage>;

/** What the fake does with one `POST /v1/messages`. */
export type FakeAction =
  | { kind: 'valid'; usage?: FakeUsage }
  | { kind: 'json'; value: unknown; usage?: FakeUsage }
  | { kind: 'text'; text: string; usage?: FakeUsage }
  | {
      kind: 'status';
      status: number;
      headers?: Record<string, string>;
      /** The whole error body; by default `{ type: 'error', error: { type, message, details? } }`. */
      body?: unknown;
      errorType?: string;
      /** Sent as `error.details.error_code`, e.g. `enforced_spend_limit_reached`. */
      errorCode?: string;
      message?: string;
    }
  | { kind: 'drop' }
  | { kind: 'delay'; ms: number; then: FakeAction }
  | { kind: 'refusal'; text?: string; usage?: FakeUsage }
  | { kind: 'max_tokens'; usage?: FakeUsage }
  /**
   * Tool calls (an agent's turn): `tool_use` blocks (ids `toolu_fake_<n>_<i>` unless given)
   * after an optional text, with `stop_reason: tool_use`.
   */
  | {
      kind: 'tool_use';
      calls: Array<{ name: string; input: unknown; id?: string }>;
      text?: string;
      usage?: FakeUsage;
    };

/** Usage reported when neither the fake nor the action sets it. */
export const DEFAULT_USAGE: ApiUsage = {
  input_tokens: 100,
  output_tokens: 50,
  cache_creation_input_tokens: 0,
  cache_read_input_tokens: 0,
  cache_creation: { ephemeral_5m_input_tokens: 0, ephemeral_1h_input_tokens: 0 },
};

const ERROR_TYPES: Readonly<Record<number, string>> = {
  400: 'invalid_request_error',
  401: 'authentication_error',
  402: 'billing_error',
  403: 'permission_error',
  404: 'not_found_error',
  408: 'timeout_error',
  409: 'conflict_error',
  413: 'request_too_large',
  429: 'rate_limit_error',
  529: 'overloaded_error',
};

/** The API error body for a `status` action: `{ type: 'error', error: { type, message, details? } }`. */
export function errorResponseBody(
  action: Extract<FakeAction, { kind: 'status' }>,
  id: string,
): unknown {
  if (action.body !== undefined) return action.body;
  const type =
    action.errorType ??
    ERROR_TYPES[action.status] ??
    (action.status >= 500 ? 'api_error' : 'invalid_request_error');
  return {
    type: 'error',
    error: {
      type,
      message: action.message ?? `fake ${action.status} ${type}`,
      ...(action.errorCode !== undefined ? { details: { error_code: action.errorCode } } : {}),
    },
    request_id: `req_fake_${id}`,
  };
}

type AnswerAction = Extract<
  FakeAction,
  { kind: 'valid' | 'json' | 'text' | 'refusal' | 'max_tokens' | 'tool_use' }
>;

/** The Messages API response body for an answering action, structured like the request asked. */
export function answerBody(
  action: AnswerAction,
  body: Record<string, unknown>,
  id: string,
  base: ApiUsage,
) {
  const forced = forcedTool(body);
  const schema = forced ? forced.schema : outputSchema(body);
  const usage = { ...base, ...action.usage };
  const structured = (value: unknown, stop: string) =>
    forced
      ? {
          content: [{ type: 'tool_use', id: `toolu_fake_${id}`, name: forced.name, input: value }],
          stop: 'tool_use',
        }
      : { content: [{ type: 'text', text: JSON.stringify(value), citations: null }], stop };
  let answer: { content: unknown[]; stop: string };
  switch (action.kind) {
    case 'valid':
      answer = structured(schema ? sampleFromSchema(schema) : {}, 'end_turn');
      break;
    case 'json':
      answer = structured(action.value, 'end_turn');
      break;
    case 'text':
      answer = {
        content: [{ type: 'text', text: action.text, citations: null }],
        stop: 'end_turn',
      };
      break;
    case 'refusal':
      answer = {
        content: [
          { type: 'text', text: action.text ?? "I can't help with that.", citations: null },
        ],
        stop: 'refusal',
      };
      break;
    case 'tool_use':
      answer = {
        content: [
          ...(action.text !== undefined
            ? [{ type: 'text', text: action.text, citations: null }]
            : []),
          ...action.calls.map((c, i) => ({
            type: 'tool_use',
            id: c.id ?? `toolu_fake_${id}_${i}`,
            name: c.name,
            input: c.input,
          })),
        ],
        stop: 'tool_use',
      };
      break;
    case 'max_tokens': {
      const full = JSON.stringify(schema ? sampleFromSchema(schema) : { truncated: true });
      const cut = full.slice(0, Math.max(1, Math.floor(full.length / 2)));
      answer = forced
        ? {
            content: [{ type: 'tool_use', id: `toolu_fake_${id}`, name: forced.name, input: {} }],
            stop: 'max_tokens',
          }
        : { content: [{ type: 'text', text: cut, citations: null }], stop: 'max_tokens' };
      if (action.usage?.output_tokens === undefined && typeof body.max_tokens === 'number') {
        usage.output_tokens = body.max_tokens;
      }
      break;
    }
  }
  return {
    id: `msg_fake_${id}`,
    type: 'message',
    role: 'assistant',
    model: typeof body.model === 'string' ? body.model : 'claude-fake',
    content: answer.content,
    stop_reason: answer.stop,
    stop_sequence: null,
    usage,
  };
}

function forcedTool(
  body: Record<string, unknown>,
): { name: string; schema: JsonSchema | null } | null {
  const choice = body.tool_choice as { type?: unknown; name?: unknown } | undefined;
  if (choice?.type !== 'tool' || typeof choice.name !== 'string') return null;
  const tools = Array.isArray(body.tools)
    ? (body.tools as { name?: unknown; input_schema?: unknown }[])
    : [];
  const tool = tools.find((t) => t.name === choice.name);
  return { name: choice.name, schema: (tool?.input_schema as JsonSchema | undefined) ?? null };
}

function outputSchema(body: Record<string, unknown>): JsonSchema | null {
  const config = body.output_config as { format?: { schema?: unknown } } | undefined;
  const schema = config?.format?.schema;
  return schema !== null && typeof schema === 'object' ? (schema as JsonSchema) : null;
}

/** A minimal API error body. */
export function errorBody(type: string, message: string) {
  return { type: 'error', error: { type, message } };
}
