/**
 * The worker process of the parked-runs benchmark: `runWorker` (what `plumbline worker` runs,
 * backoffs of 10 s or more let go by default) over one SQLite file and its embedded bus, with the
 * one-step pipeline calling the fake Claude. Answers the parent's `measure` (memory after two full
 * collections) and `cpu` (its CPU share over a few seconds). Forked by bench/parked.ts.
 * Usage (by the parent): node --expose-gc --import tsx bench/parkedWorker.ts <db> <concurrency>
 *   <fake url> <retry-after s>
 */
import { setMaxListeners } from 'node:events';
import { openSqliteBus } from '../src/bus/sqlite.js';
import { Runtime } from '../src/runtime/driver.js';
import { createLogger } from '../src/runtime/logger.js';
import { prepare } from '../src/runtime/prepare.js';
import { runWorker } from '../src/runtime/worker.js';
import { openSqliteStore } from '../src/store/sqlite.js';
import { modelClient, oneStep } from './workload.js';

const [db = '', concurrency = '16', url = '', retryAfter = '3600'] = process.argv.slice(2);
const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined || process.send === undefined)
  throw new Error('forked by bench/parked.ts with --expose-gc');

/** RSS and heap (bytes) after two full collections. */
async function measure(): Promise<{ rss: number; heapUsed: number; external: number }> {
  gc?.();
  await new Promise((r) => setTimeout(r, 200));
  gc?.();
  const m = process.memoryUsage();
  return { rss: m.rss, heapUsed: m.heapUsed, external: m.external };
}

/** This process's CPU share (percent of one core) over `ms`. */
async function cpu(ms: number): Promise<number> {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, ms));
  const c = process.cpuUsage(c0);
  return ((c.user + c.system) / 1000 / (performance.now() - t0)) * 100;
}

const logger = createLogger({ level: 'warn', pretty: false });
const store = openSqliteStore(db);
const bus = openSqliteBus(db);
const runtime = new Runtime({ store, logger, autoResume: false, model: modelClient(url) });
const pipeline = Object.assign(oneStep(), {
  retry: { maxRetryAfterMs: Number(retryAfter) * 1000 },
});
const prepared = prepare(pipeline);
const ac = new AbortController();
setMaxListeners(Number(concurrency) * 2 + 10, ac.signal);
process.on('message', (m: { type: string; ms?: number }) => {
  if (m.type === 'measure') void measure().then((r) => process.send?.({ type: 'memory', ...r }));
  if (m.type === 'cpu') void cpu(m.ms ?? 5_000).then((pct) => process.send?.({ type: 'cpu', pct }));
  if (m.type === 'stop') ac.abort();
});
const done = runWorker({
  runtime,
  bus,
  pipelines: new Map([[prepared.pipeline.name, prepared]]),
  concurrency: Number(concurrency),
  signal: ac.signal,
  logger,
});
process.send({ type: 'ready' });
await done;
await bus.close();
await store.close();
process.disconnect();
