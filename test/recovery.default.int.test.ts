/**
 * Recovery at the default settings (issue 14), on NATS JetStream and on the embedded SQLite
 * store: two `plumbline worker` processes started with no `--ack-wait`. The first holds a run in
 * a model call for several default ack waits without losing it (the bus heartbeats the command),
 * is SIGKILLed there, and the second takes the run over and finishes it: every step once, in
 * order, each effect once.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openBusFromUrl } from '../src/backend.js';
import { DEFAULT_ACK_WAIT_MS } from '../src/bus/types.js';
import { openJetStreamStore } from '../src/store/jetstream.js';
import { openSqliteStore } from '../src/store/sqlite.js';
import type { Store } from '../src/store/types.js';
import { startFakeClaude } from '../src/testing/index.js';
import { startNatsServer } from './helpers/natsServer.js';
import { spawnWorker, type WorkerProc } from './helpers/worker.js';

const CRASHY = 'test/fixtures/pipelines/crashy.ts';
/** The crashy pipeline's steps, in the order a run completes them. */
const STEPS = [
  'first',
  'saveFirst',
  'combine',
  'second',
  'saveSecond',
  'third',
  'notify',
  'finish',
];
const DONE = new Set(['MODEL_RESPONSE', 'EFFECT_DONE', 'STEP_DONE']);

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function until(what: string, ok: () => boolean | Promise<boolean>, ms = 60_000) {
  const deadline = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** A store URL with its event store open, and how to take both down. */
interface Target {
  spec: string;
  store: Store;
  dir: string;
  close(): Promise<void>;
}

async function natsTarget(): Promise<Target> {
  const server = await startNatsServer();
  const store = await openJetStreamStore({ servers: server.url });
  const dir = mkdtempSync(join(tmpdir(), 'plumbline-recovery-'));
  return {
    spec: server.url,
    store,
    dir,
    close: async () => {
      await store.close();
      await server[Symbol.asyncDispose]();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function sqliteTarget(): Promise<Target> {
  const dir = mkdtempSync(join(tmpdir(), 'plumbline-recovery-'));
  const db = join(dir, 'recovery.db');
  const store = openSqliteStore(db);
  return {
    spec: db,
    store,
    dir,
    close: async () => {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

describe.each([
  ['nats', natsTarget],
  ['sqlite', sqliteTarget],
] as const)('recovery with the default worker settings (%s)', (_name, open) => {
  it('keeps a run held past the ack wait while its worker lives, and another worker finishes it after a SIGKILL', async () => {
    const t = await open();
    const sink = join(t.dir, 'sink');
    // The first `second` call hangs (the run is mid-way while its worker lives); later ones answer.
    let secondCalls = 0;
    const fake = await startFakeClaude({
      script: (req) => {
        const m = req.body.messages as Array<{ content: string }>;
        const [label = ''] = (m[0]?.content ?? '').split(' ');
        const then = { kind: 'json' as const, value: { label: `${label}-ok`, score: 3 } };
        if (label === 'second' && secondCalls++ === 0) return { kind: 'delay', ms: 120_000, then };
        return then;
      },
    });
    const bus = await openBusFromUrl(t.spec);
    const workers: WorkerProc[] = [];
    const worker = async (name: string): Promise<WorkerProc> => {
      const w = await spawnWorker({
        name,
        store: t.spec,
        pipelines: CRASHY,
        concurrency: 4,
        env: { ANTHROPIC_BASE_URL: fake.url, CRASHY_SINK: sink },
      });
      workers.push(w);
      return w;
    };
    const id = 'rec-1';
    try {
      const victim = await worker('victim');
      await bus.publishStart({ runId: id, pipeline: 'crashy', input: { id } });
      await until('the victim to call the model for `second`', () => secondCalls === 1);
      const survivor = await worker('survivor');
      // Both workers pull for two ack waits and more while the victim waits on the model.
      await sleep(2 * DEFAULT_ACK_WAIT_MS + 500);
      const takeOvers = (ws: WorkerProc[]) =>
        ws.flatMap((w) => w.lines).filter((l) => l.runId === id && l.msg === 'take over');
      expect(takeOvers(workers), 'a take-over while the victim lived').toEqual([]);
      expect(victim.child.exitCode).toBeNull();
      expect(secondCalls).toBe(1);

      const killedAt = Date.now();
      await victim.kill('SIGKILL');
      await until('the run to complete', async () => {
        const r = await t.store.log.getRun(id);
        return r?.status === 'completed';
      });

      // The survivor took it over after the kill, and only it.
      expect(takeOvers([victim])).toEqual([]);
      const taken = takeOvers([survivor]);
      expect(taken.length).toBeGreaterThan(0);
      expect(taken.every((l) => l.time >= killedAt)).toBe(true);
      expect(victim.lines.some((l) => l.runId === id)).toBe(true);

      // One log, contiguous; every step once and in order; the kill fell inside `second`.
      const log = await t.store.log.read(id);
      expect(log.map((e) => e.seq)).toEqual(log.map((_, i) => i + 1));
      expect(log.at(-1)?.state.status).toBe('completed');
      const done = (es: typeof log) =>
        es
          .map((e) => e.event as { type: string; step?: string })
          .filter((e) => DONE.has(e.type))
          .map((e) => e.step);
      expect(done(log)).toEqual(STEPS);
      const before = log.filter((e) => e.at <= killedAt);
      expect(done(before)).toEqual(['first', 'saveFirst', 'combine']);
      expect(
        before.some((e) => {
          const ev = e.event as { type: string; step?: string };
          return ev.type === 'ATTEMPT' && ev.step === 'second';
        }),
      ).toBe(true);
      expect(done(log.filter((e) => e.at > killedAt))).toEqual(STEPS.slice(3));
      // The held call was asked again by the survivor; each effect ran once.
      expect(secondCalls).toBe(2);
      const executions = readFileSync(join(sink, 'executions.log'), 'utf8').trim().split('\n');
      expect(executions).toEqual([`${id}-first`, `${id}-second`, `${id}-notify`]);
    } finally {
      for (const w of workers) await w.kill('SIGKILL');
      await bus.close();
      await fake.close();
      await t.close();
    }
  }, 120_000);
});
