/**
 * The platform's `fetch`, asked not to copy each request: what the SDK sends with when the caller
 * gives a `fetch`, and what plumbline's node:http transport (httpFetch.ts) hands over to for a
 * request it does not take. Node's fetch copies a request before sending it (the body stream
 * teed, two more web streams made) so that it could follow a redirect — unless redirects are
 * errors and the request has no window: about 60 µs of CPU per call against a local server. The API never redirects; when a server does (a proxy),
 * the request is sent once more as before, redirects followed: one extra request on that path only.
 */

/**
 * The cause Node's fetch (undici 5–7: `makeNetworkError('unexpected redirect')`) gives a redirect
 * met under `redirect: 'error'`. If a Node release changed it, redirects would fail as connection
 * errors: test/model/sdkFetch.int.test.ts follows a real 307 to catch that.
 */
const REDIRECT_REFUSED = 'unexpected redirect';

/**
 * Wraps `platform` (the global `fetch` when the client is made, as the SDK would take it).
 * @example new Anthropic({ fetch: fetchWithoutCopy(globalThis.fetch) })
 */
export function fetchWithoutCopy(platform: typeof fetch): typeof fetch {
  return async (input, init) => {
    // A caller that chose how redirects go keeps its choice (and the copy).
    if (init?.redirect !== undefined && init.redirect !== 'follow') return platform(input, init);
    try {
      return await platform(input, { ...init, redirect: 'error', window: null });
    } catch (e) {
      if (!redirectRefused(e) || !resendable(init?.body)) throw e;
      return platform(input, init);
    }
  };
}

function redirectRefused(e: unknown): boolean {
  const cause: unknown = e instanceof TypeError ? e.cause : undefined;
  return cause instanceof Error && cause.message === REDIRECT_REFUSED;
}

/** A body that can be sent twice (the SDK's JSON strings; not a stream, which is read once). */
function resendable(body: RequestInit['body']): boolean {
  return (
    body === undefined ||
    body === null ||
    typeof body === 'string' ||
    body instanceof ArrayBuffer ||
    ArrayBuffer.isView(body) ||
    body instanceof URLSearchParams ||
    body instanceof Blob ||
    body instanceof FormData
  );
}
