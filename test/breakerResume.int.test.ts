/**
 * Breaker auto-resume through the real SDK against the fake Claude: 529s open the breaker, runs
 * park, the fake recovers, a parked run is resumed as the half-open probe (the first probe still
 * meets a 529 and re-opens it), the next probe succeeds and every parked run completes — with
 * no command typed. On the embedded store (one Runtime) and with an in-process worker on the
 * SQLite bus.
 */
import { pino, type Logger } from 'pino';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { openSqliteBus } from '../src/bus/sqlite.js';
import type { StoredEnvelope } from '../src/machines/events.js';
import { definePipeline, llm } from '../src/machines/pipeline.js';
import { createAnthropicClient } from '../src/model/anthropic.js';
import { Breakers } from '../src/runtime/breakers.js';
import { Runtime } from '../src/runtime/driver.js';
import { prepare } from '../src/runtime/prepare.js';
import { runWorker } from '../src/runtime/worker.js';
import type { FakeAction } from '../src/testing/index.js';
import { harness, ofType, type Harness } from './helpers/harness.js';

const MODEL = 'claude-sonnet-4-6';
const breakerConfig = {
  window: 10,
  minCalls: 5,
  failureRate: 0.5,
  consecutive: 5,
  coolDownMs: 1_000,
  probeTimeoutMs: 10_000,
};
const autoResume = { perSecond: 50, pollMs: 100 };

const pipeline = prepare(
  definePipeline({
    name: 'fleet',
    version: '1',
    input: z.object({ i: z.number() }),
    retry: { maxAttempts: 10, baseMs: 100, maxBackoffMs: 100 },
    steps: [
      llm({
        name: 'ask',
        model: MODEL,
        prompt: ({ input }) => `q${(input as { i: number }).i}`,
        output: z.object({ ok: z.boolean() }),
      }),
    ],
  }),
);

interface Line {
  msg: string;
  decision?: string;
  runId?: string;
}

function capture(): { logger: Logger; lines: Line[] } {
  const lines: Line[] = [];
  const logger = pino(
    { level: 'info' },
    { write: (s: string) => void lines.push(JSON.parse(s) as Line) },
  );
  return { logger, lines };
}

const until = async (what: string, ok: () => Promise<boolean>, ms = 40_000): Promise<void> => {
  const deadline = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
};

/**
 * The fake is down (529) until `recover()`; then the first request (the first probe) still
 * meets a 529 and every later one is answered. Counts the answers.
 */
function provider(h: Harness): { recover(): void; answered(): number } {
  let answered = 0;
  h.fake.setScript(() => ({ kind: 'status', status: 529 }));
  return {
    recover: () => {
      let n = 0;
      h.fake.setScript((req): FakeAction => {
        if (req.path !== '/v1/messages') return { kind: 'valid' };
        if (n++ === 0) return { kind: 'status', status: 529 };
        answered++;
        return { kind: 'json', value: { ok: true } };
      });
    },
    answered: () => answered,
  };
}

/** What every run's log must show once all completed with no command typed. */
async function checkRuns(h: Harness, ids: string[]): Promise<StoredEnvelope[][]> {
  const logs = await Promise.all(ids.map((id) => h.events(id)));
  for (const events of logs) {
    expect(events.at(-1)?.state.status).toBe('completed');
    // Parked by the breaker at least once, resumed by itself, answered exactly once.
    expect(ofType(events, 'ATTEMPT').some((a) => a.event.breaker === 'open')).toBe(true);
    expect(ofType(events, 'RESUME').length).toBeGreaterThanOrEqual(1);
    expect(ofType(events, 'MODEL_RESPONSE')).toHaveLength(1);
  }
  const state = await new Breakers(h.store.control).state(MODEL);
  expect(state.state).toBe('closed');
  // The first probe after the recovery failed: the breaker opened at least twice.
  expect(state.opens).toBeGreaterThanOrEqual(2);
  // Every opening after the first was a failed probe, and the last probe closed it.
  const probes = logs
    .flatMap((l) => ofType(l, 'ATTEMPT'))
    .filter((a) => a.event.breaker === 'half_open');
  expect(probes).toHaveLength(state.opens);
  return logs;
}

describe('breaker auto-resume', () => {
  it('embedded store: runs parked by the breaker resume by themselves after a probe succeeds', async () => {
    await using h = await harness();
    const fake = provider(h);
    const { logger, lines } = capture();
    const rt = h.runtime({ breakerConfig, autoResume, killPollMs: 20, logger, random: () => 1 });
    const N = 15;
    const ids = Array.from({ length: N }, (_, i) => `emb-${i}`);
    // Five runs trip the breaker, the rest park without calling.
    const first = await Promise.all(
      ids.slice(0, 5).map((runId, i) => rt.start(pipeline, { input: { i }, runId })),
    );
    const rest = await Promise.all(
      ids.slice(5).map((runId, i) => rt.start(pipeline, { input: { i: i + 5 }, runId })),
    );
    expect([...first, ...rest].map((r) => `${r.status}:${r.parked?.reason}`)).toEqual(
      Array(N).fill('parked:breaker'),
    );
    fake.recover();
    await until(
      'every parked run to complete',
      async () => (await h.store.log.listRuns({ status: 'completed' })).length === N,
    );
    await checkRuns(h, ids);
    expect(fake.answered()).toBe(N);
    expect(lines.filter((l) => l.decision === 'probe').length).toBeGreaterThanOrEqual(2);
    expect(lines.filter((l) => l.decision === 'auto-resume').length).toBeGreaterThanOrEqual(1);
  }, 60_000);

  it('workers: a worker probes, then publishes resume commands for the parked runs', async () => {
    await using h = await harness();
    const fake = provider(h);
    const { logger, lines } = capture();
    const bus = openSqliteBus(h.dbPath, { ackWaitMs: 5_000, pollMs: 20 });
    const runtime = new Runtime({
      store: h.store,
      model: createAnthropicClient({ apiKey: 'sk-ant-test-breaker', baseURL: h.fake.url }),
      breakers: new Breakers(h.store.control, breakerConfig),
      killPollMs: 20,
      random: () => 1,
      logger,
      waitForLease: false,
    });
    const ac = new AbortController();
    const N = 12;
    const ids = Array.from({ length: N }, (_, i) => `wrk-${i}`);
    try {
      for (const [i, runId] of ids.entries())
        await bus.publishStart({ runId, pipeline: 'fleet', input: { i } });
      const worker = runWorker({
        runtime,
        bus,
        pipelines: new Map([['fleet', pipeline]]),
        concurrency: 4,
        signal: ac.signal,
        logger,
        heartbeatMs: 500,
        strandedCheckMs: 0,
        breakerResume: autoResume,
      });
      await until(
        'every run to park on the breaker',
        async () => (await h.store.log.listRuns({ status: 'parked' })).length === N,
      );
      fake.recover();
      await until(
        'every parked run to complete',
        async () => (await h.store.log.listRuns({ status: 'completed' })).length === N,
      );
      ac.abort();
      await worker;
      await checkRuns(h, ids);
      expect(fake.answered()).toBe(N);
      expect(await bus.deadLetters()).toEqual([]);
      expect(lines.filter((l) => l.decision === 'probe').length).toBeGreaterThanOrEqual(2);
      expect(lines.filter((l) => l.decision === 'auto-resume').length).toBeGreaterThanOrEqual(1);
    } finally {
      ac.abort();
      await bus.close();
    }
  }, 60_000);
});
