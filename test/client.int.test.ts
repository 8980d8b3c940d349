/**
 * The client library on both backends: 50 runs started with `client.start`, driven by an
 * in-process worker against the fake Claude, followed with `subscribe` — some subscriptions
 * opened before their run starts, some while it runs, some after it ended — and every event of
 * every run seen exactly once, in seq order, each iterator ending at its run's terminal event.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openBackend } from '../src/backend.js';
import { connect, type PlumblineClient } from '../src/index.js';
import type { StoredEnvelope } from '../src/machines/events.js';
import { createAnthropicClient } from '../src/model/anthropic.js';
import { Runtime } from '../src/runtime/driver.js';
import { loadPipelines } from '../src/runtime/load.js';
import { silentLogger } from '../src/runtime/logger.js';
import { runWorker } from '../src/runtime/worker.js';
import { startFakeClaude, type FakeClaude } from '../src/testing/index.js';
import { startNatsServer, type NatsServerHandle } from './helpers/natsServer.js';

const N = 50;
const PIPELINE = 'test/fixtures/pipelines/stubborn.ts';

/** Polls until `ok`, failing after a generous deadline (never an upper bound on speed). */
async function until(what: string, ok: () => Promise<boolean>, ms = 60_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Reads a run subscription to its end. */
async function drain(sub: AsyncIterable<StoredEnvelope>): Promise<StoredEnvelope[]> {
  const out: StoredEnvelope[] = [];
  for await (const e of sub) out.push(e);
  return out;
}

/** Reads a filtered subscription until `enough` says so, then breaks out of it. */
async function collect(
  sub: AsyncIterable<StoredEnvelope>,
  enough: (seen: StoredEnvelope[]) => boolean,
): Promise<StoredEnvelope[]> {
  const out: StoredEnvelope[] = [];
  for await (const e of sub) {
    out.push(e);
    if (enough(out)) break;
  }
  return out;
}

const terminal = (e: StoredEnvelope): boolean =>
  ['completed', 'failed', 'killed'].includes(e.state.status);

/** An in-process worker on `url` (its own store and bus connections, as a separate process). */
async function startWorker(url: string, fake: FakeClaude): Promise<{ stop(): Promise<void> }> {
  const backend = await openBackend(url, { bus: { ackWaitMs: 10_000 } });
  const ac = new AbortController();
  const working = runWorker({
    runtime: new Runtime({
      store: backend.store,
      model: createAnthropicClient({ apiKey: 'sk-ant-test', baseURL: fake.url }),
      waitForLease: false,
    }),
    bus: backend.bus,
    pipelines: await loadPipelines([PIPELINE]),
    concurrency: 8,
    signal: ac.signal,
    logger: silentLogger,
    heartbeatMs: 1_000,
    strandedCheckMs: 0,
  });
  return {
    async stop() {
      ac.abort();
      await working;
      await backend.close();
    },
  };
}

/** Starts 50 runs, follows them every way, and checks what each subscription saw. */
async function fiftyRuns(url: string, fake: FakeClaude, tag: string): Promise<void> {
  const client: PlumblineClient = await connect(url);
  let worker: { stop(): Promise<void> } | undefined;
  try {
    const ids = Array.from({ length: N }, (_, i) => `${tag}-${i}`);
    const all = collect(client.subscribe({ pipeline: 'stubborn' }), (seen) =>
      ids.every((id) => seen.some((e) => e.runId === id && terminal(e))),
    );
    const finished = collect(client.subscribe({ status: 'completed' }), (seen) => seen.length >= N);
    // Before the run exists.
    const early = ids.slice(0, 20).map((id) => drain(client.subscribe(id)));

    for (const [i, runId] of ids.entries()) {
      const r = await client.start('stubborn', {}, { runId, limits: { maxIterations: 10 } });
      expect(r).toEqual({ runId, pipeline: 'stubborn', duplicate: false });
      if (i === 0) {
        const again = await client.start('stubborn', {}, { runId });
        expect(again.duplicate).toBe(true);
      }
    }
    worker = await startWorker(url, fake);
    // Opened as each run goes: a history that the live tail may repeat, then live events.
    const middle: Array<Promise<StoredEnvelope[]>> = [];
    for (const id of ids.slice(20, 35)) {
      await until(`${id} to start`, async () => (await client.store.log.getRun(id)) !== undefined);
      middle.push(drain(client.subscribe(id)));
    }
    await until(
      `${N} runs to complete`,
      async () => (await client.runs({ status: 'completed' })).length === N,
    );
    // After the end: history only, then the iterator ends by itself.
    const late = ids.slice(35).map((id) => drain(client.subscribe(id)));

    const seen = await Promise.all([...early, ...middle, ...late]);
    for (const [i, events] of seen.entries()) {
      const runId = ids[i] as string;
      const stored = await client.replay(runId);
      expect(events, runId).toEqual(stored);
      expect(events.map((e) => e.seq)).toEqual(stored.map((_, k) => k + 1));
      expect(events.at(-1)?.state.status).toBe('completed');
      // A re-ask, so the run has live events after its start: run.started, two calls, done.
      expect(events.filter((e) => e.event.type === 'MODEL_RESPONSE').length).toBe(2);
    }

    const everything = await all;
    for (const runId of ids) {
      const mine = everything.filter((e) => e.runId === runId);
      expect(mine).toEqual(await client.replay(runId));
    }
    const done = await finished;
    expect(done.map((e) => e.runId).sort()).toEqual([...ids].sort());

    // A subscription to a run that does not exist yet and a break end cleanly.
    const none = client.subscribe(`${tag}-never`);
    const pending = none.next();
    await none.return?.();
    expect(await pending).toEqual({ value: undefined, done: true });
    expect(await client.cost('pipeline')).toMatchObject({
      rows: [{ key: 'stubborn', calls: 2 * N }],
      skipped: [],
    });
  } finally {
    await worker?.stop();
    await client.close();
  }
}

describe('client library', () => {
  let fake: FakeClaude;
  let dir: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'plumbline-client-'));
    // Each run's first answer is invalid (re-asked after a short delay); the second is valid.
    fake = await startFakeClaude({
      script: (req) =>
        JSON.stringify(req.body.messages).includes('not accepted')
          ? { kind: 'json', value: { n: 7 } }
          : { kind: 'delay', ms: 100, then: { kind: 'json', value: { n: 'seven' } } },
    });
  });
  afterAll(async () => {
    await fake.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('SQLite: 50 runs started, each event of each seen once in seq order, iterators end', async () => {
    await fiftyRuns(join(dir, 'client.db'), fake, 'sq');
  }, 60_000);

  it('NATS JetStream: the same, over the run events in the stream', async () => {
    await using nats: NatsServerHandle = await startNatsServer();
    await fiftyRuns(nats.url, fake, 'js');
  }, 60_000);

  it('SQLite: resume and kill parked runs, check a start by pipeline object, refuse unknown runs', async () => {
    const url = join(dir, 'ops.db');
    const pipelines = await loadPipelines([PIPELINE, 'test/fixtures/pipelines/plain.js']);
    const client = await connect(url, { pollMs: 25, pipelines: [...pipelines.values()] });
    const worker = await startWorker(url, fake);
    try {
      const plain = pipelines.get('plain');
      if (plain === undefined) throw new Error('plain.js did not load');
      await expect(
        client.start(plain.pipeline, { n: 'two' }, { runId: 'bad-input' }),
      ).rejects.toThrow(/input does not match pipeline 'plain' input schema: n: /);
      // The first answer is invalid and a re-ask would be a second call: both runs park.
      for (const runId of ['park-1', 'park-2'])
        await client.start('stubborn', {}, { runId, limits: { maxIterations: 1 } });
      await until(
        'both runs to park',
        async () => (await client.runs({ status: 'parked' })).length === 2,
      );
      const resumed = drain(client.subscribe('park-1'));
      const killed = drain(client.subscribe('park-2'));
      expect(await client.resume('park-1', { maxIterations: 5 })).toEqual({ duplicate: false });
      expect(await client.kill('park-2', 'no longer needed')).toBe('killed');
      const a = await resumed;
      expect(a).toEqual(await client.replay('park-1'));
      expect(a.map((e) => e.event.type)).toContain('RESUME');
      expect(a.at(-1)?.state.status).toBe('completed');
      const b = await killed;
      expect(b).toEqual(await client.replay('park-2'));
      expect(b.at(-1)).toMatchObject({
        event: { type: 'KILL', reason: 'no longer needed' },
        state: { status: 'killed' },
      });
      expect(await client.runs({ status: 'parked' })).toEqual([]);
      expect(await client.store.log.getRun('bad-input')).toBeUndefined();
      expect(await client.bus.deadLetters()).toEqual([]);
      await expect(client.resume('nope')).rejects.toThrow(/unknown run id 'nope'/);
      await expect(client.kill('nope')).rejects.toThrow(/unknown run id 'nope'/);
      await expect(client.replay('nope')).rejects.toThrow(/unknown run id 'nope'/);
    } finally {
      await worker.stop();
      await client.close();
    }
  }, 60_000);

  it('refuses a malformed URL or an unknown scheme, naming the accepted forms', async () => {
    const cwd = process.cwd();
    process.chdir(dir);
    try {
      for (const url of ['nats:/127.0.0.1:4222', 'http://127.0.0.1:4222', 'nats://', 'tls:host'])
        await expect(connect(url), url).rejects.toThrow(
          /connect\(\).*Accepted: a SQLite file path .* nats:\/\/host:port/,
        );
      expect(existsSync(join(dir, 'nats:'))).toBe(false);
      expect(existsSync(join(dir, 'http:'))).toBe(false);
    } finally {
      process.chdir(cwd);
    }
  });
});
