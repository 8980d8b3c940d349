/**
 * The budget's worst case is a bound (issue 10, item 5): text that tokenises densely (NUL,
 * emoji) cannot spend past the cap, through the real SDK against the fake Claude; and with a
 * token counter the reservation is the count, asked once per distinct request.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { definePipeline, llm } from '../src/machines/pipeline.js';
import { createAnthropicClient } from '../src/model/anthropic.js';
import { reservedForCount } from '../src/model/cost.js';
import { Runtime } from '../src/runtime/driver.js';
import { prepare } from '../src/runtime/prepare.js';
import { openSqliteStore } from '../src/store/sqlite.js';
import { countByBytes, startFakeClaude, type FakeRequest } from '../src/testing/index.js';
import { harness, ofType } from './helpers/harness.js';

const MAX_TOKENS = 100;

/** UTF-8 bytes of the text the model reads: the system prompt and every message. */
function promptBytes(req: FakeRequest): number {
  const messages = (req.body.messages ?? []) as Array<{ content: string }>;
  const system = typeof req.body.system === 'string' ? req.body.system : '';
  return (
    messages.reduce((n, m) => n + Buffer.byteLength(m.content, 'utf8'), 0) +
    Buffer.byteLength(system, 'utf8')
  );
}

/** Ten Haiku calls in a row, each asking `text`. */
function tenCalls(text: string) {
  return prepare(
    definePipeline({
      name: 'dense',
      version: '1',
      input: z.object({}),
      steps: Array.from({ length: 10 }, (_, i) =>
        llm({
          name: `s${i}`,
          model: 'claude-haiku-4-5',
          maxTokens: MAX_TOKENS,
          prompt: () => text,
          output: z.object({ note: z.string() }),
        }),
      ),
    }),
  );
}

describe('budget bound on text that tokenises densely', () => {
  // Haiku 4.5: $1 in, $5 out per MTok. Each call is billed one token per prompt byte (5,000)
  // and all its max_tokens: $0.0055. chars ÷ 3 reserved $0.0023 (NUL) and $0.0014 (emoji), so
  // with these caps the old estimate let through a call that crossed the cap.
  const cases: Array<[string, string, number]> = [
    ['5,000 NUL characters', '\u0000'.repeat(5_000), 0.047],
    ['1,250 emoji (5,000 bytes)', '😀'.repeat(1_250), 0.02],
  ];

  it.each(cases)(
    '%s: spend never exceeds the cap; parks before the call that would cross it',
    async (_, text, cap) => {
      await using h = await harness({
        script: (req) => ({
          kind: 'valid',
          usage: { input_tokens: promptBytes(req), output_tokens: MAX_TOKENS },
        }),
      });
      const r = await h.runtime().start(tenCalls(text), {
        input: {},
        runId: 'dense-1',
        limits: { budgetUsd: cap },
      });
      expect(r.status).toBe('parked');
      expect(r.parked?.reason).toBe('budget');
      expect(r.costUsd).toBeLessThanOrEqual(cap);

      const events = await h.events('dense-1');
      const attempts = ofType(events, 'ATTEMPT');
      const responses = ofType(events, 'MODEL_RESPONSE');
      // Some calls went through, every one of them reached the fake, and the refused one did not.
      expect(responses.length).toBeGreaterThanOrEqual(1);
      expect(h.fake.count).toBe(responses.length);
      expect(attempts.length).toBe(responses.length + 1);
      // Each call cost no more than it reserved (the reservation is a bound)...
      for (const [i, resp] of responses.entries()) {
        const reserved = attempts[i]?.event.estimate;
        expect(resp.event.usage.inputTokens).toBeLessThanOrEqual(reserved?.inputTokens ?? 0);
        expect(resp.event.costUsd).toBeLessThanOrEqual(reserved?.usd ?? 0);
      }
      // ...and the refused call's worst case would have crossed the cap.
      expect(r.costUsd + (attempts.at(-1)?.event.estimate.usd ?? 0)).toBeGreaterThan(cap);
    },
  );
});

describe('budget reservation with a token counter', () => {
  it('reserves the counted tokens + margin, counting each distinct request once at the fake', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'plumbline-count-'));
    await using fake = await startFakeClaude({
      countTokens: countByBytes,
      // s1: a 529 then an answer (a retry of the same request); s2: an invalid answer then a
      // valid one (the re-ask is a new request: the feedback is in it).
      script: [
        { kind: 'status', status: 529 },
        { kind: 'valid' },
        { kind: 'json', value: { wrong: 1 } },
        { kind: 'valid' },
      ],
    });
    const store = openSqliteStore(join(dir, 'store.db'));
    try {
      const model = createAnthropicClient({
        apiKey: 'sk-ant-test-count',
        baseURL: fake.url,
        countTokens: true,
      });
      expect(model.countTokens).toBeDefined();
      const rt = new Runtime({ store, model, random: () => 0 });
      const p = prepare(
        definePipeline({
          name: 'counted',
          version: '1',
          input: z.object({}),
          retry: { baseMs: 10, maxBackoffMs: 10 },
          steps: ['s1', 's2'].map((name) =>
            llm({
              name,
              model: 'claude-haiku-4-5',
              maxTokens: MAX_TOKENS,
              prompt: () => `${name}: 漢字 😀 \u0000`,
              output: z.object({ note: z.string() }),
            }),
          ),
        }),
      );
      const r = await rt.start(p, { input: {}, runId: 'counted-1', limits: { budgetUsd: 1 } });
      expect(r.status).toBe('completed');

      const calls = fake.requests.filter((q) => q.path === '/v1/messages');
      const counts = fake.requests.filter((q) => q.path === '/v1/messages/count_tokens');
      expect(calls.length).toBe(4);
      // Three distinct requests (s1, s2, s2 with feedback): the retry of s1 was not counted again.
      expect(counts.length).toBe(3);
      expect(counts.map((q) => q.body.max_tokens)).toEqual([undefined, undefined, undefined]);
      // Each count was asked before the call it priced.
      const order = fake.requests.map((q) => (q.path.endsWith('count_tokens') ? 'count' : 'call'));
      expect(order).toEqual(['count', 'call', 'call', 'count', 'call', 'count', 'call']);

      const attempts = ofType(await store.log.read('counted-1'), 'ATTEMPT');
      expect(attempts.length).toBe(4);
      for (const [i, a] of attempts.entries()) {
        const call = calls[i];
        if (call === undefined) throw new Error(`no request for attempt ${i}`);
        // The fake counts what the model reads in the call's own body, the same as the count's.
        const counted = countByBytes(call.body);
        expect(a.event.estimate.inputTokens).toBe(reservedForCount(counted));
        expect(a.event.estimate.usd).toBeCloseTo(
          (reservedForCount(counted) + MAX_TOKENS * 5) / 1e6,
          9,
        );
      }
    } finally {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
