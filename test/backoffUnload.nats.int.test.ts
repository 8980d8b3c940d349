/**
 * A long backoff on NATS JetStream: a worker lets the run go (its retryAt in the store's wait
 * bucket, the command acked), stops; another worker's sweep wakes it at retryAt and finishes it.
 * In-process workers on a virtual clock, a real nats-server, the real SDK against the fake.
 */
import { expect, it } from 'vitest';
import { openNatsBus } from '../src/bus/nats.js';
import { createAnthropicClient } from '../src/model/anthropic.js';
import { virtualClock } from '../src/runtime/clock.js';
import { Runtime, type RunResult } from '../src/runtime/driver.js';
import { loadPipeline } from '../src/runtime/load.js';
import { silentLogger } from '../src/runtime/logger.js';
import { runWorker } from '../src/runtime/worker.js';
import { openJetStreamStore } from '../src/store/jetstream.js';
import { startFakeClaude } from '../src/testing/index.js';
import { ofType } from './helpers/harness.js';
import { startNatsServer } from './helpers/natsServer.js';

/** Polls `f` until it is true (a generous deadline: the machine is loaded). */
async function until(what: string, f: () => Promise<boolean>, ms = 60_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await f())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

it('JetStream: a worker lets a run in a long backoff go; another worker wakes it at retryAt', async () => {
  await using server = await startNatsServer();
  await using fake = await startFakeClaude({
    script: [
      { kind: 'status', status: 429, headers: { 'retry-after': '30' } },
      { kind: 'json', value: { n: 1 } },
    ],
  });
  const store = await openJetStreamStore({ servers: server.url });
  const bus = await openNatsBus({ servers: server.url, ackWaitMs: 5_000, pullExpiresMs: 1_000 });
  const prepared = await loadPipeline('test/fixtures/pipelines/patient.ts');
  const model = createAnthropicClient({ apiKey: 'sk-ant-test-unload', baseURL: fake.url });
  const clock = virtualClock();
  const worker = (owner: string) => {
    const ac = new AbortController();
    const ended: Array<RunResult | null> = [];
    const runtime = new Runtime({ store, model, clock, owner, waitForLease: false });
    const done = runWorker({
      runtime,
      bus,
      pipelines: new Map([['patient', prepared]]),
      concurrency: 2,
      signal: ac.signal,
      logger: silentLogger,
      strandedCheckMs: 0,
      onRunEnd: (r) => ended.push(r),
    });
    return {
      ended,
      stop: async () => {
        ac.abort();
        await done;
      },
    };
  };
  const status = async () => (await store.log.getRun('n-1'))?.status;
  try {
    const a = worker('host/1/a');
    await bus.publishStart({ runId: 'n-1', pipeline: 'patient', input: {} });
    await until('n-1 let go', async () => a.ended.length === 1);
    expect(a.ended[0]).toMatchObject({ status: 'running', stopped: 'unloaded' });
    const err = ofType(await store.log.read('n-1'), 'MODEL_ERROR')[0];
    expect(await store.waits.wakeTimes(['n-1'])).toEqual(new Map([['n-1', err?.event.retryAt]]));
    await a.stop();
    await clock.sleep(30_000);
    const b = worker('host/2/b');
    await until('n-1 completed', async () => (await status()) === 'completed');
    await b.stop();
    expect(b.ended.map((r) => [r?.runId, r?.status])).toEqual([['n-1', 'completed']]);
    const timer = ofType(await store.log.read('n-1'), 'TIMER')[0];
    expect(timer?.event.at).toBe(err?.event.retryAt);
    expect(fake.calls).toBe(2);
    expect(await store.waits.wakeTimes(['n-1'])).toEqual(new Map());
  } finally {
    await bus.close();
    await store.close();
  }
}, 120_000);
