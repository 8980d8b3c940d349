/**
 * Redaction by value: the secrets this process knows (the model API key, store credentials)
 * are replaced by `[redacted]` in any string, at any depth, wherever they were echoed — a
 * provider's error message, a log line, an event. Pure, apart from {@link secretsFromEnv}
 * which only reads the environment object it is given.
 */

/** What a secret is replaced with. */
export const REDACTED = '[redacted]';

/** Shorter values are not secrets worth shredding text for (`nats://a:b@host`). */
export const MIN_SECRET_LENGTH = 8;

/** Field names whose values are censored whatever they hold (compared lower-case, without `-`/`_`). */
export const SECRET_FIELD_NAMES: ReadonlySet<string> = new Set([
  'apikey',
  'xapikey',
  'authorization',
  'authtoken',
  'token',
  'password',
  'pass',
  'secret',
]);

/** Environment variables whose whole value is a secret. */
const SECRET_ENV = ['ANTHROPIC_API_KEY', 'ANTHROPIC_AUTH_TOKEN', 'NATS_TOKEN', 'NATS_PASSWORD'];

/** `PLUMBLINE_*` variables named like a secret are secrets too. */
const SECRET_ENV_NAME = /^PLUMBLINE_\w*(KEY|TOKEN|SECRET|PASSWORD|PASS|CREDENTIALS?)$/;

/**
 * The normalised list of secret values: at least {@link MIN_SECRET_LENGTH} characters, with the
 * URL-encoded and JSON-escaped spellings added, no duplicates, longest first (so a secret that
 * contains another is replaced whole).
 * @example secretValues([process.env.ANTHROPIC_API_KEY, undefined]) // ['sk-ant-…']
 */
export function secretValues(candidates: Iterable<string | null | undefined>): string[] {
  const out = new Set<string>();
  for (const c of candidates) {
    if (typeof c !== 'string' || c.length < MIN_SECRET_LENGTH) continue;
    out.add(c);
    out.add(encodeURIComponent(c));
    out.add(JSON.stringify(c).slice(1, -1));
  }
  return [...out].sort((a, b) => b.length - a.length);
}

/**
 * The credentials inside a URL or a comma-separated list of URLs: the password of
 * `nats://user:pass@host`, the token of `nats://token@host`, and `?token=`/`?password=`
 * parameters, decoded. Anything that does not parse as a URL gives nothing.
 * @example urlSecrets('nats://app:s3cret-pass@nats:4222') // ['s3cret-pass']
 */
export function urlSecrets(spec: string): string[] {
  const found: string[] = [];
  for (const part of spec.split(',')) {
    let url: URL;
    try {
      url = new URL(part.trim());
    } catch {
      continue;
    }
    if (url.password !== '') found.push(decode(url.password), url.password);
    else if (url.username !== '') found.push(decode(url.username), url.username);
    for (const [name, value] of url.searchParams) {
      if (SECRET_FIELD_NAMES.has(fieldKey(name))) found.push(value);
    }
  }
  return found;
}

/**
 * The secrets of this process's configuration: `ANTHROPIC_API_KEY`, `ANTHROPIC_AUTH_TOKEN`,
 * `NATS_TOKEN`, `NATS_PASSWORD`, `PLUMBLINE_*` variables named like a secret, and the
 * credentials in `PLUMBLINE_STORE`, `NATS_URL` and each of `specs` (e.g. a `--store` URL).
 */
export function secretsFromEnv(
  env: Readonly<Record<string, string | undefined>> = process.env,
  specs: ReadonlyArray<string | undefined> = [],
): string[] {
  const raw: Array<string | undefined> = SECRET_ENV.map((name) => env[name]);
  for (const [name, value] of Object.entries(env)) {
    if (SECRET_ENV_NAME.test(name)) raw.push(value);
  }
  for (const spec of [env.PLUMBLINE_STORE, env.NATS_URL, ...specs]) {
    if (spec !== undefined && spec !== '') raw.push(...urlSecrets(spec));
  }
  return secretValues(raw);
}

/** Replaces every occurrence of each secret in `text` with `[redacted]`. */
export function scrubText(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const s of secrets) {
    if (s.length >= MIN_SECRET_LENGTH && out.includes(s)) out = out.split(s).join(REDACTED);
  }
  return out;
}

/** Options of {@link redactValue}. */
export interface RedactOptions {
  /** Also censor the values of fields with these names (see {@link SECRET_FIELD_NAMES}). */
  fieldNames?: ReadonlySet<string>;
}

/**
 * A copy of a JSON-like value with every secret scrubbed from every string, object key
 * included, at any depth. Unchanged parts are shared, and the value itself is returned when
 * nothing matched. Objects that are not plain (Error, Date, class instances) are left as they
 * are: scrub their text where they are written (see the logger's `streamWrite` hook).
 * @example redactValue({ a: [{ msg: `bad key ${key}` }] }, [key]) // { a: [{ msg: 'bad key [redacted]' }] }
 */
export function redactValue<T>(value: T, secrets: readonly string[], opts: RedactOptions = {}): T {
  if (secrets.length === 0 && opts.fieldNames === undefined) return value;
  return walk(value, secrets, opts.fieldNames, new Set()) as T;
}

function walk(
  value: unknown,
  secrets: readonly string[],
  fields: ReadonlySet<string> | undefined,
  path: Set<object>,
): unknown {
  if (typeof value === 'string') return scrubText(value, secrets);
  if (value === null || typeof value !== 'object' || path.has(value)) return value;
  if (Array.isArray(value)) {
    path.add(value);
    let copy: unknown[] | undefined;
    value.forEach((item, i) => {
      const next = walk(item, secrets, fields, path);
      if (next !== item) (copy ??= [...value])[i] = next;
    });
    path.delete(value);
    return copy ?? value;
  }
  if (!isPlainObject(value)) return value;
  path.add(value);
  // Copy only once something changed: most objects hold no secret.
  const keys = Object.keys(value);
  let copy: Record<string, unknown> | undefined;
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i]!;
    const item = value[key];
    const k = scrubText(key, secrets);
    const next =
      fields !== undefined && item !== undefined && item !== null && isSecretField(fields, key)
        ? REDACTED
        : walk(item, secrets, fields, path);
    if (copy === undefined && (k !== key || next !== item)) {
      copy = {};
      for (let j = 0; j < i; j++) copy[keys[j]!] = value[keys[j]!];
    }
    if (copy !== undefined) copy[k] = next;
  }
  path.delete(value);
  return copy ?? value;
}

function isSecretField(fields: ReadonlySet<string>, key: string): boolean {
  // Field names of secrets are short: skip the normalising of long keys.
  if (key.length > 24) return false;
  // Log lines repeat the same few keys: the verdict per key is kept (per set of names).
  let known = verdicts.get(fields);
  if (known === undefined) verdicts.set(fields, (known = new Map()));
  let secret = known.get(key);
  if (secret === undefined) {
    secret = fields.has(fieldKey(key));
    if (known.size < MAX_VERDICTS) known.set(key, secret);
  }
  return secret;
}

/** Verdicts of {@link isSecretField}, per set of field names (bounded: keys can be data). */
const verdicts = new WeakMap<ReadonlySet<string>, Map<string, boolean>>();
const MAX_VERDICTS = 4096;

function isPlainObject(value: object): value is Record<string, unknown> {
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}

function fieldKey(name: string): string {
  return name.toLowerCase().replace(/[-_]/g, '');
}

function decode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}
