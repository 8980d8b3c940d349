import { jsonSchemaOutputFormat } from '@anthropic-ai/sdk/helpers/json-schema';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import type { ZodType } from 'zod';
import { toJsonSchema } from '../../src/model/structured.js';
import { sampleFromSchema } from '../../src/testing/schemaSample.js';

describe('sampleFromSchema: JSON schema features', () => {
  it.each<[string, Record<string, unknown>, unknown]>([
    ['const', { const: 'x' }, 'x'],
    ['enum (first)', { type: 'string', enum: ['b', 'a'] }, 'b'],
    ['string', { type: 'string' }, 'sample'],
    ['string minLength', { type: 'string', minLength: 9 }, 'samplexxx'],
    ['string maxLength', { type: 'string', maxLength: 3 }, 'sam'],
    ['string format email', { type: 'string', format: 'email' }, 'user@example.com'],
    ['string format date-time', { type: 'string', format: 'date-time' }, '2026-01-01T00:00:00Z'],
    ['integer', { type: 'integer' }, 1],
    ['integer minimum', { type: 'integer', minimum: 5 }, 5],
    ['integer maximum', { type: 'integer', maximum: -2 }, -2],
    ['integer exclusiveMinimum', { type: 'integer', exclusiveMinimum: 1 }, 2],
    [
      'number exclusive bounds',
      { type: 'number', exclusiveMinimum: 0, exclusiveMaximum: 0.5 },
      0.25,
    ],
    [
      'draft-4 boolean exclusiveMaximum',
      { type: 'number', maximum: 1, exclusiveMaximum: true },
      0.5,
    ],
    ['multipleOf', { type: 'integer', minimum: 2, multipleOf: 5 }, 5],
    ['boolean', { type: 'boolean' }, true],
    ['null', { type: 'null' }, null],
    ['nullable type array', { type: ['null', 'string'] }, 'sample'],
    ['anyOf (first non-null)', { anyOf: [{ type: 'null' }, { type: 'integer' }] }, 1],
    ['oneOf (first)', { oneOf: [{ type: 'boolean' }, { type: 'string' }] }, true],
    ['array (one item)', { type: 'array', items: { type: 'string' } }, ['sample']],
    ['array minItems', { type: 'array', items: { type: 'integer' }, minItems: 3 }, [1, 1, 1]],
    ['array maxItems 0', { type: 'array', items: { type: 'integer' }, maxItems: 0 }, []],
    [
      'array uniqueItems',
      { type: 'array', items: { type: 'string' }, minItems: 2, uniqueItems: true },
      ['sample', 'sample1'],
    ],
    [
      'tuple',
      { type: 'array', prefixItems: [{ type: 'string' }, { type: 'integer' }] },
      ['sample', 1],
    ],
    ['empty schema', {}, null],
    [
      'object with every property',
      {
        type: 'object',
        properties: { a: { type: 'string' }, b: { type: 'integer' } },
        required: ['a'],
      },
      { a: 'sample', b: 1 },
    ],
    [
      '$ref into $defs',
      {
        type: 'object',
        properties: { n: { $ref: '#/$defs/N' } },
        $defs: { N: { type: 'integer', minimum: 4 } },
      },
      { n: 4 },
    ],
    [
      'constraints moved into the description',
      { type: 'string', description: 'Name\n\n{minLength: 8, maxLength: 10}' },
      'samplexx',
    ],
    [
      'description without constraints',
      { type: 'string', description: 'Pick {one} of them' },
      'sample',
    ],
  ])('%s', (_name, schema, expected) => {
    expect(sampleFromSchema(schema)).toEqual(expected);
  });

  it('stops on recursive schemas', () => {
    const schema = { type: 'object', properties: { child: { $ref: '#' } } };
    expect(() => JSON.stringify(sampleFromSchema(schema))).not.toThrow();
  });

  it('is deterministic', () => {
    const schema = {
      type: 'object',
      properties: { a: { type: 'array', items: { type: 'number' } } },
    };
    expect(sampleFromSchema(schema)).toEqual(sampleFromSchema(schema));
  });
});

describe('sampleFromSchema satisfies zod schemas', () => {
  const schemas: [string, ZodType][] = [
    ['strings', z.object({ a: z.string().min(1), b: z.string().max(3), c: z.string().length(12) })],
    [
      'formats',
      z.object({
        e: z.email(),
        u: z.uuid(),
        l: z.url(),
        d: z.iso.datetime(),
        day: z.iso.date(),
        ip: z.ipv4(),
      }),
    ],
    [
      'numbers',
      z.object({
        i: z.number().int().min(10).max(20),
        p: z.number().positive(),
        n: z.number().negative(),
        r: z.number().gt(0).lt(1),
        m: z.number().int().multipleOf(7).min(8),
      }),
    ],
    [
      'arrays',
      z.object({
        xs: z.array(z.string()).min(2).max(4),
        ys: z.array(z.number()).nonempty(),
      }),
    ],
    [
      'choices',
      z.object({
        e: z.enum(['x', 'y']),
        l: z.literal(42),
        u: z.union([z.number(), z.string()]),
        n: z.string().nullable(),
        o: z.string().optional(),
      }),
    ],
    [
      'discriminated',
      z.object({
        shape: z.discriminatedUnion('kind', [
          z.object({ kind: z.literal('circle'), r: z.number().positive() }),
          z.object({ kind: z.literal('square'), side: z.number() }),
        ]),
      }),
    ],
    [
      'nested',
      z.object({
        items: z
          .array(
            z.object({
              title: z.string().min(3),
              score: z.number().int().min(0).max(5),
              tags: z.array(z.enum(['a', 'b'])),
            }),
          )
          .min(1),
      }),
    ],
    [
      'records and defaults',
      z.object({
        counts: z.record(z.string(), z.number()),
        lang: z.string().default('en'),
        ok: z.boolean(),
      }),
    ],
  ];

  // The SDK's native-mode transform cannot take tuples (`items: false`), so they are tool-mode only.
  const toolOnly: [string, ZodType][] = [
    ['tuples', z.object({ t: z.tuple([z.string(), z.boolean()]) })],
  ];

  it.each([...schemas, ...toolOnly])(
    '%s, from the plain JSON schema (tool mode)',
    (_name, schema) => {
      const value = sampleFromSchema(toJsonSchema(schema));
      expect(schema.safeParse(value).error?.issues ?? []).toEqual([]);
    },
  );

  it.each(schemas)(
    '%s, after the SDK moved constraints into descriptions (native mode)',
    (_name, schema) => {
      const format = jsonSchemaOutputFormat(toJsonSchema(schema) as { type: 'object' });
      const value = sampleFromSchema(format.schema);
      expect(schema.safeParse(value).error?.issues ?? []).toEqual([]);
    },
  );
});
