/**
 * One driver per run: a paid call or an effect happens only under the run's lease. Two live
 * resumers racing for a stranded run, an operator's `resume` while a worker runs a slow effect:
 * each effect runs once and no model call is made twice, with no crash in between.
 */
import { spawn } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkChain } from '../src/machines/chain.js';
import type { StoredEnvelope } from '../src/machines/events.js';
import { foldLog } from '../src/machines/replay.js';
import { createAnthropicClient } from '../src/model/anthropic.js';
import { Runtime } from '../src/runtime/driver.js';
import { loadPipeline } from '../src/runtime/load.js';
import type { Prepared } from '../src/runtime/prepare.js';
import { openSqliteStore } from '../src/store/sqlite.js';
import { startFakeClaude, type FakeClaude } from '../src/testing/index.js';
import { plumbline, ROOT, tsNode } from './helpers/cli.js';
import { spawnWorker } from './helpers/worker.js';

let dir: string;
let fake: FakeClaude;
let crashy: Prepared;
const CRASHY = join(ROOT, 'test/fixtures/pipelines/crashy.ts');
const SLOW = join(ROOT, 'test/fixtures/pipelines/slowEffect.ts');

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'plumbline-lease-'));
  fake = await startFakeClaude({
    script: () => ({ kind: 'json', value: { label: 'ok', score: 3 } }),
  });
  crashy = await loadPipeline(CRASHY);
});

afterAll(async () => {
  await fake.close();
  rmSync(dir, { recursive: true, force: true });
});

const lines = (file: string): string[] =>
  existsSync(file)
    ? readFileSync(file, 'utf8')
        .split('\n')
        .filter((l) => l !== '')
    : [];

async function eventsOf(db: string, runId: string): Promise<StoredEnvelope[]> {
  const store = openSqliteStore(db);
  try {
    return await store.log.read(runId);
  } finally {
    await store.close();
  }
}

const poll = async <T>(f: () => Promise<T | undefined>, what: string, ms = 60_000): Promise<T> => {
  const until = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
};

/**
 * The stranding points: where a driver process was SIGKILLed, what the log's last event is
 * then, and how many model calls and effect executions the rest of the run takes.
 */
const POINTS = [
  { name: 'before a step', crashAt: 'append:6', last: 'STEP_DONE', calls: 2, effects: 2 },
  { name: 'in a call', crashAt: 'append:2', last: 'ATTEMPT', calls: 3, effects: 3 },
  {
    name: 'in an effect',
    crashAt: 'claimed:saveFirst',
    last: 'EFFECT_STARTED',
    calls: 2,
    effects: 3,
  },
] as const;

