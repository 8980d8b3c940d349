/**
 * Reads the provider's rate-limit headers (`anthropic-ratelimit-{requests,input-tokens,
 * output-tokens}-{limit,remaining,reset}`) into numbers. Pure: no I/O, no clock, never throws.
 */

/** One rate-limit window as a response reported it: its size, what is left, when it is full again. */
export interface RateWindow {
  /** The most the window allows per minute. */
  limit: number;
  /** What is left of it now (the provider's view when it answered). */
  remaining: number;
  /** When the window is full again (epoch ms), or null when absent or unparseable. */
  resetAt: number | null;
}

/** The windows one response reported (a window is absent when its headers were). */
export interface RateLimitsSeen {
  requests?: RateWindow;
  inputTokens?: RateWindow;
  outputTokens?: RateWindow;
}

/** The three windows plumbline paces calls by, and the header infix of each. */
export const RATE_DIMENSIONS = [
  ['requests', 'requests'],
  ['inputTokens', 'input-tokens'],
  ['outputTokens', 'output-tokens'],
] as const;

/** Each window's three header names, built once (not per response). */
const HEADER_NAMES = RATE_DIMENSIONS.map(([dim, infix]) => ({
  dim,
  limit: `anthropic-ratelimit-${infix}-limit`,
  remaining: `anthropic-ratelimit-${infix}-remaining`,
  reset: `anthropic-ratelimit-${infix}-reset`,
}));

type HeaderBag = Headers | Record<string, string | string[] | undefined> | null | undefined;

/**
 * The rate-limit windows in `headers` (a fetch `Headers`, or a plain record as Node gives),
 * or null when none is complete. A window needs a whole `limit` > 0 and a `remaining` ≥ 0;
 * `reset` is an RFC 3339 time (null when missing).
 * @example rateLimitsFromHeaders(response.headers)?.requests // { limit: 60, remaining: 59, resetAt: 1764470400000 }
 */
export function rateLimitsFromHeaders(headers: HeaderBag): RateLimitsSeen | null {
  if (headers === null || headers === undefined) return null;
  const out: RateLimitsSeen = {};
  let any = false;
  for (const names of HEADER_NAMES) {
    // No limit, no window: its other headers are not looked up.
    const limit = whole(get(headers, names.limit));
    if (limit === null || limit <= 0) continue;
    const remaining = whole(get(headers, names.remaining));
    if (remaining === null) continue;
    const dim = names.dim;
    const reset = get(headers, names.reset);
    const at = reset === null ? NaN : Date.parse(reset);
    out[dim] = {
      limit,
      remaining: Math.min(remaining, limit),
      resetAt: Number.isNaN(at) ? null : at,
    };
    any = true;
  }
  return any ? out : null;
}

/** A whole number ≥ 0 from a header value, else null. */
function whole(v: string | null): number | null {
  if (v === null || v.trim() === '') return null;
  const n = Number(v);
  return Number.isFinite(n) && n >= 0 ? Math.floor(n) : null;
}

function get(headers: NonNullable<HeaderBag>, name: string): string | null {
  try {
    if (typeof (headers as Headers).get === 'function') return (headers as Headers).get(name);
    const record = headers as Record<string, string | string[] | undefined>;
    const key = Object.keys(record).find((k) => k.toLowerCase() === name);
    const v = key === undefined ? undefined : record[key];
    return Array.isArray(v) ? (v[0] ?? null) : (v ?? null);
  } catch {
    return null;
  }
}
