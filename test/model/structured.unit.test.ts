import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { isUsageError } from '../../src/errors.js';
import { feedbackMessage, judgeOutput, toJsonSchema } from '../../src/model/structured.js';

const Schema = z.object({
  title: z.string().min(1),
  tags: z.array(z.string()).max(3),
  meta: z.object({ score: z.number().int().min(0).max(10) }),
  lang: z.string().default('en'),
});
const good = { title: 'Hi', tags: ['a'], meta: { score: 3 } };

describe('toJsonSchema', () => {
  it('gives an object root with additionalProperties false everywhere and no $schema', () => {
    const json = toJsonSchema(Schema);
    expect(json.$schema).toBeUndefined();
    expect(json.type).toBe('object');
    expect(json.additionalProperties).toBe(false);
    const props = json.properties as Record<string, Record<string, unknown>>;
    expect(props.meta?.additionalProperties).toBe(false);
    // A defaulted field is optional for the model: zod fills it in.
    expect(json.required).toEqual(['title', 'tags', 'meta']);
  });

  it('keeps an explicit additionalProperties (records)', () => {
    const json = toJsonSchema(z.object({ counts: z.record(z.string(), z.number()) }));
    const counts = (json.properties as Record<string, Record<string, unknown>>).counts;
    expect(counts?.additionalProperties).toEqual({ type: 'number' });
  });

  it('refuses a non-object root, saying how to wrap it', () => {
    expect(() => toJsonSchema(z.array(z.string()))).toThrow(
      /must be a z.object\(...\) at its root/,
    );
  });

  it('refuses types JSON cannot carry, with a UsageError', () => {
    let thrown: unknown;
    try {
      toJsonSchema(z.object({ when: z.date() }));
    } catch (e) {
      thrown = e;
    }
    expect(isUsageError(thrown)).toBe(true);
    expect((thrown as Error).message).toMatch(/use JSON types only/);
  });
});

describe('judgeOutput', () => {
  const judge = (text: string | null, stopReason: string | null = 'end_turn') =>
    judgeOutput({ text, stopReason }, Schema);

  it('accepts valid JSON, returning the parsed output with defaults', () => {
    expect(judge(JSON.stringify(good))).toEqual({
      verdict: 'valid',
      output: { ...good, lang: 'en' },
      issues: [],
    });
    expect(judge(`\n  ${JSON.stringify(good)}  \n`).verdict).toBe('valid');
    expect(judge(JSON.stringify(good), 'tool_use').verdict).toBe('valid');
  });

  it.each([null, '', '   \n'])('calls %j empty', (text) => {
    expect(judge(text)).toEqual({ verdict: 'invalid', issues: ['the answer was empty'] });
  });

  it('reports a refusal by stop reason', () => {
    expect(judge("I can't help with that.", 'refusal')).toEqual({
      verdict: 'refusal',
      issues: ["the model refused: I can't help with that."],
    });
    expect(judge(null, 'refusal').verdict).toBe('refusal');
  });

  it('reports a truncation by stop reason', () => {
    const j = judge('{"title": "Hi", "ta', 'max_tokens');
    expect(j.verdict).toBe('max_tokens');
    expect(j.issues[0]).toMatch(/raise maxTokens/);
  });

  it('reports text that is not JSON, with the parse error', () => {
    const j = judge('{"title": "Hi",');
    expect(j.verdict).toBe('invalid');
    expect(j.issues[0]).toMatch(/^the answer is not JSON: /);
  });

  it.each([
    `Here you go: ${JSON.stringify(good)}`,
    `${JSON.stringify(good)}\nHope this helps!`,
    '```json\n' + JSON.stringify(good) + '\n```',
    'Sure: ["a"] and more',
  ])('does not extract JSON from prose: %j', (text) => {
    expect(judge(text)).toEqual({
      verdict: 'invalid',
      issues: ['the answer had text around the JSON'],
    });
  });

  it('formats schema issues as "path: message"', () => {
    const j = judge(JSON.stringify({ title: '', tags: ['a', 2], meta: { score: 11 }, extra: 1 }));
    expect(j.verdict).toBe('invalid');
    expect(j.output).toBeUndefined();
    expect(j.issues).toEqual([
      'title: Too small: expected string to have >=1 characters',
      'tags[1]: Invalid input: expected string, received number',
      'meta.score: Too big: expected number to be <=10',
    ]);
  });

  it('names the root when the whole value is wrong', () => {
    expect(judge('[1, 2]').issues).toEqual([
      '(root): Invalid input: expected object, received array',
    ]);
  });
});

describe('feedbackMessage', () => {
  it('lists the issues and asks for JSON only', () => {
    expect(feedbackMessage(['title: Too small', 'the answer had text around the JSON'])).toBe(
      [
        'Your previous answer was not accepted:',
        '- title: Too small',
        '- the answer had text around the JSON',
        'Answer again with only the corrected JSON object that matches the schema: no prose, no code fences.',
      ].join('\n'),
    );
  });

  it('still says something without issues', () => {
    expect(feedbackMessage([])).toMatch(/- the answer did not match the schema/);
  });
});
