/**
 * The hand-written canonical JSON gives exactly the reference's text (JSON.stringify with every
 * object's keys sorted) on any value: every stored hash chain was computed with the reference.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { canonicalJson, canonicalJsonSlow } from '../src/machines/canonicalJson.js';

/** Values events carry, and the shapes where JavaScript's own rules are subtle. */
const odd = fc.constantFrom<unknown>(
  undefined,
  Number.NaN,
  Infinity,
  -0,
  1e21,
  5e-7,
  new Date(0),
  '\u2028\ud800"\\\n',
  () => 1,
  { toJSON: () => ({ z: 1, a: 2 }) },
  { 10: 'a', 9: 'b', x: 1, '01': 2 },
  JSON.parse('{"__proto__":{"a":1},"b":2}') as unknown,
  Object.create(null) as unknown,
  Object.assign([1, 2], { toJSON: () => 'arr' }),
);

const value = fc.letrec((tie) => ({
  leaf: fc.oneof(fc.jsonValue({ maxDepth: 2 }), odd, fc.string(), fc.double()),
  node: fc.oneof(
    { depthSize: 'small' },
    tie('leaf'),
    fc.array(tie('node'), { maxLength: 4 }),
    fc.dictionary(
      fc.oneof(fc.string(), fc.constantFrom('1', '0', '42', 'a', 'b"', '__proto__')),
      tie('node'),
      { maxKeys: 5 },
    ),
  ),
})).node;

describe('canonicalJson', () => {
  it('equals the reference on any value (fast-check)', () => {
    fc.assert(
      fc.property(value, (v) => {
        expect(canonicalJson(v)).toBe(canonicalJsonSlow(v));
      }),
      { numRuns: 3000 },
    );
  });

  it('sorts keys at every depth, drops undefined members and nulls them in arrays', () => {
    expect(canonicalJson({ b: [undefined, () => 1], a: { d: 1, c: undefined, 'q"': 'é' } })).toBe(
      '{"a":{"d":1,"q\\"":"é"},"b":[null,null]}',
    );
    expect(canonicalJson(undefined)).toBeUndefined();
  });

  it('sorts objects with many keys (the larger-object sort path) as the reference does', () => {
    const keys = Array.from(
      { length: 60 },
      (_, i) => `k${(i * 37) % 60}é${i % 3 === 0 ? 'Z' : 'a'}`,
    );
    const big = Object.fromEntries(keys.map((k, i) => [k, { z: i, a: [i, { y: k, b: null }] }]));
    expect(canonicalJson(big)).toBe(canonicalJsonSlow(big));
  });

  it('throws on a cycle, as the reference does', () => {
    const o: Record<string, unknown> = { a: 1 };
    o.self = { o };
    expect(() => canonicalJsonSlow(o)).toThrow();
    expect(() => canonicalJson(o)).toThrow();
  });
});