describe('two live resumers race for a stranded run', () => {
  for (const point of POINTS) {
    it(`${point.name}: 50 rounds, 0 duplicate effects, 0 extra requests`, async () => {
      // The stranded run: a real driver process SIGKILLed at the point (its pid is then gone).
      const origin = join(dir, `origin-${point.crashAt.replace(':', '-')}.db`);
      const child = await tsNode('test/fixtures/crashChild.ts', [origin, 'r'], {
        CRASH_AT: point.crashAt,
        ANTHROPIC_BASE_URL: fake.url,
        CRASHY_SINK: join(dir, 'origin-sink'),
      });
      expect(child.signal).toBe('SIGKILL');
      const stranded = await eventsOf(origin, 'r');
      expect(stranded.at(-1)?.event.type).toBe(point.last);
      for (let round = 0; round < 50; round++) {
        const db = join(dir, `round-${point.crashAt.replace(':', '-')}-${round}.db`);
        copyFileSync(origin, db);
        if (existsSync(`${origin}-wal`)) copyFileSync(`${origin}-wal`, `${db}-wal`);
        const sink = join(dir, `sink-${point.crashAt.replace(':', '-')}-${round}`);
        mkdirSync(sink, { recursive: true });
        process.env.CRASHY_SINK = sink;
        // Two runtimes, two connections, two lease owners: two live drivers in all but pid.
        const stores = [openSqliteStore(db), openSqliteStore(db)];
        const before = fake.count;
        try {
          const results = await Promise.all(
            stores.map((store) =>
              new Runtime({
                store,
                model: createAnthropicClient({ apiKey: 'sk-ant-test-lease', baseURL: fake.url }),
              }).resume(crashy, 'r'),
            ),
          );
          const requests = fake.count - before;
          const events = await stores[0]!.log.read('r');
          const executions = lines(join(sink, 'executions.log'));
          const label = `${point.name}, round ${round}: ${JSON.stringify(results.map((r) => [r.status, r.stopped ?? '']))}`;
          expect(events.at(-1)?.state.status, label).toBe('completed');
          expect(
            results.some((r) => r.status === 'completed' && r.stopped === undefined),
            label,
          ).toBe(true);
          expect(executions.length, label).toBe(point.effects);
          expect(new Set(executions).size, label).toBe(executions.length);
          expect(requests, label).toBe(point.calls);
          // Every request is in the log: one ATTEMPT after the stranding point per request.
          const attempts = events.filter(
            (e) => e.seq > stranded.length && e.event.type === 'ATTEMPT',
          );
          expect(attempts.length, label).toBe(requests);
          expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
          // Each writer (the dead one, then the winner) extended one unbroken hash chain.
          expect(events.every((e) => e.prev !== undefined)).toBe(true);
          expect(checkChain(events)).toEqual({ ok: true });
          foldLog(crashy.machine, crashy.hash, 'r', events);
        } finally {
          await Promise.all(stores.map((s) => s.close()));
          delete process.env.CRASHY_SINK;
        }
      }
    });
  }

  it('a call lost with its process is recorded at its reservation (unconfirmed) and counts against the iteration cap', async () => {
    const db = join(dir, 'lost-call.db');
    const child = await tsNode('test/fixtures/crashChild.ts', [db, 'lost'], {
      CRASH_AT: 'append:2',
      MAX_ITERATIONS: '1',
      ANTHROPIC_BASE_URL: fake.url,
      CRASHY_SINK: join(dir, 'lost-sink'),
    });
    expect(child.signal).toBe('SIGKILL');
    const store = openSqliteStore(db);
    try {
      const attempt = (await store.log.read('lost')).at(-1)?.event;
      if (attempt?.type !== 'ATTEMPT') throw new Error(`expected ATTEMPT, got ${attempt?.type}`);
      const before = fake.count;
      const rt = new Runtime({
        store,
        model: createAnthropicClient({ apiKey: 'sk-ant-test-lease', baseURL: fake.url }),
      });
      // Resumed five times: the cap of one call is used by the lost call, so none is made.
      for (let i = 0; i < 5; i++) {
        const r = await rt.resume(crashy, 'lost');
        expect(r.status).toBe('parked');
        expect(r.parked?.reason).toBe('iterations');
      }
      expect(fake.count - before).toBe(0);
      const events = await store.log.read('lost');
      const lost = events.filter((e) => e.event.type === 'MODEL_ERROR');
      expect(lost).toHaveLength(1);
      expect(lost[0]?.event).toMatchObject({
        kind: 'lost',
        unconfirmed: true,
        retryable: true,
        costUsd: attempt.estimate.usd,
      });
      expect(events.at(-1)?.state.costUsd).toBeCloseTo(attempt.estimate.usd, 9);
    } finally {
      await store.close();
    }
  });
});

