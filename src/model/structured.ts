/**
 * Structured output: the JSON schema sent to the API, the verdict on what came back, and the
 * feedback for a re-ask. Pure: zod only.
 */
import { z } from 'zod';
import type { ZodType } from 'zod';
import { UsageError } from '../errors.js';

/** The verdict on one answer, with the parsed output when valid and readable issues otherwise. */
export interface Judgement {
  verdict: 'valid' | 'invalid' | 'refusal' | 'max_tokens';
  output?: unknown;
  issues: string[];
}

/**
 * The JSON schema of `schema` in a form the API accepts: an object root, `additionalProperties:
 * false` on every object that does not set it, no `$schema`. Throws a {@link UsageError} otherwise.
 * @example toJsonSchema(z.object({ title: z.string() }))
 */
export function toJsonSchema(schema: ZodType): Record<string, unknown> {
  let json: Record<string, unknown>;
  try {
    // `input`: the model writes what zod parses, so defaults are optional and transforms are allowed.
    json = z.toJSONSchema(schema, { io: 'input' }) as Record<string, unknown>;
  } catch (e) {
    throw new UsageError(
      `the output schema cannot be sent to the model (${(e as Error).message}): ` +
        'use JSON types only (no z.date(), z.bigint(), z.map(), ...) and convert afterwards',
      { cause: e },
    );
  }
  delete json.$schema;
  if (json.type !== 'object') {
    throw new UsageError(
      `the output schema must be a z.object(...) at its root (got ${JSON.stringify(json.type ?? 'no type')}): ` +
        'wrap it, e.g. z.object({ items: z.array(...) })',
    );
  }
  return closeObjects(json) as Record<string, unknown>;
}

/**
 * Judges one answer against `schema`: refusals and truncations by stop reason, then empty,
 * non-JSON and prose-wrapped text, then the schema's own issues as `"path: message"`.
 */
export function judgeOutput(
  answer: { text: string | null; stopReason: string | null },
  schema: ZodType,
): Judgement {
  if (answer.stopReason === 'refusal') {
    const said = answer.text?.trim();
    return {
      verdict: 'refusal',
      issues: [said ? `the model refused: ${said}` : 'the model refused'],
    };
  }
  if (answer.stopReason === 'max_tokens') {
    return {
      verdict: 'max_tokens',
      issues: ['the answer was cut off at max_tokens: raise maxTokens on the step or ask for less'],
    };
  }
  const text = answer.text?.trim() ?? '';
  if (text === '') return invalid('the answer was empty');

  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    // Extracting JSON from prose would hide a model that ignores the format: report it.
    if (hasJsonInside(text)) return invalid('the answer had text around the JSON');
    return invalid(`the answer is not JSON: ${(e as Error).message}`);
  }

  const parsed = schema.safeParse(value);
  if (parsed.success) return { verdict: 'valid', output: parsed.data, issues: [] };
  return { verdict: 'invalid', issues: parsed.error.issues.map(formatIssue) };
}

/**
 * The user message appended for a re-ask: the issues of the last answer, and a request for
 * the JSON alone.
 */
export function feedbackMessage(issues: string[]): string {
  const list = issues.length > 0 ? issues : ['the answer did not match the schema'];
  return [
    'Your previous answer was not accepted:',
    ...list.map((issue) => `- ${issue}`),
    'Answer again with only the corrected JSON object that matches the schema: no prose, no code fences.',
  ].join('\n');
}

/** Formats a zod issue as `"path: message"`, e.g. `items[0].title: Too small`. */
export function formatIssue(issue: { path: readonly PropertyKey[]; message: string }): string {
  let path = '';
  for (const key of issue.path) {
    if (typeof key === 'number') path += `[${key}]`;
    else path += path === '' ? String(key) : `.${String(key)}`;
  }
  return `${path === '' ? '(root)' : path}: ${issue.message}`;
}

function invalid(issue: string): Judgement {
  return { verdict: 'invalid', issues: [issue] };
}

function hasJsonInside(text: string): boolean {
  for (const [open, close] of [
    ['{', '}'],
    ['[', ']'],
  ] as const) {
    const start = text.indexOf(open);
    const end = text.lastIndexOf(close);
    if (start < 0 || end <= start) continue;
    try {
      JSON.parse(text.slice(start, end + 1));
      return true;
    } catch {
      // not JSON inside either
    }
  }
  return false;
}

function closeObjects(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(closeObjects);
  if (node === null || typeof node !== 'object') return node;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(node)) out[key] = closeObjects(value);
  if (out.type === 'object' && out.properties !== undefined && !('additionalProperties' in out)) {
    out.additionalProperties = false;
  }
  return out;
}
