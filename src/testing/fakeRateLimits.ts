/**
 * The fake Claude's rate limits, enforced as Anthropic's are: a token bucket per window
 * (requests, input tokens, output tokens) whose capacity is the per-minute limit, starting
 * full and refilled continuously. Output tokens are charged at `max_tokens` on arrival and the
 * unused part given back when the answer is sent. Every response carries the
 * `anthropic-ratelimit-*` headers; a refused request gets a 429 with `retry-after`.
 */

/** Per-minute limits the fake enforces (a window left out is not enforced nor reported). */
export interface FakeRateLimits {
  requestsPerMinute: number;
  inputTokensPerMinute?: number;
  outputTokensPerMinute?: number;
}

interface Bucket {
  name: 'requests' | 'input-tokens' | 'output-tokens';
  capacity: number;
  level: number;
  at: number;
}

/** What {@link FakeRateLimiter.admit} decided for one request. */
export type FakeAdmission =
  { ok: true; outputCharged: number } | { ok: false; retryAfterS: number; window: Bucket['name'] };

/** The fake's buckets (one per server). */
export class FakeRateLimiter {
  private readonly buckets: Bucket[];

  constructor(
    limits: FakeRateLimits,
    private readonly now: () => number,
  ) {
    const t = now();
    const make = (name: Bucket['name'], capacity: number | undefined): Bucket[] =>
      capacity !== undefined && capacity > 0 ? [{ name, capacity, level: capacity, at: t }] : [];
    this.buckets = [
      ...make('requests', limits.requestsPerMinute),
      ...make('input-tokens', limits.inputTokensPerMinute),
      ...make('output-tokens', limits.outputTokensPerMinute),
    ];
  }

  private refill(): void {
    const t = this.now();
    for (const b of this.buckets) {
      b.level = Math.min(b.capacity, b.level + (Math.max(0, t - b.at) * b.capacity) / 60_000);
      b.at = Math.max(t, b.at);
    }
  }

  /** Charges one request of `inputTokens` and `maxTokens` if every window has room. */
  admit(inputTokens: number, maxTokens: number): FakeAdmission {
    this.refill();
    const cost = { requests: 1, 'input-tokens': inputTokens, 'output-tokens': maxTokens };
    let worst: { ms: number; window: Bucket['name'] } | null = null;
    for (const b of this.buckets) {
      const need = Math.min(cost[b.name], b.capacity);
      if (b.level >= need) continue;
      const ms = ((need - b.level) * 60_000) / b.capacity;
      if (worst === null || ms > worst.ms) worst = { ms, window: b.name };
    }
    if (worst !== null)
      return {
        ok: false,
        retryAfterS: Math.max(1, Math.ceil(worst.ms / 1000)),
        window: worst.window,
      };
    let outputCharged = 0;
    for (const b of this.buckets) {
      const need = Math.min(cost[b.name], b.capacity);
      b.level -= need;
      if (b.name === 'output-tokens') outputCharged = need;
    }
    return { ok: true, outputCharged };
  }

  /** Gives back the output tokens charged on arrival and not produced. */
  finish(outputCharged: number, outputUsed: number): void {
    this.refill();
    for (const b of this.buckets)
      if (b.name === 'output-tokens')
        b.level = Math.min(
          b.capacity,
          b.level + outputCharged - Math.min(outputUsed, outputCharged),
        );
  }

  /** The `anthropic-ratelimit-*` headers now (reset: when the window is full again, RFC 3339). */
  headers(): Record<string, string> {
    this.refill();
    const t = this.now();
    const out: Record<string, string> = {};
    for (const b of this.buckets) {
      const fullIn = ((b.capacity - b.level) * 60_000) / b.capacity;
      out[`anthropic-ratelimit-${b.name}-limit`] = String(b.capacity);
      out[`anthropic-ratelimit-${b.name}-remaining`] = String(Math.max(0, Math.floor(b.level)));
      out[`anthropic-ratelimit-${b.name}-reset`] = new Date(Math.ceil((t + fullIn) / 1000) * 1000)
        .toISOString()
        .replace('.000Z', 'Z');
    }
    return out;
  }
}
