/**
 * Canonical JSON for the hash chain: `JSON.stringify` with the keys of every object sorted.
 * Written out by hand for plain data: the replacer form (a callback per value and a sorted copy
 * of every object) took ≈ 40 % more CPU per envelope on the hot path, and made the garbage.
 * Pure.
 */

/**
 * The reference definition, and the path for values the fast one does not walk itself (a
 * `toJSON`, class instances, boxed primitives, bigints, keys that start with a digit, depth):
 * its output is the contract every stored hash was computed with.
 */
export function canonicalJsonSlow(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return v;
    const sorted: Record<string, unknown> = {};
    for (const k of Object.keys(v).sort()) sorted[k] = (v as Record<string, unknown>)[k];
    return sorted;
  });
}

/** Past this depth a value is handed to the reference (which reports a cycle by throwing). */
export const MAX_DEPTH = 64;

/** Characters JSON.stringify escapes (quotes, backslash, controls, surrogates). */
// eslint-disable-next-line no-control-regex -- the control characters are what JSON escapes
const NEEDS_ESCAPE = /["\\\u0000-\u001f\ud800-\udfff]/;

/** A string as JSON (as `JSON.stringify`, without its call for the common string). */
export function quote(s: string): string {
  return NEEDS_ESCAPE.test(s) ? JSON.stringify(s) : `"${s}"`;
}

/**
 * JSON with the keys of every object sorted, and otherwise exactly `JSON.stringify`'s rules
 * (`toJSON`, `undefined` keys dropped), so a value and its JSON round trip give the same text.
 * The same output as {@link canonicalJsonSlow} on every value.
 * @example canonicalJson({ b: 1, a: [true, null] }) // '{"a":[true,null],"b":1}'
 */
export function canonicalJson(value: unknown): string {
  // Undefined at the top (a function, undefined), as JSON.stringify returns.
  return write(value, 0) as string;
}

/**
 * The canonical JSON of `v` found at `depth` inside the value being written (0 at the top), or
 * undefined where JSON.stringify leaves the value out: for writers of a part of a value.
 */
export function canonicalJsonAt(v: unknown, depth: number): string | undefined {
  return write(v, depth);
}

/** The JSON of `v`, or undefined where JSON.stringify leaves the value out. */
function write(v: unknown, depth: number): string | undefined {
  switch (typeof v) {
    case 'string':
      return quote(v);
    case 'number':
      return Number.isFinite(v) ? String(v) : 'null';
    case 'boolean':
      return v ? 'true' : 'false';
    case 'object':
      if (v === null) return 'null';
      if (depth > MAX_DEPTH) return canonicalJsonSlow(v);
      return Array.isArray(v)
        ? writeArray(v as unknown[], depth)
        : writeObject(v as Record<string, unknown>, depth);
    case 'bigint':
      return canonicalJsonSlow(v); // JSON.stringify's own TypeError
    default:
      return undefined; // undefined, function, symbol
  }
}

function writeArray(a: unknown[], depth: number): string {
  if (
    Object.getPrototypeOf(a) !== Array.prototype ||
    typeof (a as { toJSON?: unknown }).toJSON === 'function'
  )
    return canonicalJsonSlow(a);
  if (a.length === 0) return '[]';
  let s = `[${write(a[0], depth + 1) ?? 'null'}`;
  for (let i = 1; i < a.length; i++) s += `,${write(a[i], depth + 1) ?? 'null'}`;
  return `${s}]`;
}

function writeObject(o: Record<string, unknown>, depth: number): string {
  const proto: unknown = Object.getPrototypeOf(o);
  if ((proto !== Object.prototype && proto !== null) || typeof o.toJSON === 'function')
    return canonicalJsonSlow(o);
  const keys = Object.keys(o);
  sortKeys(keys);
  let s = '{';
  for (const k of keys) {
    // The reference inserts the sorted keys into a new object, which enumerates array-index
    // keys first and takes `__proto__` as its prototype: leave such objects to it.
    const c = k.charCodeAt(0);
    if ((c >= 48 && c <= 57) || k === '__proto__') return canonicalJsonSlow(o);
    const part = write(o[k], depth + 1);
    if (part === undefined) continue;
    s += s.length === 1 ? `${quote(k)}:${part}` : `,${quote(k)}:${part}`;
  }
  return `${s}}`;
}

/**
 * Sorts strings in place by UTF-16 code units, as `Array.prototype.sort()` does by default: an
 * insertion sort for the few keys of most objects, since V8's sort allocates work arrays on every
 * call (a third of the garbage of hashing an envelope).
 */
function sortKeys(keys: string[]): void {
  // A large object (a model's output can be one) takes V8's O(n log n) sort instead.
  if (keys.length > 24) {
    keys.sort();
    return;
  }
  for (let i = 1; i < keys.length; i++) {
    const k = keys[i] as string;
    let j = i - 1;
    while (j >= 0 && (keys[j] as string) > k) {
      keys[j + 1] = keys[j] as string;
      j -= 1;
    }
    keys[j + 1] = k;
  }
}
