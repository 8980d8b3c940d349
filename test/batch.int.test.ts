/**
 * Message Batches (issue 15) at the run level, through the real SDK against the fake Claude:
 * a `batch: true` step submits its request into a batch (recorded as BATCH_SUBMITTED), polls it
 * with backoff, reads its item's result, and records the cost at the batch price; runs started
 * together share one batch and one poll; errored and expired items are retried per policy; an
 * invalid answer is re-asked in a new item; a kill while waiting ends the run.
 */
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { map } from '../src/machines/constructs.js';
import { definePipeline, llm } from '../src/machines/pipeline.js';
import { foldLog } from '../src/machines/replay.js';
import { verifyRun } from '../src/cli/verify.js';
import { priceFor } from '../src/model/prices.js';
import { virtualClock } from '../src/runtime/clock.js';
import { prepare } from '../src/runtime/prepare.js';
import type { FakeBatchAction } from '../src/testing/index.js';
import { harness, ofType } from './helpers/harness.js';

const Score = z.object({ label: z.string(), score: z.number().int().min(0).max(10) });

const scorer = (batch: boolean) =>
  definePipeline({
    name: 'scorer',
    version: '1',
    input: z.object({ text: z.string() }),
    ...(batch ? { batch: true } : {}),
    steps: [
      llm({
        name: 'score',
        model: 'claude-sonnet-4-6',
        prompt: ({ input }) => `Score this: ${(input as { text: string }).text}`,
        output: Score,
      }),
    ],
  });

const USAGE = { input_tokens: 1_000, output_tokens: 200 };
const good: FakeBatchAction = { kind: 'json', value: { label: 'ok', score: 7 }, usage: USAGE };
/** GETs of one batch (status polls, and the retrieve the SDK's results() makes first). */
const batchGets = (paths: string[], id: string): number =>
  paths.filter((p) => p === `/v1/messages/batches/${id}`).length;

