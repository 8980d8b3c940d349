/**
 * A map whose items park on an open breaker parks its parent (CHILDREN_PARKED, reason breaker);
 * the workers' breaker auto-resume must resume that parent too once the breaker closed, not
 * only the items, or the map waits forever on children that have long completed; and a map
 * whose parked items were resumed by the breaker while another item still ran must not park on
 * that stale news (issue 11). On the embedded store (no worker, no bus) the runtime that parked
 * the map resumes it by itself too (issue 15).
 */
import { pino } from 'pino';
import { expect, it } from 'vitest';
import { z } from 'zod';
import { openSqliteBus } from '../src/bus/sqlite.js';
import { childPipelines, map } from '../src/machines/constructs.js';
import { definePipeline, llm, step, type Pipeline } from '../src/machines/pipeline.js';
import { prepare } from '../src/runtime/prepare.js';
import { runWorker } from '../src/runtime/worker.js';
import type { FakeAction } from '../src/testing/index.js';
import { harness, ofType } from './helpers/harness.js';

const MODEL = 'claude-sonnet-4-6';
/** A map of `n` items, each asking the model once. */
function mapPipeline(name: string): Pipeline {
  return definePipeline({
    name,
    version: '1',
    input: z.object({ n: z.number() }),
    retry: { maxAttempts: 10, baseMs: 100, maxBackoffMs: 100 },
    steps: [
      map({
        name: 'each',
        over: (c) => Array.from({ length: (c.input as { n: number }).n }, (_, i) => i),
        concurrency: 3,
        steps: [
          llm({
            name: 'ask',
            model: MODEL,
            prompt: (c) => `q${String(c.input)}`,
            output: z.object({ ok: z.boolean() }),
          }),
        ],
      }),
    ],
  });
}

const until = async (what: string, ok: () => Promise<boolean>): Promise<void> => {
  const deadline = Date.now() + 60_000;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
};

const breakerConfig = {
  window: 10,
  minCalls: 5,
  failureRate: 0.5,
  consecutive: 5,
  coolDownMs: 1_000,
  probeTimeoutMs: 10_000,
};

it('workers resume a map parked on the breaker once it closed, and the map completes', async () => {
  await using h = await harness();
  h.fake.setScript(() => ({ kind: 'status', status: 529 }));
  const p = prepare(mapPipeline('bmap'));
  const pipelines = new Map([
    ['bmap', p],
    ['bmap-each', prepare(childPipelines(p.pipeline)[0] as Pipeline)],
  ]);
  const bus = openSqliteBus(h.dbPath, { ackWaitMs: 5_000, pollMs: 20 });
  const logger = pino({ level: 'silent' });
  const ac = new AbortController();
  const worker = runWorker({
    runtime: h.runtime({ breakerConfig, killPollMs: 20, logger, random: () => 1 }),
    bus,
    pipelines,
    concurrency: 8,
    signal: ac.signal,
    logger,
    strandedCheckMs: 0,
    breakerResume: { perSecond: 50, pollMs: 100 },
  });
  try {
    await bus.publishStart({ runId: 'bm', pipeline: 'bmap', input: { n: 3 } });
    await until(
      'the map to park',
      async () => (await h.store.log.getRun('bm'))?.status === 'parked',
    );
    const parked = ofType(await h.events('bm'), 'CHILDREN_PARKED');
    expect(parked.map((e) => e.event.reason)).toEqual(['breaker']);
    h.fake.setScript((req): FakeAction =>
      req.path === '/v1/messages' ? { kind: 'json', value: { ok: true } } : { kind: 'valid' },
    );
    await until(
      'the map to complete',
      async () => (await h.store.log.getRun('bm'))?.status === 'completed',
    );
    const done = ofType(await h.events('bm'), 'CHILDREN_DONE')[0]?.event;
    expect(done?.results).toEqual([{ ok: true }, { ok: true }, { ok: true }]);
    expect(ofType(await h.events('bm'), 'RESUME').length).toBeGreaterThanOrEqual(1);
  } finally {
    ac.abort();
    await worker;
    await bus.close();
  }
}, 90_000);

