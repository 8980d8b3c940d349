/**
 * The one rule for a store spec (`--store`, `PLUMBLINE_STORE`, a client's URL): a SQLite file
 * path, or `nats://host:port[,host2:port]` (`tls://` for TLS). Anything that looks like a URL
 * but is not one of those is refused before anything is opened or created, so a typo never
 * becomes a new empty database in a folder named `nats:`.
 */
import { UsageError } from '../errors.js';

/** What a store spec names. */
export type StoreTarget =
  | { kind: 'sqlite'; path: string }
  /** `servers` are full URLs (`nats://user:pass@host:4222`), credentials kept. */
  | { kind: 'nats'; servers: string[] };

/** The accepted forms, as the refusal lists them. */
export const STORE_FORMS =
  'a SQLite file path (e.g. .plumbline/plumbline.db or ./runs.db), or nats://host:port[,host2:port] (tls://host:port for TLS)';

const NATS_SCHEMES = new Set(['nats', 'tls']);
/** `scheme:` with at least two letters, so that a Windows drive (`C:\runs.db`) stays a path. */
const SCHEME = /^([a-z][a-z0-9+.-]+):/i;
/** A known scheme missing its colon (`nats//host`): a typo, not a folder named `nats`. */
const COLONLESS = /^(nats|tls|sqlite|file|https?|wss?)\/\//i;

/** The spec with any `user:pass@` masked: a refused spec is echoed, its credentials never. */
function shown(spec: string): string {
  return spec.replace(/[^/@,]+@/g, '***@');
}

/**
 * Parses a store spec, or throws a UsageError naming the accepted forms.
 * @example parseStoreSpec('nats://a:4222,b:4222') // { kind: 'nats', servers: ['nats://a:4222', 'nats://b:4222'] }
 * @example parseStoreSpec('nats:/a') // throws: malformed nats URL
 */
export function parseStoreSpec(spec: string, source = '--store'): StoreTarget {
  const raw = spec.trim();
  const refuse = (why: string): never => {
    throw new UsageError(`${source} '${shown(raw)}': ${why}. Accepted: ${STORE_FORMS}`);
  };
  if (raw === '') return refuse('empty');
  const colonless = COLONLESS.exec(raw);
  if (colonless !== null)
    return refuse(`looks like a ${colonless[1]} URL with no ':' after the scheme`);
  const scheme = SCHEME.exec(raw)?.[1]?.toLowerCase();
  if (scheme === undefined) return { kind: 'sqlite', path: raw };
  if (scheme === 'sqlite' || scheme === 'file')
    return refuse(`a SQLite store is given as its file path, without ${scheme}:`);
  if (!NATS_SCHEMES.has(scheme))
    return refuse(
      `unknown scheme '${scheme}:' (a file path whose name holds ':' must start with ./)`,
    );
  const servers = raw.split(',').map((part, i) => natsServer(part.trim(), scheme, i, refuse));
  return { kind: 'nats', servers };
}

/** One server of a NATS spec; after the first, `host:port` borrows the first one's scheme. */
function natsServer(
  part: string,
  firstScheme: string,
  index: number,
  refuse: (why: string) => never,
): string {
  const hasScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(part);
  if (index === 0 || hasScheme) {
    const m = /^([a-z][a-z0-9+.-]*):\/\/[^/]/i.exec(part);
    if (m === null) return refuse(`malformed ${firstScheme} URL: write ${firstScheme}://host:port`);
    if (!NATS_SCHEMES.has((m[1] ?? '').toLowerCase()))
      return refuse(`server ${index + 1} has an unknown scheme`);
  }
  const text = hasScheme || index === 0 ? part : `${firstScheme}://${part}`;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return refuse(`server ${index + 1} is not a valid host:port`);
  }
  if (url.hostname === '') return refuse(`server ${index + 1} has no host`);
  if (url.pathname !== '' && url.pathname !== '/')
    return refuse(`server ${index + 1} has a path (${url.pathname}); give only host:port`);
  return text;
}
