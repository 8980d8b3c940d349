/**
 * Token caps at the run level, through the real SDK against the fake Claude: each call reserves
 * its input bound / its max_tokens first, the run parks (reason `budget`, the detail naming the
 * cap) before the call that would cross it, and `resume` with a raised cap completes the run.
 */
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { openSqliteBus } from '../src/bus/sqlite.js';
import { forkRun } from '../src/runtime/fork.js';
import { runWorker } from '../src/runtime/worker.js';
import { definePipeline, llm } from '../src/machines/pipeline.js';
import { prepare } from '../src/runtime/prepare.js';
import { ndjson, plumbline } from './helpers/cli.js';
import { harness, ofType } from './helpers/harness.js';

/** Four model calls in a row, each with a prompt of about `promptBytes` bytes. */
function fourCalls(promptBytes: number) {
  return prepare(
    definePipeline({
      name: 'tokens',
      version: '1',
      input: z.object({ topic: z.string() }),
      steps: ['one', 'two', 'three', 'four'].map((name) =>
        llm({
          name,
          model: 'claude-haiku-4-5',
          maxTokens: 500,
          prompt: ({ input }) =>
            `${name}: ${(input as { topic: string }).topic} ${'x'.repeat(promptBytes)}`,
          output: z.object({ note: z.string() }),
        }),
      ),
    }),
  );
}

const until = async (what: string, ok: () => Promise<boolean>, ms = 40_000): Promise<void> => {
  const deadline = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
};

