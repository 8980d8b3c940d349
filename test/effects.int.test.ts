/**
 * Effects under the runtime, against a real SQLite store: a result that is not JSON fails the
 * step once (the effect is never run again, not even on resume); an attempt that outlasts its
 * timeout is aborted and counted; a kill aborts a running effect; an effect that ignores its
 * aborted signal is abandoned after the grace, so the drive returns and a worker's slot is freed.
 */
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { openSqliteBus } from '../src/bus/sqlite.js';
import { definePipeline, effect, step, type EffectContext } from '../src/machines/pipeline.js';
import { virtualClock } from '../src/runtime/clock.js';
import type { AbandonedEffect } from '../src/runtime/effectRun.js';
import { prepare } from '../src/runtime/prepare.js';
import { runWorker } from '../src/runtime/worker.js';
import type { Store } from '../src/store/types.js';
import { harness, ofType } from './helpers/harness.js';

interface Line {
  level: number;
  msg: string;
  runId?: string;
  step?: string;
  key?: string;
  reason?: string;
  decision?: string;
}

function capture() {
  const lines: Line[] = [];
  const logger = pino(
    { level: 'info' },
    { write: (s: string) => void lines.push(JSON.parse(s) as Line) },
  );
  return { lines, logger };
}

const until = async (what: string, ok: () => boolean | Promise<boolean>, ms = 60_000) => {
  const deadline = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
};

/** A one-effect pipeline whose effect calls `run` (and counts the calls). */
function oneEffect(
  name: string,
  run: (c: EffectContext) => unknown,
  extra: { timeoutMs?: number; maxAttempts?: number; effectTimeoutMs?: number } = {},
) {
  const calls: EffectContext[] = [];
  const { effectTimeoutMs, ...opts } = extra;
  const pipeline = definePipeline({
    name,
    version: '1',
    input: z.object({}),
    ...(effectTimeoutMs !== undefined ? { effectTimeoutMs } : {}),
    steps: [
      effect({
        name: 'send',
        key: ({ runId }) => `${runId}-send`,
        run: (c) => {
          calls.push(c);
          return run(c);
        },
        ...opts,
      }),
      step({ name: 'after', run: () => ({ ok: true }) }),
    ],
  });
  return { prepared: prepare(pipeline), calls };
}

/** Resolves never on its own; rejects with the signal's reason when it is aborted. */
const honours = (c: EffectContext): Promise<never> =>
  new Promise((_, reject) =>
    c.signal.addEventListener('abort', () => reject(c.signal.reason as Error), { once: true }),
  );

function cyclic(): unknown {
  const a: Record<string, unknown> = { list: [] };
  (a.list as unknown[]).push({ owner: a });
  return a;
}

describe('an effect that returns something that is not JSON', () => {
  it.each([
    ['a BigInt', () => ({ id: 12n }), 'result.id'],
    ['a circular reference (to result)', cyclic, 'result.list[0].owner'],
    ['a function', () => ({ cb: () => 1 }), 'result.cb'],
    ['a Map', () => ({ items: new Map([['a', 1]]) }), 'result.items'],
    ['a Set', () => new Set([1]), 'result'],
    ['NaN', () => ({ score: 0 / 0 }), 'result.score'],
  ])(
    'returning %s: ran once, the run fails naming it, resume never runs it again',
    async (found, value, path) => {
      await using h = await harness();
      const clock = virtualClock();
      const { prepared, calls } = oneEffect('notJson', value);
      const r = await h.runtime({ clock }).start(prepared, { input: {}, runId: 'nj-1' });
      const message = `effect 'send' returned ${found} at ${path}: return plain JSON (objects, arrays, strings, finite numbers, booleans, null)`;
      expect(calls).toHaveLength(1);
      expect(r.status).toBe('failed');
      expect(r.error).toMatchObject({ step: 'send', kind: 'effect', message });
      const failed = ofType(await h.events('nj-1'), 'EFFECT_FAILED');
      expect(failed.map((e) => e.event.retryable)).toEqual([false]);
      expect(ofType(await h.events('nj-1'), 'EFFECT_DONE')).toEqual([]);
      // The ledger knows it ran.
      expect((await h.store.ledger.claim('nj-1', 'send', 'nj-1-send', 0, 'other#99')).status).toBe(
        'done',
      );
      const again = await h.runtime({ clock }).resume(prepared, 'nj-1');
      expect(again.status).toBe('failed');
      expect(calls).toHaveLength(1);
    },
  );

  it('a process that dies after the effect ran but before the failure was recorded: the resume fails the step without running it', async () => {
    await using h = await harness();
    const clock = virtualClock();
    const { prepared, calls } = oneEffect('notJsonCrash', () => ({ at: 1n }));
    // The ledger write goes through, then the process "dies" before appending EFFECT_FAILED.
    const dying: Store = {
      ...h.store,
      ledger: {
        ...h.store.ledger,
        claim: (...a) => h.store.ledger.claim(...a),
        record: async (...a) => {
          await h.store.ledger.record(...a);
          throw new Error('process died');
        },
      },
    };
    const first = h.runtime({ clock, store: dying });
    await expect(first.start(prepared, { input: {}, runId: 'nj-c' })).rejects.toThrow(
      'process died',
    );
    expect(calls).toHaveLength(1);
    const r = await h.runtime({ clock }).drive(prepared, 'nj-c');
    expect(calls).toHaveLength(1);
    expect(r.status).toBe('failed');
    expect(r.error?.message).toBe(
      `effect 'send' returned a BigInt at result.at: return plain JSON (objects, arrays, strings, finite numbers, booleans, null)`,
    );
  });

  it('a transform step returning a Map fails naming it (was stored as {})', async () => {
    await using h = await harness();
    const pipeline = definePipeline({
      name: 'shapeMap',
      version: '1',
      input: z.object({}),
      steps: [step({ name: 'shape', run: () => ({ m: new Map([['k', 1]]) }) })],
    });
    const r = await h.runtime().start(prepare(pipeline), { input: {}, runId: 'tm-1' });
    expect(r.status).toBe('failed');
    expect(r.error?.message).toBe(
      `step 'shape' returned a Map at output.m: return plain JSON (objects, arrays, strings, finite numbers, booleans, null)`,
    );
  });

  it('a plain result is still recorded and replayed, dates as ISO strings', async () => {
    await using h = await harness();
    const { prepared, calls } = oneEffect('plain', () => ({
      at: new Date(Date.UTC(2026, 0, 1)),
      n: 1,
      skip: undefined,
    }));
    const r = await h.runtime().start(prepared, { input: {}, runId: 'pl-1' });
    expect(r.status).toBe('completed');
    expect(r.outputs.send).toEqual({ at: '2026-01-01T00:00:00.000Z', n: 1 });
    expect(calls).toHaveLength(1);
  });
});

