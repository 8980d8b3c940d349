/**
 * What a run waiting for rate-limit room costs its process: N runs started against a key
 * paced at 1 request a minute (configured), so all but the first wait in `llmPhase` before
 * their ATTEMPT; the heap and RSS they add, per run, after two collections.
 * Usage: node --expose-gc --import tsx bench/rateWaitMemory.ts [--runs 2000]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Runtime, openSqliteStore, prepare } from '../src/index.js';
import { createAnthropicClient } from '../src/model/anthropic.js';
import { startFakeClaude } from '../src/testing/index.js';
import { emitResult, numArg } from './lib/proc.js';
import { oneStep, ticket } from './workload.js';

const RUNS = numArg('runs', 2_000);
const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) throw new Error('run with node --expose-gc');

const dir = mkdtempSync(join(tmpdir(), 'plumbline-bench-ratewait-'));
const fake = await startFakeClaude();
const store = openSqliteStore(join(dir, 'ratewait.db'));
const rt = new Runtime({
  store,
  model: createAnthropicClient({ apiKey: 'bench', baseURL: fake.url }),
  rateLimits: { levels: { '*': { requests: 1 } } },
});
const p = prepare(oneStep());
const measure = async (): Promise<{ rss: number; heap: number }> => {
  await new Promise((r) => setTimeout(r, 5_000));
  gc();
  await new Promise((r) => setTimeout(r, 100));
  gc();
  const m = process.memoryUsage();
  return { rss: m.rss, heap: m.heapUsed };
};
// The first run takes the only request of the minute (and warms every code path).
await rt.start(p, { input: ticket(0), runId: 'w-0' });
const before = await measure();
const ac = new AbortController();
const all = Array.from({ length: RUNS }, (_, i) =>
  rt.start(p, { input: ticket(i + 1), runId: `w-${i + 1}`, signal: ac.signal }),
);
const after = await measure();
const calls = fake.calls;
ac.abort();
await Promise.allSettled(all);
emitResult({
  runs: RUNS,
  modelCalls: calls,
  heapPerWaitingRunKb: Math.round((after.heap - before.heap) / RUNS / 102.4) / 10,
  rssPerWaitingRunKb: Math.round((after.rss - before.rss) / RUNS / 102.4) / 10,
});
await store.close();
await fake.close();
rmSync(dir, { recursive: true, force: true });
