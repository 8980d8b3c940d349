/**
 * Redaction by value, end to end: a provider error that echoes the configured API key (the real
 * SDK against the fake Claude) leaves no trace of the key in the SQLite files, `replay --json`,
 * the visualizer's API, the log lines or the CLI's output. Every check is an `includes`
 * boolean, so that a failure never prints the key.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { PassThrough } from 'node:stream';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { checkChain, GENESIS, link, nextPrev } from '../src/machines/chain.js';
import { definePipeline, llm } from '../src/machines/pipeline.js';
import { createAnthropicClient } from '../src/model/anthropic.js';
import { Runtime } from '../src/runtime/driver.js';
import { createLogger } from '../src/runtime/logger.js';
import { prepare } from '../src/runtime/prepare.js';
import { redactingStore } from '../src/store/redacting.js';
import type { FakeAction } from '../src/testing/index.js';
import { startVizServer } from '../src/viz/server.js';
import { ndjson, plumbline } from './helpers/cli.js';
import { started, stepDone } from './helpers/envelopes.js';
import { harness, ofType } from './helpers/harness.js';

const KEY = 'sk-ant-api03-LEAKED-KEY-0123456789abcdefXYZ';

/** Does any file of the SQLite store (the db, its -wal and -shm) hold `secret`'s bytes? */
function inDbFiles(dir: string, secret: string): string[] {
  return readdirSync(dir)
    .filter((f) => f.startsWith('store.db'))
    .filter((f) => readFileSync(join(dir, f)).includes(Buffer.from(secret)));
}

/** A 400 or 401 whose message quotes the key, as a misbehaving proxy or provider might. */
const echoes: Record<string, FakeAction> = {
  401: {
    kind: 'status',
    status: 401,
    message: `invalid x-api-key: ${KEY} (sent as Authorization: Bearer ${KEY})`,
  },
  400: {
    kind: 'status',
    status: 400,
    body: {
      type: 'error',
      error: { type: 'invalid_request_error', message: `bad request for key ${KEY}` },
      echo: { request: { headers: { 'x-api-key': KEY } } },
    },
  },
};

describe('an API key echoed by the provider', () => {
  for (const status of ['401', '400']) {
    it(`${status}: the key is in no db file, replay --json, the viz API, the log lines or the output`, async () => {
      await using h = await harness({ script: [echoes[status]!] });
      const runId = `leak-${status}`;
      const env = {
        ANTHROPIC_API_KEY: KEY,
        ANTHROPIC_BASE_URL: h.fake.url,
        PLUMBLINE_LOG_LEVEL: 'debug',
      };
      const run = await plumbline(
        ['run', 'test/fixtures/pipelines/patient.ts', '--store', h.dbPath, '--run-id', runId],
        env,
      );
      expect(run.code).toBe(1);
      // The request did carry the key, and the provider did echo it.
      expect(h.fake.count).toBe(1);
      expect(JSON.stringify(h.fake.requests[0]?.headers).includes(KEY)).toBe(true);

      const events = await h.events(runId);
      const errors = ofType(events, 'MODEL_ERROR');
      expect(errors.map((e) => e.event.status)).toEqual([Number(status)]);
      expect(errors[0]?.event.message.includes('[redacted]')).toBe(true);
      expect(JSON.stringify(events).includes(KEY)).toBe(false);
      expect(inDbFiles(h.dir, KEY)).toEqual([]);

      expect(run.stderr.trim().split('\n').length).toBeGreaterThan(3);
      expect(run.stdout.includes(KEY) || run.stderr.includes(KEY)).toBe(false);

      const replay = await plumbline(['replay', runId, '--json', '--store', h.dbPath], env);
      expect(replay.code).toBe(0);
      expect(ndjson(replay.stdout).length).toBe(events.length + 1);
      expect(replay.stdout.includes(KEY) || replay.stderr.includes(KEY)).toBe(false);

      await using viz = await startVizServer({ store: h.store, port: 0 });
      const api = await fetch(`${viz.url}api/runs/${runId}`);
      expect(api.status).toBe(200);
      const body = await api.text();
      expect(body.includes('MODEL_ERROR')).toBe(true);
      expect(body.includes(KEY)).toBe(false);
    });
  }

  it('the model client scrubs the key at its boundary: an unwrapped store and its logger never see it', async () => {
    await using h = await harness({ script: [echoes['401']!] });
    const lines = new PassThrough();
    let logged = '';
    lines.on('data', (d: Buffer) => (logged += d.toString()));
    const runtime = new Runtime({
      store: h.store,
      model: createAnthropicClient({ apiKey: KEY, baseURL: h.fake.url }),
      // This logger is not told the key: only the model boundary can have removed it.
      logger: createLogger({ level: 'debug', pretty: false, destination: lines, secrets: [] }),
    });
    const p = prepare(
      definePipeline({
        name: 'boundary',
        version: '1',
        input: z.object({}),
        steps: [
          llm({
            name: 'ask',
            model: 'claude-haiku-4-5',
            prompt: () => 'hi',
            output: z.object({ n: z.number() }),
          }),
        ],
      }),
    );
    const r = await runtime.start(p, { input: {}, runId: 'boundary-1' });
    expect(r.status).toBe('failed');
    const events = await h.events('boundary-1');
    expect(ofType(events, 'MODEL_ERROR')).toHaveLength(1);
    expect(JSON.stringify(events).includes(KEY)).toBe(false);
    expect(logged.includes('MODEL_ERROR')).toBe(true);
    expect(logged.includes(KEY)).toBe(false);
    expect(inDbFiles(h.dir, KEY)).toEqual([]);
  });
});

