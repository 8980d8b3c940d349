/**
 * The rate-limit part of the store contract: every adapter takes, refuses, settles and learns
 * by the same token-bucket rules, and concurrent takes never hand out more than a window holds.
 */
import { expect, it } from 'vitest';
import type { RateLimitStore, Store } from '../../src/store/types.js';

let counter = 0;
/** A fresh key shaped as the runtime makes them (`<model>/<account hash>`). */
const kid = (): string => `claude-sonnet-4-6/${Date.now().toString(36)}${(counter++).toString(36)}`;
const T0 = 1_800_000_000_000;
const one = { requests: 1, inputTokens: 100, outputTokens: 200 };
const limits = (remaining: number, limit = 60) => ({
  requests: { limit, remaining, resetAt: null },
});

/** Registers the rate-limit tests inside a store contract suite (`store()` is its open store). */
export function describeRateLimits(store: () => Store): void {
  const rl = (): RateLimitStore => {
    const port = store().rateLimits;
    if (port === undefined) throw new Error('this store has no rateLimits port');
    return port;
  };

  it('rate limits: an unknown key lets one probe through, the rest wait until it is learned', async () => {
    const key = kid();
    expect(await rl().get(key)).toBeUndefined();
    const first = await rl().take(key, one, T0);
    expect(first).toEqual({ ok: true, charged: {}, probe: true });
    const second = await rl().take(key, one, T0 + 10);
    expect(second).toMatchObject({ ok: false, reason: 'probe' });
    await rl().settle(key, {}, one, T0 + 20);
    await rl().learn(key, limits(59), T0 + 20);
    const state = await rl().get(key);
    expect(state).toMatchObject({ learned: true, probeUntil: null });
    expect(state?.buckets.requests?.limit).toBe(60);
    expect(await rl().take(key, one, T0 + 20)).toMatchObject({ ok: true, probe: false });
  });

  it('rate limits: a learned window refuses past its level and says when it refills', async () => {
    const key = kid();
    await rl().learn(key, limits(2), T0);
    expect(await rl().take(key, one, T0)).toEqual({
      ok: true,
      charged: { requests: 1 },
      probe: false,
    });
    expect(await rl().take(key, one, T0)).toMatchObject({ ok: true });
    // Empty: one request refills in 60 s / 60 = 1 s.
    expect(await rl().take(key, one, T0)).toEqual({
      ok: false,
      waitMs: 1_000,
      reason: 'requests',
    });
    expect(await rl().take(key, one, T0 + 1_000)).toMatchObject({ ok: true });
  });

  it('rate limits: configured levels pace a key never learned; settle gives unused output back', async () => {
    const key = kid();
    const config = { outputTokens: 1_000 };
    const big = { requests: 1, inputTokens: 0, outputTokens: 600 };
    expect(await rl().take(key, big, T0, config)).toMatchObject({
      ok: true,
      charged: { outputTokens: 600 },
    });
    expect(await rl().take(key, big, T0, config)).toMatchObject({
      ok: false,
      reason: 'outputTokens',
    });
    // It produced 100 of the 600: 500 come back, and the next 600 fit (400 + 500 ≥ 600).
    await rl().settle(key, { outputTokens: 600 }, { outputTokens: 100 }, T0, config);
    expect(await rl().take(key, big, T0, config)).toMatchObject({ ok: true });
  });

  it('rate limits: the remaining count caps the local level (to one unit); it never raises it', async () => {
    const key = kid();
    await rl().learn(key, limits(60), T0);
    // 1 left by the provider's count (rounded down): at most 2 here.
    await rl().learn(key, limits(1), T0);
    expect(await rl().take(key, one, T0)).toMatchObject({ ok: true });
    expect(await rl().take(key, one, T0)).toMatchObject({ ok: true });
    expect(await rl().take(key, one, T0)).toMatchObject({ ok: false });
    await rl().learn(key, limits(60), T0);
    expect(await rl().take(key, one, T0)).toMatchObject({ ok: false });
  });

  it('rate limits: 40 concurrent takes on a window of 10 grant exactly 10', async () => {
    const key = kid();
    await rl().learn(key, limits(10), T0);
    const all = await Promise.all(Array.from({ length: 40 }, () => rl().take(key, one, T0)));
    expect(all.filter((r) => r.ok)).toHaveLength(10);
  });

  it('rate limits: refuses an empty key or a cost that is not a finite number ≥ 0', async () => {
    await expect(rl().take('', one, T0)).rejects.toThrow(/key is empty/);
    await expect(rl().take(kid(), { ...one, inputTokens: NaN }, T0)).rejects.toThrow(
      /finite number/,
    );
  });
}