describe('an effect that hangs', () => {
  it('is aborted at its timeoutMs, each attempt counted, retried per maxAttempts, then the run fails', async () => {
    await using h = await harness();
    const clock = virtualClock();
    const { prepared, calls } = oneEffect('hang', honours, { timeoutMs: 200, maxAttempts: 2 });
    const r = await h.runtime({ clock }).start(prepared, { input: {}, runId: 'to-1' });
    expect(calls).toHaveLength(2);
    for (const c of calls) {
      expect(c.signal.aborted).toBe(true);
      expect((c.signal.reason as Error).name).toBe('TimeoutError');
    }
    const failed = ofType(await h.events('to-1'), 'EFFECT_FAILED');
    expect(failed.map((e) => [e.event.message, e.event.retryable])).toEqual([
      ["effect 'send' timed out after 200 ms", true],
      ["effect 'send' timed out after 200 ms", true],
    ]);
    expect(ofType(await h.events('to-1'), 'EFFECT_STARTED').map((e) => e.event.attempt)).toEqual([
      1, 2,
    ]);
    expect(r.status).toBe('failed');
    expect(r.error?.message).toBe("effect 'send' timed out after 200 ms");
  });

  it('takes the pipeline-wide effectTimeoutMs when the effect sets none', async () => {
    await using h = await harness();
    const { prepared, calls } = oneEffect('hangPipeline', honours, {
      effectTimeoutMs: 150,
      maxAttempts: 1,
    });
    const r = await h
      .runtime({ clock: virtualClock() })
      .start(prepared, { input: {}, runId: 'to-2' });
    expect(calls).toHaveLength(1);
    expect(r.error?.message).toBe("effect 'send' timed out after 150 ms");
  });

  it('a kill aborts its signal, KILL is recorded and the drive returns', async () => {
    await using h = await harness();
    const { prepared, calls } = oneEffect('killMe', honours);
    const driving = h.runtime({ killPollMs: 20 }).start(prepared, { input: {}, runId: 'k-1' });
    await until('the effect to start', () => calls.length === 1);
    await h.store.control.setKill({ runId: 'k-1', reason: 'operator said so', at: Date.now() });
    const r = await driving;
    expect(r.status).toBe('killed');
    expect(calls[0]?.signal.aborted).toBe(true);
    expect((calls[0]?.signal.reason as Error).message).toBe('run killed: operator said so');
    const events = await h.events('k-1');
    expect(events.at(-1)?.event).toEqual({ type: 'KILL', reason: 'operator said so' });
    expect(ofType(events, 'EFFECT_FAILED')).toEqual([]);
  });
});

