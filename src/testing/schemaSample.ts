/**
 * Deterministic sample values for JSON schemas, so the fake Claude can answer "validly".
 * Pure. Also reads constraints the SDK moved into descriptions (`{minLength: 3, maximum: 9}`).
 */

/** A JSON schema node, loosely typed. */
export type JsonSchema = Record<string, unknown>;

const FORMAT_SAMPLES: Readonly<Record<string, string>> = {
  email: 'user@example.com',
  uri: 'https://example.com/',
  url: 'https://example.com/',
  uuid: '00000000-0000-4000-8000-000000000000',
  'date-time': '2026-01-01T00:00:00Z',
  date: '2026-01-01',
  time: '00:00:00',
  duration: 'P1D',
  ipv4: '127.0.0.1',
  ipv6: '::1',
  hostname: 'example.com',
};

const MAX_DEPTH = 12;

/**
 * A value satisfying common features of `schema`: object properties, string enum/length/format,
 * number bounds, arrays with item counts, anyOf/oneOf (first branch), const, nullable types, `$ref`.
 * @example sampleFromSchema({ type: 'object', properties: { n: { type: 'integer', minimum: 3 } } }) // { n: 3 }
 */
export function sampleFromSchema(schema: JsonSchema): unknown {
  return sample(schema, schema, 0);
}

function sample(node: unknown, root: JsonSchema, depth: number): unknown {
  if (node === true || node === undefined) return null;
  if (node === null || typeof node !== 'object' || depth > MAX_DEPTH) return null;
  const s = withDescribedConstraints(node as JsonSchema);

  if (typeof s.$ref === 'string') return sample(resolveRef(s.$ref, root), root, depth + 1);
  if ('const' in s) return s.const;
  if (Array.isArray(s.enum) && s.enum.length > 0) return s.enum[0];
  for (const key of ['anyOf', 'oneOf'] as const) {
    const branches = s[key];
    if (Array.isArray(branches) && branches.length > 0) {
      const preferred = branches.find((b) => !isNullSchema(b)) ?? branches[0];
      return sample(preferred, root, depth + 1);
    }
  }
  if (Array.isArray(s.allOf) && s.allOf.length > 0) {
    const merged = Object.assign({}, ...(s.allOf as JsonSchema[]), {
      allOf: undefined,
    }) as JsonSchema;
    return sample(merged, root, depth + 1);
  }

  const type = pickType(s);
  switch (type) {
    case 'object':
      return sampleObject(s, root, depth);
    case 'array':
      return sampleArray(s, root, depth);
    case 'string':
      return sampleString(s);
    case 'integer':
    case 'number':
      return sampleNumber(s, type === 'integer');
    case 'boolean':
      return true;
    case 'null':
      return null;
    default:
      return s.properties !== undefined ? sampleObject(s, root, depth) : null;
  }
}

function sampleObject(s: JsonSchema, root: JsonSchema, depth: number): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const properties = (s.properties ?? {}) as Record<string, unknown>;
  for (const [key, child] of Object.entries(properties)) out[key] = sample(child, root, depth + 1);
  return out;
}

function sampleArray(s: JsonSchema, root: JsonSchema, depth: number): unknown[] {
  const prefix = Array.isArray(s.prefixItems) ? s.prefixItems : [];
  const min = num(s.minItems) ?? 1;
  const max = num(s.maxItems) ?? Infinity;
  const length = Math.max(prefix.length, Math.min(Math.max(min, 1), max));
  const out: unknown[] = [];
  for (let i = 0; i < length; i++) {
    const itemSchema = i < prefix.length ? prefix[i] : s.items;
    let item = sample(itemSchema ?? {}, root, depth + 1);
    // Distinct items for uniqueItems, where a simple variation can make them so.
    if (s.uniqueItems === true && i > 0) {
      if (typeof item === 'string') item = `${item}${i}`;
      else if (typeof item === 'number') item = item + i;
    }
    out.push(item);
  }
  return out;
}

function sampleString(s: JsonSchema): string {
  const format = typeof s.format === 'string' ? FORMAT_SAMPLES[s.format] : undefined;
  if (format !== undefined) return format;
  const min = num(s.minLength) ?? 0;
  const max = num(s.maxLength) ?? Infinity;
  let value = 'sample';
  if (value.length < min) value = value + 'x'.repeat(min - value.length);
  if (value.length > max) value = value.slice(0, max);
  return value;
}

function sampleNumber(s: JsonSchema, integer: boolean): number {
  const step = integer ? 1 : 0.5;
  let lo = num(s.minimum);
  let hi = num(s.maximum);
  // Draft 2020-12 gives exclusive bounds as numbers; draft 4 as booleans on minimum/maximum.
  const exLo = s.exclusiveMinimum === true ? lo : num(s.exclusiveMinimum);
  const exHi = s.exclusiveMaximum === true ? hi : num(s.exclusiveMaximum);
  if (exLo !== undefined) lo = Math.max(lo ?? -Infinity, exLo + step);
  if (exHi !== undefined) hi = Math.min(hi ?? Infinity, exHi - step);
  if (integer) {
    if (lo !== undefined) lo = Math.ceil(lo);
    if (hi !== undefined) hi = Math.floor(hi);
  }
  if (lo !== undefined && hi !== undefined && lo > hi) {
    // A narrow open interval (say 0 < x < 0.5): its midpoint.
    return ((exLo ?? lo) + (exHi ?? hi)) / 2;
  }
  let value = 1;
  if (lo !== undefined && value < lo) value = lo;
  if (hi !== undefined && value > hi) value = hi;
  const multiple = num(s.multipleOf);
  if (multiple !== undefined && multiple > 0) {
    const up = Math.ceil(value / multiple) * multiple;
    value = hi !== undefined && up > hi ? Math.floor(value / multiple) * multiple : up;
  }
  return value;
}

function pickType(s: JsonSchema): string | undefined {
  if (typeof s.type === 'string') return s.type;
  if (Array.isArray(s.type)) {
    const types = s.type.filter((t): t is string => typeof t === 'string');
    return types.find((t) => t !== 'null') ?? types[0];
  }
  return undefined;
}

function isNullSchema(node: unknown): boolean {
  return typeof node === 'object' && node !== null && (node as JsonSchema).type === 'null';
}

function resolveRef(ref: string, root: JsonSchema): unknown {
  if (ref === '#') return root;
  if (!ref.startsWith('#/')) return {};
  let at: unknown = root;
  for (const raw of ref.slice(2).split('/')) {
    const key = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    at = at !== null && typeof at === 'object' ? (at as JsonSchema)[key] : undefined;
  }
  return at ?? {};
}

/** Adds constraints the SDK's transform moved into the description as `{key: json, ...}`. */
function withDescribedConstraints(s: JsonSchema): JsonSchema {
  if (typeof s.description !== 'string') return s;
  const match = /\{([A-Za-z]+: [^\n]*)\}\s*$/.exec(s.description);
  if (!match?.[1]) return s;
  try {
    const json = `{${match[1].replace(/(^|, )([A-Za-z]+): /g, '$1"$2": ')}}`;
    const extra = JSON.parse(json) as JsonSchema;
    return { ...extra, ...s };
  } catch {
    return s;
  }
}

function num(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) ? value : undefined;
}
