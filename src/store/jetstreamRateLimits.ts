/**
 * Shared rate limits in a JetStream KV bucket: one entry per key (`kvKey`: the key has '/' in
 * it) holding its bucket state; every change is a compare-and-set on the entry's revision,
 * retried after a short random wait when another process wrote first, so all processes pace
 * by the same buckets.
 */
import type { KV } from '@nats-io/kv';
import { kvKey } from './jetstreamIndex.js';
import { kvCasRevision } from './jetstreamKv.js';
import type { NatsLink } from './natsConnect.js';
import { checkRateState, ratePort, type RateUpdate } from './rateLimits.js';
import { emptyRateState, type RateState } from './rateRules.js';
import type { RateLimitStore } from './types.js';
import { natsCore } from './natsLib.js';

const { nuid } = natsCore;

/** Waits a few random milliseconds, more after each lost race, so racers spread out. */
const backoff = (n: number): Promise<void> =>
  new Promise((r) => setTimeout(r, Math.random() * Math.min(2 + 2 ** n, 25)));

/** The rate-limit port over the `<prefix>_ratelimits` bucket. */
export function kvRateLimits(link: NatsLink, kv: KV): RateLimitStore {
  const read = async (key: string): Promise<{ state: RateState; revision: number } | undefined> => {
    const e = await link.retry(() => kv.get(kvKey(key)));
    if (e === null || e.operation !== 'PUT') return undefined;
    const body = e.json<{ w: string; state: unknown }>();
    return { state: checkRateState(body.state), revision: e.revision };
  };
  const update: RateUpdate = async (key, f) => {
    for (let n = 0; ; n++) {
      const cur = await read(key);
      const { state, result } = f(cur?.state ?? emptyRateState());
      if (state === null) return result;
      // The writer's nonce tells a retried write of ours that landed from someone else's.
      const w = nuid.next();
      const ours = (v: unknown): boolean => (v as { w?: unknown }).w === w;
      const rev = await kvCasRevision(link, kv, kvKey(key), { w, state }, cur?.revision ?? 0, ours);
      if (rev !== null) return result;
      await backoff(n);
    }
  };
  return ratePort(update, async (key) => (await read(key))?.state);
}
