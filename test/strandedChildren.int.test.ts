/**
 * A map's items wait for their turn: the worker's stranded-run check must not take a child that
 * was never driven (only its `run.started`) for a stranded run, or every waiting item of a long
 * map would be driven at once, past the map's concurrency and even while its parent is parked
 * (issue 11, found by the 1,000-item map across workers).
 */
import { pino } from 'pino';
import { expect, it } from 'vitest';
import { z } from 'zod';
import { openSqliteBus } from '../src/bus/sqlite.js';
import { childPipelines, map } from '../src/machines/constructs.js';
import { definePipeline, step, type Pipeline } from '../src/machines/pipeline.js';
import { prepare } from '../src/runtime/prepare.js';
import { runWorker } from '../src/runtime/worker.js';
import { harness } from './helpers/harness.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

it('the stranded check leaves a waiting map item to its parent: one at a time stays one', async () => {
  await using h = await harness();
  let running = 0;
  let peak = 0;
  const p = prepare(
    definePipeline({
      name: 'slow-map',
      version: '1',
      input: z.object({ n: z.number() }),
      steps: [
        map({
          name: 'each',
          over: (c) => Array.from({ length: (c.input as { n: number }).n }, (_, i) => i),
          concurrency: 1,
          steps: [
            step({
              name: 'work',
              run: async (c) => {
                peak = Math.max(peak, ++running);
                await sleep(300);
                running--;
                return (c.input as number) * 10;
              },
            }),
          ],
        }),
      ],
    }),
  );
  const pipelines = new Map([
    ['slow-map', p],
    ['slow-map-each', prepare(childPipelines(p.pipeline)[0] as Pipeline)],
  ]);
  const bus = openSqliteBus(h.dbPath, { ackWaitMs: 2_000, pollMs: 20 });
  const ac = new AbortController();
  const lines: Array<{ msg: string; runId?: string }> = [];
  const logger = pino({ level: 'info' }, { write: (s: string) => void lines.push(JSON.parse(s)) });
  // Items wait far longer than the stranded threshold for their turn.
  const worker = runWorker({
    runtime: h.runtime({ logger }),
    bus,
    pipelines,
    concurrency: 8,
    signal: ac.signal,
    logger,
    strandedCheckMs: 100,
    strandedAfterMs: 200,
  });
  try {
    await bus.publishStart({ runId: 'sm', pipeline: 'slow-map', input: { n: 6 } });
    const deadline = Date.now() + 60_000;
    while ((await h.store.log.getRun('sm'))?.status !== 'completed') {
      if (Date.now() > deadline) throw new Error('the map did not complete in 60 s');
      await sleep(50);
    }
    const done = (await h.events('sm')).find((e) => e.event.type === 'CHILDREN_DONE');
    expect(done?.event).toMatchObject({ results: [0, 10, 20, 30, 40, 50] });
    expect(peak).toBe(1);
    expect(lines.filter((l) => l.msg === 'stranded run re-queued')).toEqual([]);
  } finally {
    ac.abort();
    await worker;
    await bus.close();
  }
});