it('an item parked on the breaker and resumed by it while another item runs does not park the map', async () => {
  await using h = await harness();
  h.fake.setScript(() => ({ kind: 'status', status: 529 }));
  const p = prepare(
    definePipeline({
      name: 'bmap2',
      version: '1',
      input: z.object({}),
      retry: { maxAttempts: 10, baseMs: 100, maxBackoffMs: 100 },
      steps: [
        map({
          name: 'each',
          over: () => [0, 1, 2],
          concurrency: 3,
          steps: [
            // Item 0 calls no model and outlasts the others' park and auto-resume.
            step({
              name: 'slow',
              run: async (c) => {
                if (c.input === 0) await new Promise((r) => setTimeout(r, 8_000));
                return c.input;
              },
            }),
            llm({
              name: 'ask',
              model: MODEL,
              skip: (c) => (c.input === 0 ? 'item 0 asks nothing' : null),
              prompt: (c) => `q${String(c.input)}`,
              output: z.object({ ok: z.boolean() }),
            }),
          ],
        }),
      ],
    }),
  );
  const pipelines = new Map([
    ['bmap2', p],
    ['bmap2-each', prepare(childPipelines(p.pipeline)[0] as Pipeline)],
  ]);
  const bus = openSqliteBus(h.dbPath, { ackWaitMs: 5_000, pollMs: 20 });
  const logger = pino({ level: 'silent' });
  const ac = new AbortController();
  const worker = runWorker({
    runtime: h.runtime({ breakerConfig, killPollMs: 20, logger, random: () => 1 }),
    bus,
    pipelines,
    concurrency: 8,
    signal: ac.signal,
    logger,
    strandedCheckMs: 0,
    breakerResume: { perSecond: 50, pollMs: 100 },
  });
  try {
    await bus.publishStart({ runId: 'bm2', pipeline: 'bmap2', input: {} });
    const status = async (id: string): Promise<string | undefined> =>
      (await h.store.log.getRun(id))?.status;
    const deadline = Date.now() + 60_000;
    while ((await status('bm2-each-1')) !== 'parked' || (await status('bm2-each-2')) !== 'parked') {
      if (Date.now() > deadline) throw new Error('items 1 and 2 did not park on the breaker');
      await new Promise((r) => setTimeout(r, 20));
    }
    h.fake.setScript((req): FakeAction =>
      req.path === '/v1/messages' ? { kind: 'json', value: { ok: true } } : { kind: 'valid' },
    );
    while ((await status('bm2')) !== 'completed') {
      if (Date.now() > deadline) throw new Error(`the map is ${await status('bm2')} after 60 s`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const events = await h.events('bm2');
    expect(events.map((e) => e.event.type)).toEqual([
      'run.started',
      'CHILDREN_STARTED',
      'CHILDREN_DONE',
    ]);
    // Items 1 and 2 really parked and were resumed before item 0 ended.
    for (const id of ['bm2-each-1', 'bm2-each-2'])
      expect(ofType(await h.events(id), 'RESUME').length).toBeGreaterThanOrEqual(1);
  } finally {
    ac.abort();
    await worker;
    await bus.close();
  }
}, 90_000);

it('embedded store: a map parked on the breaker resumes by itself once it closed, with no command typed', async () => {
  await using h = await harness();
  h.fake.setScript(() => ({ kind: 'status', status: 529 }));
  const p = prepare(mapPipeline('bmap3'));
  const rt = h.runtime({
    breakerConfig,
    autoResume: { perSecond: 50, pollMs: 100 },
    killPollMs: 20,
    logger: pino({ level: 'silent' }),
    random: () => 1,
  });
  // Five items, three at a time: items 3 and 4 are not started when the map parks.
  const r = await rt.start(p, { input: { n: 5 }, runId: 'bm3' });
  expect(`${r.status}:${r.parked?.reason}`).toBe('parked:breaker');
  expect(ofType(await h.events('bm3'), 'CHILDREN_PARKED').map((e) => e.event.reason)).toEqual([
    'breaker',
  ]);
  h.fake.setScript((req): FakeAction =>
    req.path === '/v1/messages' ? { kind: 'json', value: { ok: true } } : { kind: 'valid' },
  );
  await until(
    'the map to complete',
    async () => (await h.store.log.getRun('bm3'))?.status === 'completed',
  );
  const events = await h.events('bm3');
  expect(ofType(events, 'CHILDREN_DONE')[0]?.event.results).toEqual(Array(5).fill({ ok: true }));
  expect(ofType(events, 'RESUME').length).toBeGreaterThanOrEqual(1);
  // Each item was answered exactly once; only the first three had parked.
  for (const i of [0, 1, 2, 3, 4]) {
    const item = await h.events(`bm3-each-${i}`);
    expect(ofType(item, 'MODEL_RESPONSE')).toHaveLength(1);
    expect(ofType(item, 'RESUME').length > 0, `item ${i}`).toBe(i < 3);
  }
}, 90_000);