describe('an effect that ignores its aborted signal', () => {
  it('is abandoned after the grace: reported, the drive returns, its late result recorded nowhere', async () => {
    await using h = await harness();
    const { lines, logger } = capture();
    const abandoned: AbandonedEffect[] = [];
    let finish: (v: unknown) => void = () => undefined;
    const { prepared, calls } = oneEffect(
      'deaf',
      () => new Promise((resolve) => (finish = resolve)),
      { timeoutMs: 200, maxAttempts: 3 },
    );
    const rt = h.runtime({
      logger,
      effectGraceMs: 300,
      onEffectAbandoned: (a) => void abandoned.push(a),
    });
    const r = await rt.start(prepared, { input: {}, runId: 'ab-1' });
    expect(calls).toHaveLength(1); // not retried: the first copy may still be running
    expect(calls[0]?.signal.aborted).toBe(true);
    expect(r.status).toBe('failed');
    expect(r.error?.message).toBe(
      "effect 'send' timed out after 200 ms and ignored its aborted signal for 300 ms: abandoned, not retried (it may still be running)",
    );
    const line = lines.find((l) => l.decision === 'abandon');
    expect(line).toMatchObject({
      level: 50,
      runId: 'ab-1',
      step: 'send',
      key: 'ab-1-send',
      reason: 'timeout',
    });
    expect(abandoned).toEqual([
      {
        runId: 'ab-1',
        pipeline: 'deaf',
        step: 'send',
        key: 'ab-1-send',
        reason: 'timeout',
        graceMs: 300,
      },
    ]);
    // It finishes much later: nothing is recorded for it.
    const seq = (await h.events('ab-1')).length;
    finish({ late: true });
    await new Promise((res) => setTimeout(res, 200));
    expect(await h.events('ab-1')).toHaveLength(seq);
    const claim = await h.store.ledger.claim('ab-1', 'send', 'ab-1-send', 0, 'other#99');
    expect(claim.status).toBe('unrecorded');
  });

  it('killed: KILL recorded after the grace and the drive returns', async () => {
    await using h = await harness();
    const { lines, logger } = capture();
    const { prepared, calls } = oneEffect('deafKill', () => new Promise(() => undefined));
    const driving = h
      .runtime({ logger, killPollMs: 20, effectGraceMs: 200 })
      .start(prepared, { input: {}, runId: 'ab-2' });
    await until('the effect to start', () => calls.length === 1);
    await h.store.control.setKill({ runId: 'ab-2', reason: 'stop it', at: Date.now() });
    const r = await driving;
    expect(r.status).toBe('killed');
    expect(calls[0]?.signal.aborted).toBe(true);
    expect(lines.find((l) => l.decision === 'abandon')).toMatchObject({
      level: 50,
      runId: 'ab-2',
      key: 'ab-2-send',
      reason: 'killed',
    });
  });

  it("the drive's own stop (shutdown, lease lost): abandoned after the grace, the run left resumable", async () => {
    await using h = await harness();
    const abandoned: AbandonedEffect[] = [];
    const { prepared, calls } = oneEffect('deafStop', () => new Promise(() => undefined));
    const ac = new AbortController();
    const driving = h
      .runtime({ effectGraceMs: 200, onEffectAbandoned: (a) => void abandoned.push(a) })
      .start(prepared, { input: {}, runId: 'ab-3', signal: ac.signal });
    await until('the effect to start', () => calls.length === 1);
    ac.abort();
    const r = await driving;
    expect(r).toMatchObject({ status: 'running', stopped: 'aborted' });
    expect(calls[0]?.signal.aborted).toBe(true);
    expect(abandoned.map((a) => a.reason)).toEqual(['aborted']);
    expect(ofType(await h.events('ab-3'), 'EFFECT_FAILED')).toEqual([]);
  });

  it('a worker with concurrency 1 takes the next run after abandoning one', async () => {
    await using h = await harness();
    const { lines, logger } = capture();
    const calls: string[] = [];
    const pipeline = definePipeline({
      name: 'maybeDeaf',
      version: '1',
      input: z.object({ deaf: z.boolean() }),
      steps: [
        effect({
          name: 'send',
          key: ({ runId }) => runId,
          timeoutMs: 200,
          run: ({ runId, input }) => {
            calls.push(runId);
            return input.deaf ? new Promise(() => undefined) : { sent: runId };
          },
        }),
      ],
    });
    const bus = openSqliteBus(h.dbPath, { ackWaitMs: 2_000, pollMs: 20 });
    const abandoned: AbandonedEffect[] = [];
    const runtime = h.runtime({
      logger,
      effectGraceMs: 200,
      onEffectAbandoned: (a) => void abandoned.push(a),
    });
    const ac = new AbortController();
    try {
      await bus.publishStart({ runId: 'w-deaf', pipeline: 'maybeDeaf', input: { deaf: true } });
      await bus.publishStart({ runId: 'w-next', pipeline: 'maybeDeaf', input: { deaf: false } });
      const worker = runWorker({
        runtime,
        bus,
        pipelines: new Map([['maybeDeaf', prepare(pipeline)]]),
        concurrency: 1,
        signal: ac.signal,
        logger,
        heartbeatMs: 100,
        strandedCheckMs: 0,
      });
      await until(
        'the next run to complete',
        async () => (await h.store.log.getRun('w-next'))?.status === 'completed',
      );
      expect((await h.store.log.getRun('w-deaf'))?.status).toBe('failed');
      expect(calls).toEqual(['w-deaf', 'w-next']);
      expect(abandoned.map((a) => a.runId)).toEqual(['w-deaf']);
      expect(lines.some((l) => l.decision === 'abandon' && l.runId === 'w-deaf')).toBe(true);
      ac.abort();
      await worker;
    } finally {
      ac.abort();
      await bus.close();
    }
  });
});
