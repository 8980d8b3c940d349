/**
 * Waiting runs cost no worker memory: 10,000 runs sleep durably on one SQLite store while a
 * worker process (bench/waitingWorker.ts: `runWorker`, as `plumbline worker` runs it, with its
 * wake-up sweep) is measured with 0, 1,000, 5,000 and 10,000 of them asleep, then they all come
 * due at the same moment, the sweep wakes them, and every one must complete.
 * Usage: node --import tsx bench/waiting.ts [--runs 10000] [--concurrency 16] [--wake-in <s>]
 */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { openSqliteBus } from '../src/bus/sqlite.js';
import { emitResult, load1, numArg } from './lib/proc.js';

const RUNS = numArg('runs', 10_000);
const CONCURRENCY = numArg('concurrency', 16);
const WARM = 200;
const checkpoints = [0, 1_000, 5_000, 10_000].filter((n) => n <= RUNS);
if (!checkpoints.includes(RUNS)) checkpoints.push(RUNS);

const dir = mkdtempSync(join(tmpdir(), 'plumbline-bench-waiting-'));
const db = join(dir, 'waiting.db');
const bus = openSqliteBus(db);
const worker: ChildProcess = fork(
  new URL('./waitingWorker.ts', import.meta.url).pathname,
  [db, String(CONCURRENCY)],
  { execArgv: ['--expose-gc', '--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] },
);
const next = (type: string): Promise<Record<string, number>> =>
  new Promise((resolve) => {
    const on = (m: { type: string }): void => {
      if (m.type !== type) return;
      worker.off('message', on);
      resolve(m as unknown as Record<string, number>);
    };
    worker.on('message', on);
  });
const ready = next('ready');
const exited = new Promise<number | null>((r) => worker.once('exit', r));
await Promise.race([ready, exited.then((c) => Promise.reject(new Error(`worker exit ${c}`)))]);
const memory = async (): Promise<Record<string, number>> => {
  const m = next('memory');
  worker.send({ type: 'measure' });
  return m;
};

// The store, read beside the worker: how many runs sleep and how many are done.
const reader = new Database(db, { readonly: true });
const count = (sql: string): number => (reader.prepare(sql).get() as { n: number }).n;
const sleeping = (): number => count('SELECT count(*) AS n FROM waiting');
const completed = (): number =>
  count("SELECT count(*) AS n FROM runs WHERE status = 'completed' AND run_id LIKE 'w-%'");
const pause = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
async function until(what: string, ok: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await pause(200);
  }
}
const publish = async (prefix: string, from: number, to: number, wakeAt: number) => {
  for (let i = from; i < to; i++)
    await bus.publishStart({
      runId: `${prefix}-${i}`,
      pipeline: 'bench-waiting',
      input: { i, wakeAt },
    });
};

// Warm-up: the whole path (start, sleep, sweep, wake, finish) for WARM runs, which also times a
// start, so that the 10,000 can all be asleep before their common wake-up time.
const t0 = Date.now();
const passedSleep = (): number =>
  count("SELECT count(*) AS n FROM runs WHERE status IN ('waiting', 'completed')");
await publish('warm', 0, WARM, Date.now() + 3_000);
await until('the warm-up runs at their sleep', () => passedSleep() === WARM, 300_000);
const startMsPerRun = (Date.now() - t0) / WARM;
await until(
  'the warm-up runs done',
  () =>
    sleeping() === 0 && count("SELECT count(*) AS n FROM runs WHERE status='completed'") === WARM,
  120_000,
);
// Every run sleeps until one moment: after all are started (at 1.5× the warm-up pace, which is
// slower than the steady pace) + 30 s; --wake-in <s> sets it.
const wakeAt = Date.now() + numArg('wake-in', (RUNS * startMsPerRun * 1.5 + 30_000) / 1000) * 1000;

const rows: Array<{ asleep: number; rssMiB: number; heapMiB: number; at: number }> = [];
const mib = (b: number | undefined): number => Math.round(((b ?? 0) / 1048576) * 10) / 10;
let started = 0;
const startAt = Date.now();
for (const n of checkpoints) {
  await publish('w', started, n, wakeAt);
  started = n;
  await until(`${n} runs asleep`, () => sleeping() === n, 600_000);
  const m = await memory();
  rows.push({ asleep: sleeping(), rssMiB: mib(m.rss), heapMiB: mib(m.heapUsed), at: Date.now() });
  process.stderr.write(`${n} asleep: rss ${mib(m.rss)} MiB, heap ${mib(m.heapUsed)} MiB\n`);
}
const startSeconds = (Date.now() - startAt) / 1000;
if (Date.now() >= wakeAt)
  throw new Error('the runs came due before all were asleep: the start pace was misjudged');
process.stderr.write(
  `all ${RUNS} asleep; they wake in ${((wakeAt - Date.now()) / 1000).toFixed(0)} s\n`,
);

await until('every run completed', () => completed() === RUNS, 1_800_000);
const wokenSeconds = (Date.now() - wakeAt) / 1000;
await pause(1_000);
const after = await memory();
const result = {
  runs: RUNS,
  concurrency: CONCURRENCY,
  completed: completed(),
  stillWaiting: sleeping(),
  rows,
  afterRssMiB: mib(after.rss),
  afterHeapMiB: mib(after.heapUsed),
  startSeconds,
  wakeAllSeconds: wokenSeconds,
  load1: load1(),
  cpus: cpus().length,
  node: process.version,
};
worker.send({ type: 'stop' });
await exited;
reader.close();
await bus.close();
rmSync(dir, { recursive: true, force: true });

if (result.completed !== RUNS || result.stillWaiting !== 0)
  throw new Error(`${result.completed} of ${RUNS} completed, ${result.stillWaiting} still waiting`);
process.stderr.write(
  `| runs asleep | worker RSS (MiB) | worker heap (MiB) |\n| --- | --- | --- |\n${rows
    .map((r) => `| ${r.asleep.toLocaleString('en-US')} | ${r.rssMiB} | ${r.heapMiB} |`)
    .join(
      '\n',
    )}\n| after all ${RUNS.toLocaleString('en-US')} woke and completed | ${result.afterRssMiB} | ${result.afterHeapMiB} |\n` +
    `started in ${startSeconds.toFixed(0)} s; all completed ${wokenSeconds.toFixed(0)} s after their wake-up time\n`,
);
emitResult(result);
