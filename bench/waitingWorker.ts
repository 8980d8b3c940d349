/**
 * The worker process of the waiting-runs benchmark: `runWorker` (what `plumbline worker` runs)
 * over one SQLite file and its embedded bus, answering the parent's `measure` with its memory
 * after two full collections. Forked by bench/waiting.ts with --expose-gc.
 * Usage (by the parent): node --expose-gc --import tsx bench/waitingWorker.ts <db> <concurrency>
 */
import { setMaxListeners } from 'node:events';
import { openSqliteBus } from '../src/bus/sqlite.js';
import { Runtime } from '../src/runtime/driver.js';
import { createLogger } from '../src/runtime/logger.js';
import { prepare } from '../src/runtime/prepare.js';
import { runWorker } from '../src/runtime/worker.js';
import { openSqliteStore } from '../src/store/sqlite.js';
import pipeline from './waitingPipeline.js';

const [db = '', concurrency = '16'] = process.argv.slice(2);
const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined || process.send === undefined)
  throw new Error('forked by bench/waiting.ts with --expose-gc');

/** RSS and heap (bytes) after two full collections. */
async function measure(): Promise<{ rss: number; heapUsed: number; external: number }> {
  gc?.();
  await new Promise((r) => setTimeout(r, 200));
  gc?.();
  const m = process.memoryUsage();
  return { rss: m.rss, heapUsed: m.heapUsed, external: m.external };
}

const logger = createLogger({ level: 'warn', pretty: false });
const store = openSqliteStore(db);
const bus = openSqliteBus(db);
const runtime = new Runtime({ store, logger, autoResume: false });
const prepared = prepare(pipeline);
const ac = new AbortController();
// Each run driven listens to it: up to `concurrency` listeners at once.
setMaxListeners(Number(concurrency) * 2 + 10, ac.signal);
process.on('message', (m: { type: string }) => {
  if (m.type === 'measure') void measure().then((r) => process.send?.({ type: 'memory', ...r }));
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