describe('token caps', () => {
  it('maxInputTokens parks before the call whose input bound would cross it; resume with a raised cap completes', async () => {
    await using h = await harness({ usage: { input_tokens: 3000, output_tokens: 20 } });
    const rt = h.runtime();
    const p = fourCalls(4500);
    const r = await rt.start(p, {
      input: { topic: 'cats' },
      runId: 'tin-1',
      limits: { maxInputTokens: 10_000 },
    });
    expect(r.status).toBe('parked');
    expect(r.parked?.reason).toBe('budget');
    expect(r.parked?.detail).toMatch(/maxInputTokens/);
    const events = await h.events('tin-1');
    const attempts = ofType(events, 'ATTEMPT');
    const responses = ofType(events, 'MODEL_RESPONSE');
    // The premise: each call's input bound is the prompt's bytes (4500+), well under 7000.
    const bound = attempts[0]?.event.estimate.inputTokens ?? 0;
    expect(bound).toBeGreaterThan(4000);
    expect(bound).toBeLessThanOrEqual(7000);
    // 0 + b ≤ cap, 3000 + b ≤ cap, 6000 + b > cap: two calls made, the third refused unsent.
    expect(responses.length).toBe(2);
    expect(h.fake.count).toBe(2);
    expect(attempts.length).toBe(3);
    const used = responses.reduce((s, e) => s + e.event.usage.inputTokens, 0);
    expect(used).toBeLessThanOrEqual(10_000);
    expect(used + (attempts.at(-1)?.event.estimate.inputTokens ?? 0)).toBeGreaterThan(10_000);

    const done = await rt.resume(p, 'tin-1', { maxInputTokens: 100_000 });
    expect(done.status).toBe('completed');
    expect(h.fake.count).toBe(4);
    const all = await h.events('tin-1');
    expect(ofType(all, 'RESUME')[0]?.event.maxInputTokens).toBe(100_000);
    expect(all[0]?.event).toMatchObject({ limits: { maxInputTokens: 10_000 } });
  });

  it('maxOutputTokens parks before the call whose max_tokens would cross it; resume with a raised cap completes', async () => {
    await using h = await harness({ usage: { input_tokens: 80, output_tokens: 450 } });
    const rt = h.runtime();
    const p = fourCalls(10);
    const r = await rt.start(p, {
      input: { topic: 'dogs' },
      runId: 'tout-1',
      limits: { maxOutputTokens: 1200 },
    });
    // 0 + 500 ≤ 1200, 450 + 500 ≤ 1200, 900 + 500 > 1200.
    expect(r.status).toBe('parked');
    expect(r.parked?.reason).toBe('budget');
    expect(r.parked?.detail).toMatch(/maxOutputTokens: used 900 output tokens .* > cap 1200/);
    const events = await h.events('tout-1');
    const responses = ofType(events, 'MODEL_RESPONSE');
    expect(responses.length).toBe(2);
    expect(h.fake.count).toBe(2);
    const used = responses.reduce((s, e) => s + e.event.usage.outputTokens, 0);
    expect(used).toBeLessThanOrEqual(1200);

    // A raise that still does not fit parks again without a call; a bigger one completes.
    const still = await rt.resume(p, 'tout-1', { maxOutputTokens: 1300 });
    expect(still.status).toBe('parked');
    expect(h.fake.count).toBe(2);
    const done = await rt.resume(p, 'tout-1', { maxOutputTokens: 2000 });
    expect(done.status).toBe('completed');
    expect(h.fake.count).toBe(4);
    const all = await h.events('tout-1');
    expect(ofType(all, 'RESUME').map((e) => e.event.maxOutputTokens)).toEqual([1300, 2000]);
  });

  it('run --max-output-tokens parks and resume --max-output-tokens completes (the CLI flags)', async () => {
    await using h = await harness({ usage: { input_tokens: 80, output_tokens: 450 } });
    const env = { ANTHROPIC_BASE_URL: h.fake.url };
    const r = await plumbline(
      [
        'run',
        'test/fixtures/pipelines/budgeted.ts',
        '--input',
        '{"topic":"cats"}',
        '--max-output-tokens',
        '1200',
        '--store',
        h.dbPath,
        '--json',
        '--run-id',
        'tcli-1',
      ],
      env,
    );
    expect(r.code, r.stderr).toBe(3);
    expect(ndjson(r.stdout).at(-1)).toMatchObject({
      status: 'parked',
      parked: { reason: 'budget', detail: expect.stringMatching(/maxOutputTokens/) as unknown },
    });
    expect(h.fake.count).toBe(2);
    const resumed = await plumbline(
      ['resume', 'tcli-1', '--max-output-tokens', '5000', '--store', h.dbPath, '--json'],
      env,
    );
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(ndjson(resumed.stdout)[0]).toMatchObject({ status: 'completed' });
    expect(h.fake.count).toBe(5);
  });

  it("a worker applies the start command's token cap and the resume command's raise", async () => {
    await using h = await harness({ usage: { input_tokens: 80, output_tokens: 450 } });
    const bus = openSqliteBus(h.dbPath, { ackWaitMs: 5_000, pollMs: 20 });
    const p = fourCalls(10);
    const ac = new AbortController();
    const status = async (): Promise<string | undefined> =>
      (await h.store.log.getRun('tw-1'))?.status;
    try {
      const worker = runWorker({
        runtime: h.runtime({ waitForLease: false }),
        bus,
        pipelines: new Map([['tokens', p]]),
        concurrency: 1,
        signal: ac.signal,
        logger: pino({ level: 'silent' }),
        strandedCheckMs: 0,
        breakerResume: false,
      });
      await bus.publishStart({
        runId: 'tw-1',
        pipeline: 'tokens',
        input: { topic: 'owls' },
        limits: { maxOutputTokens: 1200 },
      });
      await until('the run to park', async () => (await status()) === 'parked');
      expect(h.fake.count).toBe(2);
      await bus.publishResume({ runId: 'tw-1', maxOutputTokens: 2000 });
      await until('the run to complete', async () => (await status()) === 'completed');
      expect(h.fake.count).toBe(4);
      ac.abort();
      await worker;
    } finally {
      ac.abort();
      await bus.close();
    }
  });

  it("a fork with a new budget keeps the source's token caps", async () => {
    await using h = await harness({ usage: { input_tokens: 80, output_tokens: 450 } });
    const rt = h.runtime();
    const p = fourCalls(10);
    await rt.start(p, {
      input: { topic: 'ants' },
      runId: 'tf-1',
      limits: { maxOutputTokens: 1200 },
    });
    const id = await forkRun(rt, p, 'tf-1', {
      at: 1,
      now: Date.now(),
      runId: 'tf-2',
      limits: { budgetUsd: 1 },
    });
    const r = await rt.drive(p, id);
    expect(r.status).toBe('parked');
    expect(r.parked?.detail).toMatch(/maxOutputTokens/);
  });
});
