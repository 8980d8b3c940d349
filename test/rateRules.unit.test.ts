/**
 * The token-bucket rules of shared rate limits on a virtual clock, and the rate-limit header
 * parser: pure, no store, no timers.
 */
import { describe, expect, it } from 'vitest';
import { rateLimitsFromHeaders } from '../src/model/rateHeaders.js';
import {
  emptyRateState,
  learnRate,
  PROBE_HOLD_MS,
  rateLevels,
  settleRate,
  takeRate,
  type RateCost,
  type RateState,
} from '../src/store/rateRules.js';

const T0 = 1_800_000_000_000;
const call = (inputTokens = 500, outputTokens = 100): RateCost => ({
  requests: 1,
  inputTokens,
  outputTokens,
});

/** Takes until refused at `now`; how many were granted. */
function drain(s: RateState, now: number, cost = call()): { state: RateState; granted: number } {
  let granted = 0;
  // Bounded: an unpaced key grants for ever.
  while (granted < 10_000) {
    const r = takeRate(s, cost, now);
    if (!r.result.ok) return { state: s, granted };
    s = r.state;
    granted++;
  }
  return { state: s, granted };
}

describe('rate rules (virtual clock)', () => {
  const learned = learnRate(
    emptyRateState(),
    {
      requests: { limit: 60, remaining: 60, resetAt: null },
      inputTokens: { limit: 30_000, remaining: 30_000, resetAt: null },
    },
    T0,
  );

  it('a full bucket grants its capacity at once, then one request per refill interval', () => {
    const { state, granted } = drain(learned, T0);
    expect(granted).toBe(60);
    // 60 per minute: the next one fits after 1 s, exactly.
    const refused = takeRate(state, call(), T0);
    expect(refused.result).toEqual({ ok: false, waitMs: 1_000, reason: 'requests' });
    expect(takeRate(state, call(), T0 + 999).result.ok).toBe(false);
    expect(takeRate(state, call(), T0 + 1_000).result.ok).toBe(true);
  });

  it('over ten virtual minutes the grants match the limit: capacity + 60 per minute', () => {
    let s = learned;
    let granted = 0;
    for (let t = T0; t <= T0 + 600_000; t += 250) {
      const d = drain(s, t);
      s = d.state;
      granted += d.granted;
    }
    expect(granted).toBe(60 + 600);
  });

  it('the tightest window decides: input tokens at 30,000/min pace 2,000-token calls at 15/min', () => {
    const { state, granted } = drain(learned, T0, call(2_000));
    expect(granted).toBe(15);
    const r = takeRate(state, call(2_000), T0);
    expect(r.result).toEqual({ ok: false, waitMs: 4_000, reason: 'inputTokens' });
  });

  it('settle gives back unused tokens, takes extra use as debt, and never fills past capacity', () => {
    const t = takeRate(learned, call(10_000), T0);
    expect(t.result).toMatchObject({ ok: true, charged: { inputTokens: 10_000 } });
    const back = settleRate(t.state, { inputTokens: 10_000 }, { inputTokens: 1_000 }, T0);
    expect(rateLevels(back, T0).inputTokens?.level).toBe(29_000);
    // Two calls took 10,000 each; one used 25,000: the extra 15,000 leaves the window in debt.
    const two = takeRate(t.state, call(10_000), T0);
    const debt = settleRate(two.state, { inputTokens: 10_000 }, { inputTokens: 25_000 }, T0);
    expect(rateLevels(debt, T0).inputTokens?.level).toBe(-5_000);
    const wait = takeRate(debt, call(1), T0);
    // 5,001 tokens to refill at 500 per second.
    expect(wait.result).toEqual({ ok: false, waitMs: 10_002, reason: 'inputTokens' });
    const full = settleRate(learned, { inputTokens: 5_000 }, {}, T0);
    expect(rateLevels(full, T0).inputTokens?.level).toBe(30_000);
  });

  it('learn: remaining caps the level to within one unit (its rounding), and never raises it', () => {
    const { state } = drain(learned, T0);
    const told = learnRate(state, { requests: { limit: 60, remaining: 10, resetAt: null } }, T0);
    expect(rateLevels(told, T0).requests?.level).toBe(0);
    const lower = learnRate(learned, { requests: { limit: 60, remaining: 5, resetAt: null } }, T0);
    expect(rateLevels(lower, T0).requests?.level).toBe(6);
    // A window seen for the first time starts at what the provider says is left.
    const fresh = learnRate(
      emptyRateState(),
      { requests: { limit: 60, remaining: 5, resetAt: null } },
      T0,
    );
    expect(rateLevels(fresh, T0).requests?.level).toBe(5);
  });

  it('a key never learned and not configured lets one probe through; the probe hold expires', () => {
    const s0 = emptyRateState();
    const a = takeRate(s0, call(), T0);
    expect(a.result).toEqual({ ok: true, charged: {}, probe: true });
    const b = takeRate(a.state, call(), T0 + 100);
    expect(b.result).toMatchObject({ ok: false, reason: 'probe' });
    // A probe whose process died is replaced after the hold.
    expect(takeRate(a.state, call(), T0 + PROBE_HOLD_MS).result).toMatchObject({ probe: true });
    // A response without headers: the provider states no limits; calls then go unpaced.
    const none = learnRate(a.state, null, T0 + 50);
    expect(drain(none, T0 + 50).granted).toBe(10_000);
  });

  it('configured levels pace an unlearned key and cap a learned limit', () => {
    const cfg = { requests: 10 };
    let s = emptyRateState();
    let granted = 0;
    for (;;) {
      const r = takeRate(s, call(), T0, cfg);
      if (!r.result.ok) break;
      s = r.state;
      granted++;
    }
    expect(granted).toBe(10);
    let g2 = 0;
    let s2 = learned;
    for (;;) {
      const r = takeRate(s2, call(), T0, cfg);
      if (!r.result.ok) {
        expect(r.result.waitMs).toBe(6_000);
        break;
      }
      s2 = r.state;
      g2++;
    }
    expect(g2).toBe(10);
  });
});