describe('redactingStore', () => {
  it('scrubs appended envelopes, snapshots, effect results and kill reasons at any depth; reads pass through', async () => {
    await using h = await harness();
    const store = redactingStore(h.store, [KEY, 'short']);
    const deep = { a: { b: { c: { unrelated: `token=${KEY}` } } } };
    const done = stepDone(1);
    if (done.event.type !== 'STEP_DONE') throw new Error('fixture changed');
    await store.log.append(
      'r-1',
      [started(), { ...done, event: { ...done.event, output: deep } }],
      'no_stream',
    );
    await store.log.saveSnapshot('r-1', { seq: 2, machineHash: 'h', snapshot: deep });
    expect((await store.ledger.claim('r-1', 's1', 'k', 1)).status).toBe('claimed');
    await store.ledger.record('r-1', 's1', 'k', deep, 2);
    await store.control.setKill({ runId: 'r-1', reason: `operator pasted ${KEY}`, at: 3 });

    const read = [
      await store.log.read('r-1'),
      await store.log.loadSnapshot('r-1'),
      await store.ledger.claim('r-1', 's1', 'k', 4),
      await store.control.getKill('r-1'),
    ];
    const text = JSON.stringify(read);
    expect(text.includes(KEY)).toBe(false);
    expect(text.includes('token=[redacted]')).toBe(true);
    expect(text.includes('operator pasted [redacted]')).toBe(true);
    expect(inDbFiles(h.dir, KEY)).toEqual([]);
    expect(store.kind).toBe('sqlite');
    expect((await store.log.getRun('r-1'))?.lastSeq).toBe(2);
    // No secret: the store itself.
    expect(redactingStore(h.store, ['', 'short'])).toBe(h.store);
  });
});

describe('redactingStore and the hash chain', () => {
  it('re-links a scrubbed batch and maps the next batch from the writer to the stored chain', async () => {
    await using h = await harness();
    const store = redactingStore(h.store, [KEY]);
    const done = stepDone(1);
    if (done.event.type !== 'STEP_DONE') throw new Error('fixture changed');
    const leaky = { ...done, event: { ...done.event, output: { x: { y: `key ${KEY}` } } } };
    // The writer links what it holds (the key included) and keeps its own head.
    const first = link([started(), leaky, stepDone(2)], GENESIS, 1);
    await store.log.append('c-1', first, 'no_stream');
    const head = nextPrev({ ...first[2]!, seq: 3 });
    await store.log.append('c-1', link([stepDone(3)], head, 4), 3);
    await store.log.append(
      'c-1',
      link([stepDone(4, 'completed')], nextPrev({ ...stepDone(3), prev: head, seq: 4 }), 5),
      4,
    );

    const stored = await h.store.log.read('c-1');
    expect(stored.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5]);
    expect(JSON.stringify(stored).includes(KEY)).toBe(false);
    expect(checkChain(stored)).toEqual({ ok: true });
  });
});

describe('the CLI error handler', () => {
  it('never prints the API key or a --store password quoted by an error message', async () => {
    const pass = 'Store-Passw0rd-Quoted';
    const r = await plumbline(
      [
        'run',
        'test/fixtures/pipelines/patient.ts',
        '--store',
        `nats://plumb:${pass}@127.0.0.1:1`,
        '--input',
        `@/nonexistent/${KEY}/${pass}.json`,
      ],
      { ANTHROPIC_API_KEY: KEY },
    );
    expect(r.code).toBe(2);
    expect(r.stderr.includes('cannot read the file')).toBe(true);
    expect(r.stderr.includes('/nonexistent/[redacted]/[redacted].json')).toBe(true);
    expect(r.stderr.includes(KEY) || r.stderr.includes(pass)).toBe(false);
  });
});
