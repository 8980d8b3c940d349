/**
 * The embedded fleet: worker processes sharing one SQLite file (event log and work queue) drive
 * runs of the crashy pipeline while one worker is SIGKILLed; every run completes with a log
 * that replays, each effect in the sink once, and the orphans taken over after the ack wait.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openSqliteBus } from '../src/bus/sqlite.js';
import { isTerminal, statusOf } from '../src/machines/fold.js';
import { foldLog } from '../src/machines/replay.js';
import { loadPipeline } from '../src/runtime/load.js';
import { openSqliteStore } from '../src/store/sqlite.js';
import type { Store } from '../src/store/types.js';
import { startFakeClaude, type FakeClaude } from '../src/testing/index.js';
import { spawnWorker as startWorker, type WorkerProc } from './helpers/worker.js';

const CRASHY = 'test/fixtures/pipelines/crashy.ts';
const KEYS = ['first', 'second', 'notify'];
const ACK_WAIT_MS = 2_000;
const RUNS = Number(process.env.FLEET_SQLITE_RUNS ?? 200);

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

let dir: string;
let db: string;
let sink: string;
let fake: FakeClaude;
let store: Store;
const workers: WorkerProc[] = [];

async function spawnWorker(): Promise<WorkerProc> {
  const w = await startWorker({
    name: `w${workers.length}`,
    store: db,
    pipelines: CRASHY,
    ackWaitMs: ACK_WAIT_MS,
    concurrency: 8,
    env: { ANTHROPIC_BASE_URL: fake.url, CRASHY_SINK: sink },
  });
  workers.push(w);
  return w;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'plumbline-fleet-sqlite-'));
  db = join(dir, 'fleet.db');
  sink = join(dir, 'sink');
  fake = await startFakeClaude({
    script: (req) => {
      const m = req.body.messages as Array<{ content: string }>;
      const [label = ''] = (m[0]?.content ?? '').split(' ');
      const then = { kind: 'json' as const, value: { label: `${label}-ok`, score: label.length } };
      return { kind: 'delay', ms: 5 + Math.floor(Math.random() * 45), then };
    },
  });
  store = openSqliteStore(db);
});

afterAll(async () => {
  for (const w of workers)
    if (w.child.exitCode === null && w.child.signalCode === null) w.child.kill('SIGKILL');
  await Promise.all(workers.map((w) => w.exited));
  await store?.close();
  await fake?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('fleet on the embedded SQLite store', () => {
  it(`completes ${RUNS} runs across 3 worker processes while one is SIGKILLed`, async () => {
    await Promise.all([spawnWorker(), spawnWorker(), spawnWorker()]);
    const bus = openSqliteBus(db);
    const ids = Array.from({ length: RUNS }, (_, i) => `s-${i}`);
    for (const id of ids) await bus.publishStart({ runId: id, pipeline: 'crashy', input: { id } });
    const terminal = async (): Promise<number> =>
      (await store.log.listRuns({ status: ['completed', 'failed', 'killed'] })).filter((r) =>
        r.runId.startsWith('s-'),
      ).length;
    const until = async (n: number, ms: number): Promise<void> => {
      const deadline = Date.now() + ms;
      while ((await terminal()) < n) {
        if (Date.now() > deadline)
          throw new Error(
            `${await terminal()}/${n} runs terminal\n${workers.map((w) => w.output().slice(-2_000)).join('\n---\n')}`,
          );
        await sleep(200);
      }
    };
    await until(Math.floor(RUNS * 0.3), 60_000);
    const victim = workers[0] as WorkerProc;
    const killedAt = Date.now();
    victim.child.kill('SIGKILL');
    await victim.exited;
    await spawnWorker();
    await until(RUNS, 120_000);

    const prepared = await loadPipeline(CRASHY);
    const pickups: number[] = [];
    for (const id of ids) {
      const log = await store.log.read(id);
      expect(
        log.map((e) => e.seq),
        id,
      ).toEqual(log.map((_, i) => i + 1));
      const folded = foldLog(prepared.machine, prepared.hash, id, log);
      expect(statusOf(folded.snapshot), id).toBe('completed');
      expect(
        log.filter((e) => e.event.type === 'EFFECT_DONE'),
        id,
      ).toHaveLength(3);
      for (const k of KEYS) expect(existsSync(join(sink, `${id}-${k}.json`))).toBe(true);
      const before = log.filter((e) => e.at <= killedAt);
      const last = before[before.length - 1];
      if (
        last !== undefined &&
        !isTerminal(last.state.status) &&
        victim.lines.some((l) => l.runId === id)
      ) {
        const picked = workers
          .filter((w) => w !== victim)
          .flatMap((w) => w.lines)
          .filter((l) => l.runId === id && l.msg === 'take over' && l.time > killedAt)
          .map((l) => l.time - killedAt);
        expect(picked.length, `${id} taken over`).toBeGreaterThan(0);
        pickups.push(Math.min(...picked));
      }
    }
    const executions = readFileSync(join(sink, 'executions.log'), 'utf8')
      .split('\n')
      .filter((l) => l.startsWith('s-')).length;
    console.log(
      `sqlite fleet: ${RUNS} runs; ${pickups.length} orphans taken over after ${Math.min(...pickups)}–${Math.max(...pickups)} ms (ack wait ${ACK_WAIT_MS} ms); ${executions} effect executions for ${RUNS * 3} sink entries`,
    );
    expect(pickups.length).toBeGreaterThan(0);
    // Every orphan was taken over after its kill; how fast is measured by bench/recovery.ts, not
    // bounded here (a loaded machine makes any wall-clock bound flaky).
    for (const p of pickups) expect(p).toBeGreaterThanOrEqual(0);
    await bus.close();
  }, 180_000);
});