describe('rate-limit headers', () => {
  it('reads the three windows from a Headers object, resets as epoch ms', () => {
    const h = new Headers({
      'anthropic-ratelimit-requests-limit': '60',
      'anthropic-ratelimit-requests-remaining': '59',
      'anthropic-ratelimit-requests-reset': '2026-11-30T02:00:01Z',
      'anthropic-ratelimit-input-tokens-limit': '30000',
      'anthropic-ratelimit-input-tokens-remaining': '29500',
      'anthropic-ratelimit-input-tokens-reset': '2026-11-30T02:00:01Z',
      'anthropic-ratelimit-output-tokens-limit': '8000',
      'anthropic-ratelimit-output-tokens-remaining': '8000',
      'anthropic-ratelimit-output-tokens-reset': '2026-11-30T02:00:00Z',
      'anthropic-ratelimit-tokens-limit': '38000',
    });
    expect(rateLimitsFromHeaders(h)).toEqual({
      requests: { limit: 60, remaining: 59, resetAt: Date.parse('2026-11-30T02:00:01Z') },
      inputTokens: {
        limit: 30_000,
        remaining: 29_500,
        resetAt: Date.parse('2026-11-30T02:00:01Z'),
      },
      outputTokens: { limit: 8_000, remaining: 8_000, resetAt: Date.parse('2026-11-30T02:00:00Z') },
    });
  });

  it('reads a plain record in any case; skips incomplete or malformed windows; never throws', () => {
    expect(
      rateLimitsFromHeaders({
        'Anthropic-RateLimit-Requests-Limit': '50',
        'anthropic-ratelimit-requests-remaining': '70',
        'anthropic-ratelimit-input-tokens-limit': 'lots',
        'anthropic-ratelimit-input-tokens-remaining': '1',
        'anthropic-ratelimit-output-tokens-limit': '100',
      }),
    ).toEqual({ requests: { limit: 50, remaining: 50, resetAt: null } });
    expect(rateLimitsFromHeaders({})).toBeNull();
    expect(rateLimitsFromHeaders(null)).toBeNull();
    expect(
      rateLimitsFromHeaders({
        'anthropic-ratelimit-requests-limit': '0',
        'anthropic-ratelimit-requests-remaining': '0',
      }),
    ).toBeNull();
    const hostile = {
      get: () => {
        throw new Error('boom');
      },
    } as unknown as Headers;
    expect(rateLimitsFromHeaders(hostile)).toBeNull();
  });
});

describe('stored rate-limit state', () => {
  it('is checked on read: a corrupt row is refused, a good one kept as it is', async () => {
    const { checkRateState, parseRateState } = await import('../src/store/rateLimits.js');
    const good = {
      v: 1,
      buckets: { requests: { limit: 60, level: 12.5, at: 1_000 } },
      learned: true,
      probeUntil: null,
    };
    expect(parseRateState(JSON.stringify(good))).toEqual(good);
    expect(parseRateState(undefined).buckets).toEqual({});
    expect(() => checkRateState({ ...good, v: 2 })).toThrow(/version 1/);
    expect(() =>
      checkRateState({ ...good, buckets: { requests: { limit: 60, level: 'x', at: 1 } } }),
    ).toThrow(/bucket 'requests'/);
    expect(() => checkRateState({ ...good, learned: 'yes' })).toThrow(/learned/);
    expect(() => checkRateState({ ...good, probeUntil: 'soon' })).toThrow(/probeUntil/);
  });
});
