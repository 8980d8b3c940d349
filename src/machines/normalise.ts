/**
 * What a zod schema's `parse` does to a VALID value, without checking it: unknown object keys
 * dropped, `.default()`s filled in. The writer hashes the envelopes it built itself with it
 * (see `chain.ts`): the same JSON as the zod output for every value the schema accepts, at a
 * fraction of the cost, and no check (the store checks at the port when asked, and on read).
 * Compiled once per schema from its definition; a schema using a kind not handled here
 * (a transform, a pipe, a lazy schema…) is normalised by `parse` instead. Pure.
 */
import type { z } from 'zod';

/** The normalising function of one schema node. */
type Normalise = (v: unknown) => unknown;

/** The zod 4 definition fields this module (and `canonicalSchema.ts`) reads. */
export interface Def {
  type: string;
  shape?: Record<string, z.ZodType>;
  catchall?: z.ZodType;
  innerType?: z.ZodType;
  element?: z.ZodType;
  options?: z.ZodType[];
  discriminator?: string;
  keyType?: z.ZodType;
  valueType?: z.ZodType;
  values?: unknown[];
  defaultValue?: unknown;
}

export const defOf = (s: z.ZodType): Def => (s as unknown as { _zod: { def: Def } })._zod.def;

/** Kinds whose valid values `parse` returns as they are (no object inside to strip or fill). */
export const LEAVES = new Set([
  'string',
  'number',
  'boolean',
  'literal',
  'enum',
  'unknown',
  'any',
  'null',
]);

/** Thrown while compiling a schema this module (or `canonicalSchema.ts`) does not cover. */
export class Unsupported extends Error {}

/** Null for a node that returns valid values unchanged (so containers can skip it). */
function compile(s: z.ZodType): Normalise | null {
  const d = defOf(s);
  if (LEAVES.has(d.type)) return null;
  switch (d.type) {
    case 'optional':
    case 'nullable': {
      const innerType = d.innerType as z.ZodType;
      const inner = compile(innerType);
      // `.default(x).optional()`: parse hands undefined to the default.
      if (inner === null) return null;
      // As parse: `nullable` passes all but null on (undefined may meet a default inside);
      // `optional` passes undefined on only to a default (`.default(x).optional()`).
      if (d.type === 'nullable' || defOf(innerType).type === 'default')
        return (v) => (v === null ? v : inner(v));
      return (v) => (v === undefined ? v : inner(v));
    }
    case 'default': {
      const inner = compile(d.innerType as z.ZodType);
      // The getter gives a fresh copy of an object default each time, as `parse` does.
      return (v) => (v === undefined ? d.defaultValue : inner === null ? v : inner(v));
    }
    case 'array': {
      const el = compile(d.element as z.ZodType);
      return el === null ? null : (v) => (Array.isArray(v) ? v.map((x) => el(x)) : v);
    }
    case 'record': {
      if (compile(d.keyType as z.ZodType) !== null) throw new Unsupported('record key');
      const val = compile(d.valueType as z.ZodType);
      if (val === null) return null;
      return (v) => {
        if (v === null || typeof v !== 'object') return v;
        const out: Record<string, unknown> = {};
        for (const [k, x] of Object.entries(v)) out[k] = val(x);
        return out;
      };
    }
    case 'object':
      return compileObject(d);
    case 'union':
      return compileUnion(d);
    default:
      throw new Unsupported(d.type);
  }
}

function compileObject(d: Def): Normalise {
  if (d.catchall !== undefined && defOf(d.catchall).type !== 'never')
    throw new Unsupported('object with a catchall');
  const fields = Object.entries(d.shape ?? {}).map(([k, f]) => ({ k, f: compile(f) }));
  return (v) => {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return v;
    const o = v as Record<string, unknown>;
    const out: Record<string, unknown> = {};
    for (const { k, f } of fields) {
      const x = f === null ? o[k] : f(o[k]);
      if (x !== undefined) out[k] = x;
    }
    return out;
  };
}

/**
 * A discriminated union's branches by the discriminator's value, each compiled by `branch`; null
 * for a plain union whose options are all leaves (`isLeaf`). Anything else is Unsupported.
 */
export function unionBranches<F>(
  d: Def,
  isLeaf: (o: z.ZodType) => boolean,
  branch: (o: z.ZodType, od: Def) => F,
): { key: string; byValue: Map<unknown, F> } | null {
  const options = d.options ?? [];
  const key = d.discriminator;
  if (key === undefined) {
    // A plain union: only of leaves (its valid values come back as they are).
    if (!options.every(isLeaf)) throw new Unsupported('union of objects');
    return null;
  }
  const byValue = new Map<unknown, F>();
  for (const o of options) {
    const od = defOf(o);
    const tag = od.shape?.[key];
    if (od.type !== 'object' || tag === undefined || defOf(tag).type !== 'literal')
      throw new Unsupported('discriminated union branch');
    const f = branch(o, od);
    for (const value of defOf(tag).values ?? []) byValue.set(value, f);
  }
  return { key, byValue };
}

function compileUnion(d: Def): Normalise | null {
  const u = unionBranches(
    d,
    (o) => compile(o) === null,
    (_o, od) => compileObject(od),
  );
  if (u === null) return null;
  const { key, byValue } = u;
  return (v) => {
    if (v === null || typeof v !== 'object') return v;
    const f = byValue.get((v as Record<string, unknown>)[key]);
    return f === undefined ? v : f(v);
  };
}

/**
 * The normaliser of `schema`: for every value `schema` accepts, `normalise(v)` has the same JSON
 * (up to key order) as `schema.parse(v)`; for other values it checks nothing and may differ.
 * Falls back to `parse` for a schema it does not cover.
 * @example const norm = normaliser(StateSummary); canonicalJson(norm(state));
 */
export function normaliser(schema: z.ZodType): Normalise {
  try {
    return compile(schema) ?? ((v) => v);
  } catch (e) {
    if (!(e instanceof Unsupported)) throw e;
    return (v) => schema.parse(v);
  }
}
