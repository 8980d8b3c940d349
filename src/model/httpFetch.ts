/**
 * The `fetch` the SDK is given: node:http(s) with keep-alive agents instead of Node's WHATWG fetch.
 * Node's fetch (undici) moves every request and response through web streams and its fetch
 * algorithm: 460–480 µs of CPU per request against a local server, where node:http takes
 * 125–195 µs for the same bytes and this transport 205–230 (`bench/transportMicro.ts`, loaded
 * machine). A JSON answer is read whole before the promise resolves and returned as a
 * {@link BufferedResponse}; any other answer (an event stream, a batch's results) as a WHATWG
 * `Response` streaming from the socket.
 *
 * What fetch did that is kept: the SDK's signal (its timeout and the caller's abort) ends the
 * request or the body read and rejects with the signal's reason; a 10 s connect timeout (undici's);
 * connection errors reject with `TypeError('fetch failed', { cause })`; idle connections are
 * closed after 4 s, or 1 s before a server's `Keep-Alive: timeout` (undici's rule). A redirect is
 * not followed here: the request is sent again by `follow` (the platform fetch, which follows it),
 * as `fetchWithoutCopy` does. A request this transport does not take (a stream or form body, a
 * `Request` object, fetch options the SDK does not send, another scheme) goes to `fallback`.
 * Not supported here: HTTP proxies and a dispatcher set with undici's `setGlobalDispatcher`
 * (Node 20's fetch ignores `HTTPS_PROXY` too); pass `fetch` to `createAnthropicClient` for those.
 */
import { exchange, type Target } from './httpExchange.js';

/** The init members the SDK sends (others, such as a dispatcher in `fetchOptions`, go to fetch). */
const TAKEN = new Set(['method', 'headers', 'body', 'signal', 'redirect', 'window']);

/**
 * Wraps the two fetches it falls back to: `fallback` for requests it does not take, `follow` to
 * send a redirected request again.
 * @example new Anthropic({ fetch: httpFetch(fetchWithoutCopy(fetch), fetch) })
 */
export function httpFetch(fallback: typeof fetch, follow: typeof fetch): typeof fetch {
  return (input, init) => {
    const target = taken(input, init);
    if (target === null) return fallback(input, init);
    return exchange(target, init ?? {}, () => follow(input, init));
  };
}

/** Targets by URL: the SDK sends the same few URLs again and again (parsing one costs ≈ 5 µs). */
const targets = new Map<string, Target | null>();
const TARGETS_KEPT = 64;

/** The target when this transport takes the request, else null. */
function taken(input: RequestInfo | URL, init: RequestInit | undefined): Target | null {
  if (typeof input !== 'string' && !(input instanceof URL)) return null;
  if (init !== undefined) {
    for (const key in init) if (!TAKEN.has(key)) return null;
    if (init.redirect !== undefined && init.redirect !== 'follow') return null;
    if (init.window !== undefined && init.window !== null) return null;
    const { body } = init;
    if (
      body !== undefined &&
      body !== null &&
      typeof body !== 'string' &&
      !ArrayBuffer.isView(body)
    )
      return null;
    const method = init.method?.toUpperCase();
    if ((method === 'GET' || method === 'HEAD') && body !== undefined && body !== null) return null;
  }
  const href = typeof input === 'string' ? input : input.href;
  let target = targets.get(href);
  if (target === undefined) {
    target = targetOf(href);
    if (targets.size >= TARGETS_KEPT) targets.clear();
    targets.set(href, target);
  }
  return target;
}

function targetOf(href: string): Target | null {
  let url: URL;
  try {
    url = new URL(href);
  } catch {
    return null; // fetch says why
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return null;
  // fetch refuses credentials in a URL: let it say so.
  if (url.username !== '' || url.password !== '') return null;
  return {
    protocol: url.protocol,
    // node:http wants an IPv6 host without its brackets.
    hostname: url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname,
    port: url.port,
    path: url.pathname + url.search,
    href: url.href,
  };
}
