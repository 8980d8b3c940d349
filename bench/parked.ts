/**
 * Runs parked in backoff cost a worker almost nothing: up to 100,000 runs, each refused with a
 * 429 (`retry-after: 3600`), are let go by a worker process (bench/parkedWorker.ts: `runWorker`,
 * as `plumbline worker` runs it, default 10 s unload threshold) and wait in the store's wake-up
 * schedule. The worker's RSS and heap are read at checkpoints (after two full collections), and
 * its CPU share while they all wait.
 * Usage: node --import tsx bench/parked.ts [--runs 100000] [--concurrency 32] [--retry-after 3600]
 *   [--idle-ms 60000]
 */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { openSqliteBus } from '../src/bus/sqlite.js';
import { startFakeProcess } from './lib/fake.js';
import { emitResult, load1, numArg } from './lib/proc.js';
import { ticket } from './workload.js';

const RUNS = numArg('runs', 100_000);
const CONCURRENCY = numArg('concurrency', 32);
const RETRY_AFTER_S = numArg('retry-after', 3600);
const WARM = 200;
// The window the worker's CPU is read over while the runs wait: a minute or more includes one
// stranded-run check (every 60 s), which lists the quiet running runs.
const IDLE_MS = numArg('idle-ms', 60_000);
const checkpoints = [0, 10_000, 50_000, 100_000].filter((n) => n <= RUNS);
if (!checkpoints.includes(RUNS)) checkpoints.push(RUNS);

const dir = mkdtempSync(join(tmpdir(), 'plumbline-bench-parked-'));
const db = join(dir, 'parked.db');
const fake = await startFakeProcess(`429:${RETRY_AFTER_S}`);
const bus = openSqliteBus(db);
const worker: ChildProcess = fork(
  new URL('./parkedWorker.ts', import.meta.url).pathname,
  [db, String(CONCURRENCY), fake.url, String(RETRY_AFTER_S)],
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
const ask = async (type: string, reply: string, extra = {}): Promise<Record<string, number>> => {
  const m = next(reply);
  worker.send({ type, ...extra });
  return m;
};

// The store, read beside the worker: how many runs wait in the schedule, and with a live lease.
const reader = new Database(db, { readonly: true, fileMustExist: false });
const count = (sql: string): number => {
  try {
    return (reader.prepare(sql).get() as { n: number }).n;
  } catch {
    return 0; // the worker has not created the table yet
  }
};
const scheduled = (): number => count('SELECT count(*) AS n FROM waiting');
const leased = (): number => count('SELECT count(*) AS n FROM leases WHERE released = 0');
const pause = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
async function until(what: string, ok: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await pause(500);
  }
}
const publish = async (prefix: string, from: number, to: number): Promise<void> => {
  for (let i = from; i < to; i++)
    await bus.publishStart({ runId: `${prefix}-${i}`, pipeline: 'bench1', input: ticket(i) });
};

// Warm-up: the whole path (start, 429, let go) for WARM runs; they stay parked.
await publish('warm', 0, WARM);
await until('the warm-up runs parked', () => scheduled() === WARM, 600_000);
const mib = (b: number | undefined): number => Math.round(((b ?? 0) / 1048576) * 10) / 10;
const rows: Array<{ parked: number; rssMiB: number; heapMiB: number; leased: number }> = [];
let started = 0;
const t0 = Date.now();
for (const n of checkpoints) {
  await publish('p', started, n);
  started = n;
  await until(`${n} runs parked`, () => scheduled() === WARM + n, 3_600_000);
  // Let the last acks and idle sockets settle (keep-alive sockets close after 4 s).
  await pause(5_000);
  const m = await ask('measure', 'memory');
  rows.push({ parked: n, rssMiB: mib(m.rss), heapMiB: mib(m.heapUsed), leased: leased() });
  process.stderr.write(`${n} parked: rss ${mib(m.rss)} MiB, heap ${mib(m.heapUsed)} MiB\n`);
}
const parkSeconds = (Date.now() - t0) / 1000;
const idle = await ask('cpu', 'cpu', { ms: IDLE_MS });
const first = rows[0];
const last = rows[rows.length - 1];
const result = {
  runs: RUNS,
  concurrency: CONCURRENCY,
  retryAfterS: RETRY_AFTER_S,
  rows,
  rssPerRunKiB: first && last ? ((last.rssMiB - first.rssMiB) * 1024) / RUNS : null,
  heapPerRunKiB: first && last ? ((last.heapMiB - first.heapMiB) * 1024) / RUNS : null,
  idleCpuPct: idle.pct,
  idleMs: IDLE_MS,
  parkRunsPerSec: RUNS / parkSeconds,
  load1: load1(),
  cpus: cpus().length,
  node: process.version,
};
worker.send({ type: 'stop' });
await exited;
reader.close();
await bus.close();
await fake.close();
rmSync(dir, { recursive: true, force: true });
emitResult(result);
process.exit(0);
