/**
 * `canonicalJson(normaliser(schema)(v))` in one pass, for the hash chain: the canonical JSON of a
 * valid value as its schema's `parse` would return it, written straight from the value. The
 * normalised copy (a new object per object in the event) and the sort of its keys (each object's
 * keys are the schema's, sorted once here) were a third of the CPU and most of the garbage of
 * hashing an envelope. Compiled once per schema from its definition, as `normalise.ts`; a node
 * whose output the plain writer handles in a way of its own (keys that start with a digit,
 * `__proto__`, `toJSON`, past the depth limit) is normalised and written by `canonicalJson`.
 * Pure.
 */
import type { z } from 'zod';
import { MAX_DEPTH, canonicalJsonAt, quote } from './canonicalJson.js';
import { LEAVES, Unsupported, defOf, normaliser, unionBranches, type Def } from './normalise.js';

/** Writes the canonical JSON of a value at a depth (undefined where JSON leaves it out). */
export type CanonicalWriter = (v: unknown, depth: number) => string | undefined;

/** Keys `canonicalJson` leaves to its reference, or that a plain object treats apart. */
const special = (k: string): boolean => {
  const c = k.charCodeAt(0);
  return (c >= 48 && c <= 57) || k === '__proto__' || k === 'toJSON';
};

/** Written through the normaliser: what `canonicalJson` does with the normalised value. */
const viaNormaliser = (s: z.ZodType): CanonicalWriter => {
  const n = normaliser(s);
  return (v, depth) => canonicalJsonAt(n(v), depth);
};

/** Null for a node whose valid values are written as they are (`canonicalJsonAt`). */
function compile(s: z.ZodType): CanonicalWriter | null {
  const d = defOf(s);
  if (LEAVES.has(d.type)) return null;
  switch (d.type) {
    case 'optional':
    case 'nullable': {
      const innerType = d.innerType as z.ZodType;
      const inner = compile(innerType);
      if (inner === null) return null;
      if (d.type === 'nullable' || defOf(innerType).type === 'default')
        return (v, depth) => (v === null ? 'null' : inner(v, depth));
      return (v, depth) => (v === undefined ? undefined : inner(v, depth));
    }
    case 'default': {
      const inner = compile(d.innerType as z.ZodType) ?? canonicalJsonAt;
      return (v, depth) =>
        v === undefined ? canonicalJsonAt(d.defaultValue, depth) : inner(v, depth);
    }
    case 'array':
      return compileArray(s, d);
    case 'record':
      return compileRecord(s, d);
    case 'object':
      return compileObject(s, d);
    case 'union':
      return compileUnion(d);
    default:
      throw new Unsupported(d.type);
  }
}

function compileArray(s: z.ZodType, d: Def): CanonicalWriter | null {
  const el = compile(d.element as z.ZodType);
  if (el === null) return null;
  const slow = viaNormaliser(s);
  return (v, depth) => {
    if (!Array.isArray(v)) return canonicalJsonAt(v, depth);
    if (depth > MAX_DEPTH || Object.getPrototypeOf(v) !== Array.prototype) return slow(v, depth);
    if (v.length === 0) return '[]';
    // `map` leaves a hole a hole: JSON writes it as null.
    let out = '[';
    for (let i = 0; i < v.length; i++) {
      const part = i in v ? el(v[i], depth + 1) : undefined;
      out += i === 0 ? (part ?? 'null') : `,${part ?? 'null'}`;
    }
    return `${out}]`;
  };
}

function compileRecord(s: z.ZodType, d: Def): CanonicalWriter | null {
  if (compile(d.keyType as z.ZodType) !== null) throw new Unsupported('record key');
  const val = compile(d.valueType as z.ZodType);
  if (val === null) return null;
  const slow = viaNormaliser(s);
  return (v, depth) => {
    if (v === null || typeof v !== 'object') return canonicalJsonAt(v, depth);
    const keys = Object.keys(v);
    if (depth > MAX_DEPTH || keys.some(special)) return slow(v, depth);
    keys.sort();
    let out = '{';
    for (const k of keys) {
      const part = val((v as Record<string, unknown>)[k], depth + 1);
      if (part === undefined) continue;
      out += out.length === 1 ? `${quote(k)}:${part}` : `,${quote(k)}:${part}`;
    }
    return `${out}}`;
  };
}

function compileObject(s: z.ZodType, d: Def): CanonicalWriter {
  if (d.catchall !== undefined && defOf(d.catchall).type !== 'never')
    throw new Unsupported('object with a catchall');
  const shape = d.shape ?? {};
  const fields = Object.keys(shape)
    .sort()
    .map((k) => ({ k, key: quote(k), w: compile(shape[k] as z.ZodType) ?? canonicalJsonAt }));
  if (Object.keys(shape).some(special)) return viaNormaliser(s);
  const slow = viaNormaliser(s);
  return (v, depth) => {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return canonicalJsonAt(v, depth);
    if (depth > MAX_DEPTH) return slow(v, depth);
    const o = v as Record<string, unknown>;
    let out = '{';
    for (const f of fields) {
      const part = f.w(o[f.k], depth + 1);
      if (part === undefined) continue;
      out += out.length === 1 ? `${f.key}:${part}` : `,${f.key}:${part}`;
    }
    return `${out}}`;
  };
}

function compileUnion(d: Def): CanonicalWriter | null {
  const u = unionBranches(d, (o) => compile(o) === null, compileObject);
  if (u === null) return null;
  const { key, byValue } = u;
  return (v, depth) => {
    if (v === null || typeof v !== 'object') return canonicalJsonAt(v, depth);
    const w = byValue.get((v as Record<string, unknown>)[key]);
    return w === undefined ? canonicalJsonAt(v, depth) : w(v, depth);
  };
}

/**
 * The canonical writer of `schema`: for every value `schema` accepts, `w(v, depth)` is
 * `canonicalJsonAt(normaliser(schema)(v), depth)`, without building the normalised copy.
 * @example const w = canonicalWriter(StateSummary); w(state, 0) === canonicalJson(normaliser(StateSummary)(state));
 */
export function canonicalWriter(schema: z.ZodType): CanonicalWriter {
  try {
    return compile(schema) ?? canonicalJsonAt;
  } catch (e) {
    if (!(e instanceof Unsupported)) throw e;
    return viaNormaliser(schema);
  }
}