describe('a live driver keeps its run whatever the operator types', () => {
  it('an effect outlasting the stranded threshold under a worker: `resume` and `resume <id>` leave it alone; it runs once, one model call', async () => {
    const db = join(dir, 'worker.db');
    const sink = join(dir, 'worker-sink');
    const env = {
      ANTHROPIC_BASE_URL: fake.url,
      ANTHROPIC_API_KEY: 'sk-ant-test-lease',
      SLOW_SINK: sink,
      // The effect lasts until the test says (long past the 1 s stranded threshold).
      SLOW_UNTIL_FILE: join(dir, 'worker-release'),
    };
    const worker = await spawnWorker({
      name: 'w1',
      store: db,
      pipelines: SLOW,
      ackWaitMs: 30_000,
      concurrency: 2,
      env,
      args: ['--stranded-after', '1s'],
    });
    try {
      const before = fake.count;
      const started = await plumbline(
        ['start', SLOW, '--store', db, '--run-id', 'slow-1', '--input', '{"id":"slow-1"}'],
        env,
      );
      expect(started.code, started.stderr).toBe(0);
      await poll(async () => {
        const events = await eventsOf(db, 'slow-1');
        return events.some((e) => e.event.type === 'EFFECT_STARTED') ? true : undefined;
      }, 'the effect to start');
      // Quiet for longer than the stranded threshold (1 s) while the effect runs; the worker's
      // stranded check (every second) sees a live lease and leaves the run alone.
      await new Promise((r) => setTimeout(r, 2_500));
      const all = await plumbline(['resume', '--store', db, '--json'], env);
      const one = await plumbline(['resume', 'slow-1', '--store', db, '--json'], env);
      for (const r of [all, one]) {
        const summary = JSON.parse(r.stdout.trim().split('\n').at(-1) ?? '{}') as {
          stopped?: string;
          holder?: { owner: string };
        };
        expect(summary.stopped, r.stdout + r.stderr).toBe('leased');
        expect(summary.holder?.owner.split('/')[1]).toBe(String(worker.child.pid));
      }
      writeFileSync(join(dir, 'worker-release'), '');
      await poll(async () => {
        const events = await eventsOf(db, 'slow-1');
        return events.at(-1)?.state.status === 'completed' ? true : undefined;
      }, 'the run to complete');
      const events = await eventsOf(db, 'slow-1');
      expect(lines(join(sink, 'executions.log'))).toEqual(['slow-1-send']);
      expect(fake.count - before).toBe(1);
      expect(events.filter((e) => e.event.type === 'EFFECT_DONE')).toHaveLength(1);
      expect(checkChain(events)).toEqual({ ok: true });
      expect(worker.lines.filter((l) => l.decision === 'requeue')).toHaveLength(0);
    } finally {
      await worker.kill('SIGTERM');
    }
  });

  it('two `plumbline resume <id>` processes at once on a run stranded in a slow effect: it runs once', async () => {
    for (let round = 0; round < 3; round++) {
      const db = join(dir, `cli-race-${round}.db`);
      const sink = join(dir, `cli-race-sink-${round}`);
      const id = `race-${round}`;
      const env = {
        ANTHROPIC_BASE_URL: fake.url,
        ANTHROPIC_API_KEY: 'sk-ant-test-lease',
        SLOW_SINK: sink,
        SLOW_EFFECT_MS: '60000',
      };
      // A driver that dies in the effect: `run --json` SIGKILLed once it printed EFFECT_STARTED
      // (its events are printed after they are appended).
      const child = spawn(
        process.execPath,
        [
          'bin/plumbline.mjs',
          'run',
          SLOW,
          '--store',
          db,
          '--run-id',
          id,
          '--input',
          `{"id":"${id}"}`,
          '--json',
        ],
        { cwd: ROOT, env: { ...process.env, PLUMBLINE_LOG_LEVEL: 'warn', ...env } },
      );
      let out = '';
      let err = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (err += d.toString()));
      let gone = false;
      const exited = new Promise((r) => child.once('exit', r)).then(() => (gone = true));
      await poll(
        async () => {
          const printed = out
            .split('\n')
            .filter((l) => l.startsWith('{'))
            .map((l) => JSON.parse(l) as { event?: { type?: string } });
          if (printed.some((e) => e.event?.type === 'EFFECT_STARTED')) return true;
          if (gone) throw new Error(`run exited before its effect started:\n${out}\n${err}`);
          return undefined;
        },
        'the effect to start',
        120_000,
      );
      child.kill('SIGKILL');
      await exited;
      const before = fake.count;
      const raced = await Promise.all(
        [0, 1].map(() =>
          plumbline(['resume', id, '--store', db, '--json'], { ...env, SLOW_EFFECT_MS: '1500' }),
        ),
      );
      const summaries = raced.map(
        (r) => JSON.parse(r.stdout.trim().split('\n').at(-1) ?? '{}') as { status?: string },
      );
      expect(
        summaries.map((s) => s.status),
        raced.map((r) => r.stderr).join('\n'),
      ).toContain('completed');
      expect(lines(join(sink, 'executions.log')), `round ${round}`).toEqual([`${id}-send`]);
      expect(
        fake.count - before,
        `round ${round}: ${JSON.stringify(fake.requests.slice(before).map((r) => r.body.messages))} ${raced.map((r) => r.stdout + r.stderr).join('\n')}`,
      ).toBe(0);
    }
  });
});
