/**
 * One repetition of figure 6, memory: 10,000 runs in one process (one Runtime on SQLite), each
 * parked in backoff after a 429 with `retry-after: 60`, and the RSS (and heap) they add, per run.
 * Also the CPU the process burns while they wait (kill-flag polling, the wake-up sweep).
 * `--unload-ms <ms>`: the Runtime lets backoffs at least that long go (`unloadBackoffMs`, as a
 * worker does by default): the runs wait in the store's wake-up schedule, not in the process.
 * `--retry-after <s>`: the fake's retry-after (and the step's maxRetryAfterMs), so that with
 * 100,000 runs the first ones are still parked when the last one parks.
 * Usage: node --expose-gc --import tsx bench/memory.ts [--runs 10000] [--unload-ms 10000]
 *   [--retry-after 60]
 */
import { setMaxListeners } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { Runtime, openSqliteStore, prepare } from '../src/index.js';
import { startFakeProcess } from './lib/fake.js';
import { emitResult, load1, numArg } from './lib/proc.js';
import { modelClient, oneStep, ticket } from './workload.js';

const RUNS = numArg('runs', 10_000);
const UNLOAD_MS = numArg('unload-ms', 0);
const RETRY_AFTER_S = numArg('retry-after', 60);
const WAVE = 500;
const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) throw new Error('run with node --expose-gc');

const dir = mkdtempSync(join(tmpdir(), 'plumbline-bench-memory-'));
const fake = await startFakeProcess(`429:${RETRY_AFTER_S}`);
const store = openSqliteStore(join(dir, 'memory.db'));
let parked = 0;
const waiters = new Map<string, () => void>();
const rt = new Runtime({
  store,
  model: modelClient(fake.url),
  ...(UNLOAD_MS > 0 ? { unloadBackoffMs: UNLOAD_MS } : {}),
  onEvent: (e) => {
    if (e.event.type === 'MODEL_ERROR') {
      parked++;
      waiters.get(e.runId)?.();
      waiters.delete(e.runId);
    }
  },
});
const p1 = prepare(Object.assign(oneStep(), { retry: { maxRetryAfterMs: RETRY_AFTER_S * 1000 } }));

const settle = async (): Promise<{
  rss: number;
  heap: number;
  heapTotal: number;
  external: number;
}> => {
  // Idle HTTP keep-alive sockets close after 4 s; then collect twice.
  await new Promise((r) => setTimeout(r, 5_000));
  gc();
  await new Promise((r) => setTimeout(r, 100));
  gc();
  const m = process.memoryUsage();
  return { rss: m.rss, heap: m.heapUsed, heapTotal: m.heapTotal, external: m.external };
};

/** Starts `n` runs (at most WAVE not yet parked at once); resolves when all are parked. */
async function park(
  prefix: string,
  n: number,
  signal: AbortSignal,
  all: Set<Promise<unknown>>,
): Promise<void> {
  let open = 0;
  let wake: (() => void) | null = null;
  for (let i = 0; i < n; i++) {
    while (open >= WAVE) await new Promise<void>((r) => (wake = r));
    open++;
    const runId = `${prefix}-${i}`;
    const parkedNow = new Promise<void>((r) => waiters.set(runId, r));
    void parkedNow.then(() => {
      open--;
      const w = wake;
      wake = null;
      w?.();
    });
    // Kept only until the drive returns: a run let go leaves nothing of it in this process.
    const run: Promise<unknown> = rt
      .start(p1, { input: ticket(i), runId, signal })
      .catch((e: unknown) => e)
      .finally(() => all.delete(run));
    all.add(run);
  }
  while (open > 0) await new Promise<void>((r) => (wake = r));
}

// Warm-up: the same path for a few runs, then stop them.
const warm = new AbortController();
setMaxListeners(0, warm.signal);
const warmRuns = new Set<Promise<unknown>>();
await park('w', 200, warm.signal, warmRuns);
warm.abort();
await Promise.all([...warmRuns]);
const before = await settle();

const ac = new AbortController();
setMaxListeners(0, ac.signal);
const runs = new Set<Promise<unknown>>();
const t0 = performance.now();
await park('m', RUNS, ac.signal, runs);
const parkSec = (performance.now() - t0) / 1000;
if (parked < RUNS) throw new Error(`only ${parked} runs parked`);
const after = await settle();
// How many runs wait in the store's wake-up schedule (all of them when unloading, else none).
const reader = new Database(join(dir, 'memory.db'), { readonly: true });
const scheduled = (reader.prepare('SELECT count(*) AS n FROM waiting').get() as { n: number }).n;
const leased = (
  reader.prepare('SELECT count(*) AS n FROM leases WHERE released = 0').get() as { n: number }
).n;
reader.close();
// CPU while 10,000 runs wait: the kill-flag polls.
const cpu0 = process.cpuUsage();
const w0 = performance.now();
await new Promise((r) => setTimeout(r, 3_000));
const cpu = process.cpuUsage(cpu0);
const idleCpuPct = ((cpu.user + cpu.system) / 1000 / (performance.now() - w0)) * 100;
const load = load1();
ac.abort();
await Promise.all([...runs]);

emitResult({
  runs: RUNS,
  unloadMs: UNLOAD_MS,
  retryAfterS: RETRY_AFTER_S,
  scheduled,
  leased,
  load: [load, load1()],
  rssBeforeMiB: before.rss / 2 ** 20,
  rssAfterMiB: after.rss / 2 ** 20,
  rssPerRunKiB: (after.rss - before.rss) / RUNS / 1024,
  heapPerRunKiB: (after.heap - before.heap) / RUNS / 1024,
  heapTotalPerRunKiB: (after.heapTotal - before.heapTotal) / RUNS / 1024,
  externalPerRunKiB: (after.external - before.external) / RUNS / 1024,
  parkRunsPerSec: RUNS / parkSec,
  idleCpuPct,
});
await store.close();
await fake.close();
rmSync(dir, { recursive: true, force: true });
process.exit(0);
