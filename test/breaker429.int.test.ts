/**
 * A burst of 429s is rate limiting, not an outage: every run waits the `retry-after` the
 * provider sent and completes, and the circuit breaker never opens (it would park every run).
 */
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { definePipeline, llm } from '../src/machines/pipeline.js';
import { Breakers } from '../src/runtime/breakers.js';
import { prepare } from '../src/runtime/prepare.js';
import type { FakeRequest } from '../src/testing/index.js';
import { harness, ofType } from './helpers/harness.js';

const promptOf = (req: FakeRequest): string => {
  const messages = req.body.messages as Array<{ content: string }> | undefined;
  return messages?.[0]?.content ?? '';
};

describe('429s and the circuit breaker', () => {
  it('a burst of 429s on 20 concurrent runs never opens the breaker; each run waits retry-after and completes', async () => {
    // Each prompt is refused once with `retry-after: 1`, then answered.
    const seen = new Map<string, number[]>();
    await using h = await harness({
      script: (req) => {
        if (req.path !== '/v1/messages') return { kind: 'valid' };
        const p = promptOf(req);
        const times = seen.get(p) ?? [];
        times.push(Date.now());
        seen.set(p, times);
        return times.length === 1
          ? { kind: 'status', status: 429, headers: { 'retry-after': '1' } }
          : { kind: 'json', value: { ok: true } };
      },
    });
    const breakerConfig = {
      window: 10,
      minCalls: 5,
      failureRate: 0.5,
      consecutive: 5,
      coolDownMs: 60_000,
      probeTimeoutMs: 60_000,
    };
    const rt = h.runtime({ breakerConfig, killPollMs: 20 });
    const p = prepare(
      definePipeline({
        name: 'limited',
        version: '1',
        input: z.object({ i: z.number() }),
        steps: [
          llm({
            name: 'ask',
            model: 'claude-sonnet-4-6',
            prompt: ({ input }) => `q${(input as { i: number }).i}`,
            output: z.object({ ok: z.boolean() }),
          }),
        ],
      }),
    );
    const N = 20;
    const results = await Promise.all(
      Array.from({ length: N }, (_, i) => rt.start(p, { input: { i }, runId: `rl-${i}` })),
    );
    expect(results.map((r) => `${r.status}:${r.parked?.reason ?? '-'}`)).toEqual(
      Array(N).fill('completed:-'),
    );
    const gate = new Breakers(h.store.control, breakerConfig);
    expect(await gate.state('claude-sonnet-4-6')).toMatchObject({ state: 'closed', opens: 0 });
    for (let i = 0; i < N; i++) {
      const events = await h.events(`rl-${i}`);
      const [error] = ofType(events, 'MODEL_ERROR');
      expect(error?.event).toMatchObject({ kind: 'rate_limit', status: 429, delayMs: 1_000 });
      const attempts = ofType(events, 'ATTEMPT');
      expect(attempts.map((a) => a.event.breaker)).toEqual(['closed', 'closed']);
      // The second call was sent no sooner than the retry-after said, as the fake saw it.
      expect(attempts[1]?.event.at).toBeGreaterThanOrEqual(error?.event.retryAt ?? Infinity);
      const times = seen.get(`q${i}`) ?? [];
      expect(times).toHaveLength(2);
      expect((times[1] ?? 0) - (times[0] ?? 0)).toBeGreaterThanOrEqual(950);
    }
  }, 60_000);
});
