/**
 * What a step may return: plain JSON, checked at any depth after the step's function returned.
 * A value JSON would change silently (`NaN` → `null`, a `Map` → `{}`) or refuse (a BigInt, a
 * cycle) is named with its path instead, so the step fails as a programming error rather than
 * being stored as something else or retried. Pure.
 *
 * Rules: objects (prototype `Object.prototype` or `null`), arrays, strings, finite numbers,
 * booleans and `null`. `undefined` is `null` at the top and dropped as an object property (as
 * `JSON.stringify` does: optional fields are common), refused inside an array. A valid `Date`
 * becomes its ISO string (what `JSON.stringify` writes; every later step, live or replayed, sees
 * the string). `-0` becomes `0`. Anything else — BigInt, symbol, function, NaN, ±Infinity, a
 * cycle, a `Map`, a `Set`, a `Promise`, any other class instance — is refused.
 */

/** The result of {@link toPlainJson}. */
export type PlainJsonCheck =
  | { ok: true; value: unknown }
  | {
      ok: false;
      /** What was found, with its article: `a Map`, `NaN`, `a circular reference (to result)`. */
      found: string;
      /** Where, from `root`: `result.items[2].at`. */
      path: string;
    };

/** What a step must return, for error messages. */
export const PLAIN_JSON_HINT =
  'return plain JSON (objects, arrays, strings, finite numbers, booleans, null)';

class NotJson {
  readonly path: ReadonlyArray<string | number>;
  constructor(
    readonly found: string,
    at: ReadonlyArray<string | number>,
  ) {
    this.path = [...at];
  }
}

const IDENT = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

function formatPath(root: string, path: ReadonlyArray<string | number>): string {
  let s = root;
  for (const k of path)
    s += typeof k === 'number' ? `[${k}]` : IDENT.test(k) ? `.${k}` : `[${JSON.stringify(k)}]`;
  return s;
}

function describeObject(v: object): string {
  if (v instanceof Map) return 'a Map';
  if (v instanceof Set) return 'a Set';
  if (v instanceof Promise) return 'a Promise (a missing await?)';
  if (v instanceof Date) return 'an invalid Date';
  if (v instanceof Error) return `an Error (${v.name})`;
  const name = (Object.getPrototypeOf(v) as { constructor?: { name?: unknown } } | null)
    ?.constructor?.name;
  return typeof name === 'string' && name !== '' ? `an instance of ${name}` : 'a class instance';
}

/**
 * Checks that `value` is plain JSON at any depth and returns the copy that will be stored (the
 * same as `JSON.parse(JSON.stringify(value))` for every accepted value), or what was found where.
 * `root` names the value in the path (`result`, `output`).
 * @example
 * toPlainJson({ items: new Map() }, 'result') // { ok: false, found: 'a Map', path: 'result.items' }
 */
export function toPlainJson(value: unknown, root: string): PlainJsonCheck {
  const path: Array<string | number> = [];
  const ancestors: object[] = [];

  const visit = (v: unknown): unknown => {
    switch (typeof v) {
      case 'string':
      case 'boolean':
        return v;
      case 'number':
        if (Number.isNaN(v)) throw new NotJson('NaN', path);
        if (!Number.isFinite(v)) throw new NotJson(v > 0 ? 'Infinity' : '-Infinity', path);
        return v === 0 ? 0 : v;
      case 'bigint':
        throw new NotJson('a BigInt', path);
      case 'symbol':
        throw new NotJson('a symbol', path);
      case 'function':
        throw new NotJson('a function', path);
      case 'undefined':
        // Reached only inside an array (object properties and the top are handled by callers).
        throw new NotJson('undefined (in an array: use null)', path);
      default:
        break;
    }
    if (v === null) return null;
    const o = v as object;
    const back = ancestors.indexOf(o);
    if (back !== -1)
      throw new NotJson(`a circular reference (to ${formatPath(root, path.slice(0, back))})`, path);
    if (o instanceof Date && !Number.isNaN(o.getTime())) return o.toISOString();
    ancestors.push(o);
    try {
      if (Array.isArray(o)) {
        if (Object.getPrototypeOf(o) !== Array.prototype)
          throw new NotJson(describeObject(o), path);
        const out: unknown[] = new Array<unknown>(o.length);
        for (let i = 0; i < o.length; i++) {
          path.push(i);
          out[i] = visit(o[i]);
          path.pop();
        }
        return out;
      }
      const proto: unknown = Object.getPrototypeOf(o);
      if (proto !== Object.prototype && proto !== null) throw new NotJson(describeObject(o), path);
      const out: Record<string, unknown> = {};
      for (const k of Object.keys(o)) {
        path.push(k);
        const item = (o as Record<string, unknown>)[k];
        const copy = item === undefined ? undefined : visit(item);
        path.pop();
        if (copy === undefined) continue;
        // A key named __proto__ stays a plain property, as JSON.parse makes it.
        if (k === '__proto__')
          Object.defineProperty(out, k, {
            value: copy,
            enumerable: true,
            writable: true,
            configurable: true,
          });
        else out[k] = copy;
      }
      return out;
    } finally {
      ancestors.pop();
    }
  };

  try {
    return { ok: true, value: value === undefined ? null : visit(value) };
  } catch (e) {
    if (e instanceof NotJson) return { ok: false, found: e.found, path: formatPath(root, e.path) };
    if (e instanceof RangeError)
      // Nested deeper than the stack allows: JSON.stringify could not have written it either.
      return { ok: false, found: 'a value nested too deeply', path: root };
    // A getter (or a proxy) threw while the value was read.
    const why = e instanceof Error ? e.message : String(e);
    return {
      ok: false,
      found: `a property that threw when read (${why})`,
      path: formatPath(root, path),
    };
  }
}
