import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { toPlainJson } from '../src/runtime/plainJson.js';

class Money {
  constructor(readonly cents: number) {}
}

describe('toPlainJson', () => {
  it('accepts every JSON value and copies it as JSON.parse(JSON.stringify()) would', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        const r = toPlainJson(v, 'result');
        expect(r).toEqual({ ok: true, value: JSON.parse(JSON.stringify(v)) as unknown });
      }),
      { numRuns: 300 },
    );
  });

  it.each([
    ['a BigInt', 10n, 'result'],
    ['a BigInt', { n: { big: 1n } }, 'result.n.big'],
    ['a function', { f: () => 1 }, 'result.f'],
    ['a symbol', [Symbol('s')], 'result[0]'],
    ['NaN', { score: NaN }, 'result.score'],
    ['Infinity', [1, Infinity], 'result[1]'],
    ['-Infinity', { 'weird key': -Infinity }, 'result["weird key"]'],
    ['a Map', { items: new Map([[1, 2]]) }, 'result.items'],
    ['a Set', { tags: [{ s: new Set() }] }, 'result.tags[0].s'],
    ['a Promise (a missing await?)', { p: Promise.resolve(1) }, 'result.p'],
    ['an instance of Money', { price: new Money(3) }, 'result.price'],
    ['an instance of Uint8Array', { bytes: new Uint8Array(2) }, 'result.bytes'],
    ['an Error (TypeError)', { e: new TypeError('x') }, 'result.e'],
    ['an invalid Date', { at: new Date(NaN) }, 'result.at'],
    ['undefined (in an array: use null)', [1, undefined], 'result[1]'],
  ])('refuses %s, naming where (%#)', (found, value, path) => {
    expect(toPlainJson(value, 'result')).toEqual({ ok: false, found, path });
  });

  it('names a cycle and what it points back to', () => {
    const a: Record<string, unknown> = { b: { c: {} } };
    (a.b as { c: Record<string, unknown> }).c.back = a.b;
    expect(toPlainJson(a, 'result')).toEqual({
      ok: false,
      found: 'a circular reference (to result.b)',
      path: 'result.b.c.back',
    });
    const self: unknown[] = [];
    self.push(self);
    expect(toPlainJson(self, 'output')).toEqual({
      ok: false,
      found: 'a circular reference (to output)',
      path: 'output[0]',
    });
  });

  it('accepts shared (non-circular) references, dates as ISO strings, absent properties', () => {
    const shared = { x: 1 };
    const at = new Date(Date.UTC(2026, 0, 2, 3, 4, 5));
    expect(
      toPlainJson({ a: shared, b: shared, at, opt: undefined, z: -0, n: null }, 'result'),
    ).toEqual({
      ok: true,
      value: { a: { x: 1 }, b: { x: 1 }, at: '2026-01-02T03:04:05.000Z', z: 0, n: null },
    });
    expect(toPlainJson(undefined, 'result')).toEqual({ ok: true, value: null });
    const bare = Object.create(null) as Record<string, unknown>;
    bare.k = 'v';
    expect(toPlainJson(bare, 'result')).toEqual({ ok: true, value: { k: 'v' } });
  });

  it('keeps a __proto__ key a plain property, as JSON.parse does', () => {
    const v = JSON.parse('{"__proto__":{"polluted":true}}') as unknown;
    const r = toPlainJson(v, 'result');
    expect(r.ok).toBe(true);
    const out = (r as { value: Record<string, unknown> }).value;
    expect(Object.getPrototypeOf(out)).toBe(Object.prototype);
    expect(Object.keys(out)).toEqual(['__proto__']);
    expect(({} as { polluted?: unknown }).polluted).toBeUndefined();
  });

  it('reports a getter that throws at its path instead of throwing', () => {
    const v = {
      get boom(): never {
        throw new Error('no');
      },
    };
    expect(toPlainJson({ v }, 'result')).toEqual({
      ok: false,
      found: 'a property that threw when read (no)',
      path: 'result.v.boom',
    });
  });
});
