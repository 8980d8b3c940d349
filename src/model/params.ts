/**
 * The Messages API body of a {@link ModelRequest}, exactly as it is sent: shared by the
 * Anthropic adapter (to send it, and to count its tokens) and the cost bound (to measure it).
 * Pure.
 */
import type Anthropic from '@anthropic-ai/sdk';
import { jsonSchemaOutputFormat } from '@anthropic-ai/sdk/helpers/json-schema';
import type { CacheTtl, ModelBlock, ModelRequest } from './types.js';

/** The body of one `messages.create` call. */
export type CreateParams = Anthropic.MessageCreateParamsNonStreaming;

/** Builds the Messages API body for a request, in native (`output_config.format`) or tool mode. */
export function buildParams(request: ModelRequest): CreateParams {
  const cache = request.cache !== undefined ? cacheControl(request.cache) : undefined;
  const params: CreateParams = {
    model: request.model,
    max_tokens: request.maxTokens,
    messages: request.messages.map((m, i) =>
      typeof m.content !== 'string'
        ? { role: m.role, content: m.content.map(apiBlock) }
        : // The breakpoint goes on the prompt prefix: the first message (the prompt of the step).
          cache !== undefined && i === 0
          ? { role: m.role, content: [{ type: 'text', text: m.content, cache_control: cache }] }
          : { role: m.role, content: m.content },
    ),
    ...(request.system !== undefined
      ? {
          system:
            cache !== undefined
              ? [{ type: 'text' as const, text: request.system, cache_control: cache }]
              : request.system,
        }
      : {}),
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
  if (request.tools !== undefined && request.tools.length > 0)
    params.tools = request.tools.map((t) => ({
      name: t.name,
      description: t.description,
      input_schema: t.inputSchema as Anthropic.Tool.InputSchema,
    }));
  params.output_config = { format: outputFormat(request.schema) };
  return params;
}

/** The output format of each schema object (a step's schema is built once and reused). */
const formats = new WeakMap<object, { type: 'json_schema'; schema: Record<string, unknown> }>();

/**
 * The helper moves constraints the API does not enforce (minLength, maximum, ...) into
 * descriptions; the guard validates them with zod afterwards. Its deep copy of the schema is
 * made once per schema object rather than twice per call (the cost bound builds the body too).
 */
function outputFormat(schema: ModelRequest['schema']): {
  type: 'json_schema';
  schema: Record<string, unknown>;
} {
  const key = schema as object;
  let format = formats.get(key);
  if (format === undefined) {
    const f = jsonSchemaOutputFormat(schema as { type: 'object' });
    format = { type: f.type, schema: f.schema };
    formats.set(key, format);
  }
  return format;
}

/** A conversation block as the Messages API takes it. */
function apiBlock(b: ModelBlock): Anthropic.ContentBlockParam {
  switch (b.type) {
    case 'text':
      return { type: 'text', text: b.text };
    case 'tool_use':
      return { type: 'tool_use', id: b.id, name: b.name, input: b.input };
    case 'tool_result':
      return {
        type: 'tool_result',
        tool_use_id: b.tool_use_id,
        content: b.content,
        ...(b.is_error === true ? { is_error: true } : {}),
      };
  }
}

/** The `cache_control` of a breakpoint living `ttl`. */
function cacheControl(ttl: CacheTtl): Anthropic.CacheControlEphemeral {
  return { type: 'ephemeral', ttl };
}

/**
 * The body of the `messages.countTokens` call for the same request: everything the model reads
 * (model, system, messages, tools or output format), without the sampling settings.
 */
export function countParams(request: ModelRequest): Anthropic.MessageCountTokensParams {
  const {
    max_tokens: _max,
    temperature: _temperature,
    ...rest
  } = buildParams(request) as CreateParams & { temperature?: number };
  return rest as Anthropic.MessageCountTokensParams;
}
