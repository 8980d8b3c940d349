/**
 * A fake Claude script as JSON (for `plumbline fake-claude --script file.json`, so tests in any
 * language can script it): the answers in order, then the last one again, or a given default.
 *
 * ```json
 * {
 *   "usage": { "input_tokens": 420, "output_tokens": 85 },
 *   "answers": [
 *     { "kind": "status", "status": 529 },
 *     { "kind": "delay", "ms": 200, "then": { "kind": "json", "value": { "label": "bug" } } }
 *   ],
 *   "then": { "kind": "valid" }
 * }
 * ```
 * Kinds: `valid` (a sample of the requested schema), `json` (`value`), `text` (`text`),
 * `status` (`status`, `message`, `errorType`, `errorCode`, `headers`, `body`), `drop` (close the
 * socket), `delay` (`ms`, then the action `then`), `refusal` (`text`), `max_tokens`, `tool_use`
 * (`calls: [{ name, input, id? }]`, `text`: an agent's turn asking for tools); answers
 * take an optional `usage`. `then` is `"repeat"` (the default: the last answer again, or
 * `valid` when there are none) or an action. A bare array is the `answers`. Message Batch items
 * take the answers too (a `status` answer makes an `errored` item); `"batches": {"endAfterPolls":
 * 3}` ends each batch at its third retrieve (default the first).
 */
import { z } from 'zod';
import { UsageError } from '../errors.js';
import { formatIssue } from '../model/structured.js';
import type { FakeScript } from './fakeClaude.js';
import type { FakeAction, FakeUsage } from './fakeResponses.js';

const count = z.number().int().nonnegative();
const Usage = z.strictObject({
  input_tokens: count.optional(),
  output_tokens: count.optional(),
  cache_creation_input_tokens: count.optional(),
  cache_read_input_tokens: count.optional(),
  cache_creation: z
    .strictObject({
      ephemeral_5m_input_tokens: count.optional(),
      ephemeral_1h_input_tokens: count.optional(),
    })
    .optional(),
});

const Action: z.ZodType<FakeAction> = z.lazy(() =>
  z.discriminatedUnion('kind', [
    z.strictObject({ kind: z.literal('valid'), usage: Usage.optional() }),
    z.strictObject({ kind: z.literal('json'), value: z.unknown(), usage: Usage.optional() }),
    z.strictObject({ kind: z.literal('text'), text: z.string(), usage: Usage.optional() }),
    z.strictObject({
      kind: z.literal('status'),
      status: z.number().int().min(400).max(599),
      headers: z.record(z.string(), z.string()).optional(),
      body: z.unknown().optional(),
      errorType: z.string().optional(),
      errorCode: z.string().optional(),
      message: z.string().optional(),
    }),
    z.strictObject({ kind: z.literal('drop') }),
    z.strictObject({ kind: z.literal('delay'), ms: count, then: Action }),
    z.strictObject({
      kind: z.literal('refusal'),
      text: z.string().optional(),
      usage: Usage.optional(),
    }),
    z.strictObject({ kind: z.literal('max_tokens'), usage: Usage.optional() }),
    z.strictObject({
      kind: z.literal('tool_use'),
      calls: z.array(
        z.strictObject({ name: z.string(), input: z.unknown(), id: z.string().optional() }),
      ),
      text: z.string().optional(),
      usage: Usage.optional(),
    }),
  ]),
) as z.ZodType<FakeAction>;

const Script = z.strictObject({
  usage: Usage.optional(),
  /** Message Batches: a batch ends at its N-th retrieve (default 1). */
  batches: z.strictObject({ endAfterPolls: z.number().int().min(1) }).optional(),
  answers: z.array(Action).default([]),
  then: z.union([z.literal('repeat'), Action]).default('repeat'),
});

/** A parsed JSON script: what {@link startFakeClaude} takes. */
export interface JsonFakeScript {
  script: FakeScript;
  usage?: FakeUsage;
  /** How the fake's Message Batches progress. */
  batches?: { endAfterPolls: number };
}

/**
 * Turns a JSON script (see the module comment) into a fake script, or throws a UsageError
 * naming the first wrong field (`answers[2].status: ...`).
 * @example fakeScriptFromJson({ answers: [{ kind: 'status', status: 529 }], then: { kind: 'valid' } })
 */
export function fakeScriptFromJson(value: unknown, source = 'script'): JsonFakeScript {
  // A bare array is the answers (checked as such, so an issue names `answers[i]`).
  const parsed = Script.safeParse(Array.isArray(value) ? { answers: value } : value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new UsageError(
      `${source}: ${issue !== undefined ? formatIssue(issue) : 'invalid'}; see \`plumbline fake-claude --help\` for the format`,
    );
  }
  const { answers, then } = parsed.data;
  const { usage, batches } = parsed.data;
  const after: FakeAction =
    then === 'repeat' ? (answers[answers.length - 1] ?? { kind: 'valid' }) : then;
  return {
    script: (_req, index) => answers[index] ?? after,
    ...(usage !== undefined ? { usage: usage as FakeUsage } : {}),
    ...(batches !== undefined ? { batches } : {}),
  };
}