describe('Message Batches', { timeout: 60_000 }, () => {
  it('a batch step completes through one batch, polled with backoff, at half price', async () => {
    const clock = virtualClock();
    await using h = await harness({ clock, batches: { endAfterPolls: 3, script: () => good } });
    const rt = h.runtime();
    const prepared = prepare(scorer(true));
    const r = await rt.start(prepared, { input: { text: 'a' }, runId: 'b1' });
    expect(r.status).toBe('completed');
    expect(r.outputs.score).toEqual({ label: 'ok', score: 7 });

    const events = await h.events('b1');
    const types = events.map((e) => e.event.type);
    expect(types).toEqual(['run.started', 'ATTEMPT', 'BATCH_SUBMITTED', 'MODEL_RESPONSE']);
    const [submitted] = ofType(events, 'BATCH_SUBMITTED');
    expect(submitted?.event.customId).toBe('b1-score-1');
    expect(submitted?.event.batchId).toMatch(/^msgbatch_fake_/);
    // Never the Messages endpoint; one batch holding one item.
    expect(h.fake.calls).toBe(0);
    expect([h.fake.batches, h.fake.batchItems]).toEqual([1, 1]);
    const create = h.fake.requests.find((q) => q.path === '/v1/messages/batches');
    const items = create?.body.requests as Array<{ custom_id: string; params: { model: string } }>;
    expect(items.map((i) => [i.custom_id, i.params.model])).toEqual([
      ['b1-score-1', 'claude-sonnet-4-6'],
    ]);
    // Three status polls (the third sees it ended), 5 s + 10 s + 20 s of backoff at least.
    const paths = h.fake.requests.map((q) => q.path);
    expect(batchGets(paths, submitted!.event.batchId)).toBe(3 + 1);
    const [resp] = ofType(events, 'MODEL_RESPONSE');
    expect(resp!.event.durationMs).toBeGreaterThanOrEqual(35_000);

    // Sonnet 4.6: $3 in, $15 out per million; the batch price is half: $1.5 and $7.5.
    const expected = (1_000 * 1.5 + 200 * 7.5) / 1_000_000;
    expect(resp!.event.costUsd).toBeCloseTo(expected, 12);
    expect(r.costUsd).toBeCloseTo(0.003, 12);
    expect(priceFor('claude-sonnet-4-6').input).toBe(3);

    // The log replays (every recorded state checked) to the same end and cost.
    const folded = foldLog(prepared.machine, prepared.hash, 'b1', events);
    expect(folded.snapshot.value).toBe('completed');
    expect(folded.snapshot.context.costUsd).toBe(r.costUsd);

    // `verify` prices the batched call at the batch price: with the pipeline, and without it.
    const withPipeline = await verifyRun(h.store, 'b1', new Map([['scorer', prepared]]));
    expect(withPipeline).toMatchObject({ ok: true, problems: [] });
    const without = await verifyRun(h.store, 'b1', new Map());
    expect(without.problems.map((p) => p.reason).join('\n')).not.toMatch(/costUsd/);
  });

  it('reserves half of what the same step reserves as a direct call', async () => {
    await using h = await harness({ script: () => good, clock: virtualClock() });
    const rt = h.runtime();
    await rt.start(prepare(scorer(false)), { input: { text: 'same' }, runId: 'direct' });
    await rt.start(prepare(scorer(true)), { input: { text: 'same' }, runId: 'batched' });
    const [direct] = ofType(await h.events('direct'), 'ATTEMPT');
    const [batched] = ofType(await h.events('batched'), 'ATTEMPT');
    expect(batched!.event.estimate.inputTokens).toBe(direct!.event.estimate.inputTokens);
    expect(batched!.event.estimate.usd).toBeCloseTo(direct!.event.estimate.usd / 2, 9);
    expect(h.fake.calls).toBe(1);
    expect(h.fake.batches).toBe(1);
  });

  it('runs started together share one batch and one poll', async () => {
    await using h = await harness({ batches: { script: () => good } });
    // Sent when two items are in (the delay is far longer than the test).
    const rt = h.runtime({ batch: { maxSize: 2, maxDelayMs: 600_000, poll: { minMs: 20 } } });
    const prepared = prepare(scorer(true));
    const rs = await Promise.all(
      ['s1', 's2'].map((runId) => rt.start(prepared, { input: { text: runId }, runId })),
    );
    expect(rs.map((r) => r.status)).toEqual(['completed', 'completed']);
    expect([h.fake.batches, h.fake.batchItems]).toEqual([2 - 1, 2]);
    const subs = await Promise.all(
      ['s1', 's2'].map(async (id) => ofType(await h.events(id), 'BATCH_SUBMITTED')[0]!.event),
    );
    expect(subs[0]!.batchId).toBe(subs[1]!.batchId);
    expect(subs.map((s) => s.customId)).toEqual(['s1-score-1', 's2-score-1']);
    // One status poll (it ended) and one results() retrieve for both runs, not two each.
    const paths = h.fake.requests.map((q) => q.path);
    expect(batchGets(paths, subs[0]!.batchId)).toBe(2);
    expect(paths.filter((p) => p.endsWith('/results'))).toHaveLength(1);
  });

  it("a map's items, each a child run, go out as one batch (the pipeline default reaches them)", async () => {
    await using h = await harness({ batches: { script: () => good } });
    const rt = h.runtime({ batch: { maxSize: 5, maxDelayMs: 600_000, poll: { minMs: 20 } } });
    const fanout = definePipeline({
      name: 'fanout',
      version: '1',
      input: z.object({ texts: z.array(z.string()) }),
      batch: true,
      steps: [
        map({
          name: 'each',
          over: ({ input }) => (input as { texts: string[] }).texts,
          concurrency: 5,
          steps: [
            llm({
              name: 'score',
              model: 'claude-sonnet-4-6',
              prompt: ({ input }) => `Score this: ${String(input)}`,
              output: Score,
            }),
          ],
        }),
      ],
    });
    const texts = ['a', 'b', 'c', 'd', 'e'];
    const r = await rt.start(prepare(fanout), { input: { texts }, runId: 'm1' });
    expect(r.status).toBe('completed');
    expect(r.outputs.each).toHaveLength(5);
    expect([h.fake.batches, h.fake.batchItems, h.fake.calls]).toEqual([1, 5, 0]);
    // Five items at the batch price, rolled up into the parent.
    expect(r.costUsd).toBeCloseTo(5 * 0.003, 12);
  });

  it('retries an errored or expired item per the retry policy, each in a new batch item', async () => {
    const outcomes: FakeBatchAction[] = [
      { kind: 'status', status: 529 },
      { kind: 'expired' },
      good,
    ];
    await using h = await harness({
      clock: virtualClock(),
      batches: { script: (_item, i) => outcomes[i] ?? good },
    });
    const r = await h.runtime().start(prepare(scorer(true)), { input: { text: 'x' }, runId: 'e1' });
    expect(r.status).toBe('completed');
    const events = await h.events('e1');
    const errors = ofType(events, 'MODEL_ERROR').map((e) => [e.event.kind, e.event.retryable]);
    expect(errors).toEqual([
      ['overloaded', true],
      ['batch_expired', true],
    ]);
    const ids = ofType(events, 'BATCH_SUBMITTED').map((e) => e.event.customId);
    expect(ids).toEqual(['e1-score-1', 'e1-score-2', 'e1-score-3']);
    expect(h.fake.batches).toBe(3);
    // The failed items cost nothing; the answer at the batch price.
    expect(r.costUsd).toBeCloseTo(0.003, 12);
  });

  it('batch items neither wait for nor feed the live endpoint breaker', async () => {
    const outcomes: FakeBatchAction[] = [
      { kind: 'status', status: 529 },
      { kind: 'status', status: 529 },
    ];
    const script = (_item: unknown, i: number): FakeBatchAction => outcomes[i] ?? good;
    await using h = await harness({ clock: virtualClock(), batches: { script } });
    // Opens on the first failure it hears of; it would park a direct call after it.
    const rt = h.runtime({ breakerConfig: { consecutive: 1, minCalls: 1, coolDownMs: 3_600_000 } });
    const r = await rt.start(prepare(scorer(true)), { input: { text: 'x' }, runId: 'br1' });
    expect(r.status).toBe('completed');
    const events = await h.events('br1');
    expect(ofType(events, 'MODEL_ERROR')).toHaveLength(2);
    expect(ofType(events, 'ATTEMPT').map((e) => e.event.breaker)).toEqual([
      'closed',
      'closed',
      'closed',
    ]);
    // A direct call of the same model still finds the breaker closed.
    const direct = await rt.start(prepare(scorer(false)), { input: { text: 'y' }, runId: 'br2' });
    expect(direct.status).toBe('completed');
  });

  it('fails at once on an item errored with a non-retryable error', async () => {
    await using h = await harness({
      clock: virtualClock(),
      batches: { script: () => ({ kind: 'status', status: 400, message: 'prompt too long' }) },
    });
    const r = await h.runtime().start(prepare(scorer(true)), { input: { text: 'x' }, runId: 'f1' });
    expect(r.status).toBe('failed');
    expect(r.error).toMatchObject({ kind: 'bad_request', message: 'prompt too long' });
    expect(h.fake.batches).toBe(1);
  });

  it('re-asks an invalid answer in a new batch item, with the validation errors', async () => {
    const answers: FakeBatchAction[] = [
      { kind: 'json', value: { label: 'ok', score: 99 }, usage: USAGE },
      good,
    ];
    await using h = await harness({
      clock: virtualClock(),
      batches: { script: (_item, i) => answers[i] ?? good },
    });
    const r = await h.runtime().start(prepare(scorer(true)), { input: { text: 'x' }, runId: 'v1' });
    expect(r.status).toBe('completed');
    const verdicts = ofType(await h.events('v1'), 'MODEL_RESPONSE').map((e) => e.event.verdict);
    expect(verdicts).toEqual(['invalid', 'valid']);
    expect(h.fake.batches).toBe(2);
    const creates = h.fake.requests.filter((q) => q.path === '/v1/messages/batches');
    const second = (creates[1]?.body.requests as Array<{ params: { messages: unknown } }>)[0];
    expect(JSON.stringify(second?.params.messages)).toContain('score');
    expect(JSON.stringify(second?.params.messages)).not.toBe(
      JSON.stringify(
        (creates[0]?.body.requests as Array<{ params: { messages: unknown } }>)[0]?.params.messages,
      ),
    );
    // Both answers are billed at the batch price.
    expect(r.costUsd).toBeCloseTo(0.006, 12);
  });

  it('a kill while the run waits on its batch ends it killed and cancels a batch of its item alone', async () => {
    await using h = await harness({ batches: { hold: true, script: () => good } });
    const rt = h.runtime({
      killPollMs: 20,
      batch: { maxDelayMs: 0, poll: { minMs: 20, maxMs: 50 } },
    });
    const prepared = prepare(scorer(true));
    const running = rt.start(prepared, { input: { text: 'k' }, runId: 'k1' });
    for (let i = 0; i < 600; i++) {
      if (ofType(await h.events('k1'), 'BATCH_SUBMITTED').length > 0) break;
      await new Promise((res) => setTimeout(res, 50));
    }
    expect(ofType(await h.events('k1'), 'BATCH_SUBMITTED')).toHaveLength(1);
    await rt.kill('k1', 'operator said so', prepared);
    const r = await running;
    expect(r.status).toBe('killed');
    const batchId = ofType(await h.events('k1'), 'BATCH_SUBMITTED')[0]!.event.batchId;
    const cancels = h.fake.requests.filter((q) => q.path.endsWith('/cancel'));
    expect(cancels.map((q) => q.path)).toEqual([`/v1/messages/batches/${batchId}/cancel`]);
    expect(h.fake.requests.filter((q) => q.path.endsWith('/results'))).toHaveLength(0);
  });

  it('a kill before the batch is sent takes the item out: nothing is submitted', async () => {
    await using h = await harness({ batches: { script: () => good } });
    const rt = h.runtime({ killPollMs: 20, batch: { maxSize: 10, maxDelayMs: 600_000 } });
    const prepared = prepare(scorer(true));
    const running = rt.start(prepared, { input: { text: 'q' }, runId: 'q1' });
    for (let i = 0; i < 600; i++) {
      if (ofType(await h.events('q1'), 'ATTEMPT').length > 0) break;
      await new Promise((res) => setTimeout(res, 50));
    }
    await rt.kill('q1', 'changed my mind', prepared);
    expect((await running).status).toBe('killed');
    const types = (await h.events('q1')).map((e) => e.event.type);
    expect(types).toEqual(['run.started', 'ATTEMPT', 'KILL']);
    expect(h.fake.batches).toBe(0);
  });

  it('a kill leaves a shared batch running: the other run still gets its answer', async () => {
    await using h = await harness({ batches: { hold: true, script: () => good } });
    const rt = h.runtime({
      killPollMs: 20,
      batch: { maxSize: 2, maxDelayMs: 600_000, poll: { minMs: 20, maxMs: 50 } },
    });
    const prepared = prepare(scorer(true));
    const [killed, other] = ['k2', 'o2'].map((runId) =>
      rt.start(prepared, { input: { text: runId }, runId }),
    );
    for (let i = 0; i < 600; i++) {
      const subs = await Promise.all(
        ['k2', 'o2'].map(async (id) => ofType(await h.events(id), 'BATCH_SUBMITTED').length),
      );
      if (subs.every((n) => n === 1)) break;
      await new Promise((res) => setTimeout(res, 50));
    }
    const [sub] = ofType(await h.events('k2'), 'BATCH_SUBMITTED');
    expect(sub?.event.items).toBe(2);
    await rt.kill('k2', 'not this one', prepared);
    expect((await killed)?.status).toBe('killed');
    expect(h.fake.requests.filter((q) => q.path.endsWith('/cancel'))).toHaveLength(0);
    h.fake.holdBatches(false);
    expect((await other)?.status).toBe('completed');
    expect(h.fake.batches).toBe(1);
  });
});
