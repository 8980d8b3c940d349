/**
 * Paces model calls by the shared provider rate limits in the store: before a call (and before
 * its ATTEMPT is recorded) a run takes the call's cost from its model's buckets, waiting for
 * room when there is none; after it, the unused part goes back and the response's
 * `anthropic-ratelimit-*` headers correct the levels. See `store/rateRules.ts` for the math.
 */
import type { ModelOutcome } from '../model/types.js';
import type { RateCost, RateLevels, RateTake } from '../store/rateRules.js';
import type { RateLimitStore } from '../store/types.js';

/** Options of shared rate limits (`RuntimeOptions.rateLimits`). */
export interface RateLimitOptions {
  /**
   * Per-minute capacities by model name, `'*'` for every model (a model's own entry wins):
   * paced at the smaller of these and what the headers teach. Absent: learned from the headers.
   * @example { '*': { requests: 50, inputTokens: 40_000 } }
   */
  levels?: Record<string, RateLevels>;
}

/** What a run took before its call, handed back after it. */
export interface RateTicket {
  key: string;
  model: string;
  charged: Partial<RateCost>;
  /** When the take was granted (the request goes out right after). */
  sentAt: number;
}

/** The gate over the store's rate-limit port. */
export class RateGate {
  constructor(
    private readonly store: RateLimitStore,
    private readonly opts: RateLimitOptions = {},
  ) {}

  /** The bucket key of a model on an account: `<model>/<account hash>` (never the key itself). */
  keyOf(model: string, accountId: string | undefined): string {
    return `${model}/${accountId ?? 'default'}`;
  }

  private levelsOf(model: string): RateLevels {
    return { ...this.opts.levels?.['*'], ...this.opts.levels?.[model] };
  }

  /** Takes one call's cost now, or says how long to wait. */
  take(key: string, model: string, cost: RateCost, now: number): Promise<RateTake> {
    return this.store.take(key, cost, now, this.levelsOf(model));
  }

  /** Gives everything a ticket took back (the call was not made). */
  async cancel(t: RateTicket, now: number): Promise<void> {
    await this.store.settle(t.key, t.charged, {}, now, this.levelsOf(t.model));
  }

  /**
   * After the call: give back what it did not use, then learn the response's headers. An
   * outcome of null (the call was killed or stopped mid-way) keeps the whole charge.
   */
  async after(t: RateTicket, outcome: ModelOutcome | null, now: number): Promise<void> {
    const levels = this.levelsOf(t.model);
    await this.store.settle(t.key, t.charged, usedBy(t, outcome), now, levels);
    const answered = outcome !== null && (outcome.ok || outcome.error.status !== null);
    if (answered) await this.store.learn(t.key, outcome.limits ?? null, now);
  }
}

/**
 * What a call used, by its outcome: an answer its usage (cache writes count as input, as the
 * provider counts them; cache reads do not); a 429 nothing (refused, not counted); another
 * error from the provider its request and input; a call that never got an answer all it took.
 */
function usedBy(t: RateTicket, outcome: ModelOutcome | null): Partial<RateCost> {
  if (outcome === null) return t.charged;
  if (outcome.ok) {
    const u = outcome.usage;
    return {
      requests: 1,
      inputTokens: u.inputTokens + u.cacheWrite5mTokens + u.cacheWrite1hTokens,
      outputTokens: u.outputTokens,
    };
  }
  if (outcome.error.kind === 'rate_limit') return {};
  if (outcome.error.status === null) return t.charged;
  return {
    requests: 1,
    inputTokens: t.charged.inputTokens ?? 0,
    outputTokens: outcome.usage?.outputTokens ?? 0,
  };
}
