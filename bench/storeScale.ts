/**
 * Scale of the store (issue 14): how fast the run list, a page after a cursor, the unfinished
 * runs, `cost --by day` and the visualizer's run list answer with a large store.
 *
 * SQLite: `--runs` (default 1,000,000) small runs are written straight into the tables with SQL
 * in transactions of 20,000 runs (the append path would take an hour here): per run a `runs` row,
 * two events (`run.started`, one `MODEL_RESPONSE`), its `cost_rolled` row, and the cost rollups
 * summed as they go — the rows an append leaves. 1 run in 10,000 is left running.
 * JetStream: `--nats-runs` (default 20,000) runs through the adapter's own `append`
 * (`--nats-inflight`, default 32, at a time), on a nats-server of its own: the run index, the run
 * list and the cost rollups are the ones the adapter keeps. `--runs 0` skips SQLite.
 * Each query: the first call (cold), then the median of 5.
 *
 * Usage: node --import tsx bench/storeScale.ts [--runs 1000000] [--nats-runs 20000] [--keep]
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { costReport } from '../src/cli/cost.js';
import type { NewEnvelope } from '../src/machines/events.js';
import { openJetStreamStore } from '../src/store/jetstream.js';
import { openSqliteStore } from '../src/store/sqlite.js';
import type { Store } from '../src/store/types.js';
import { listRuns as vizListRuns } from '../src/viz/api.js';
import { startNatsServer } from '../test/helpers/natsServer.js';
import { load1, numArg } from './lib/proc.js';

const RUNS = numArg('runs', 1_000_000);
const NATS_RUNS = numArg('nats-runs', 20_000);
/** Appends in flight while filling the JetStream store. */
const NATS_INFLIGHT = numArg('nats-inflight', 32);
const T0 = Date.UTC(2026, 9, 1);
const SPAN = 30 * 86_400_000;
const id = (i: number): string => `r${String(i).padStart(8, '0')}`;
const atOf = (i: number, n: number): number => T0 + Math.floor((i * SPAN) / n);
const running = (i: number): boolean => i % 10_000 === 7;

/** The two envelopes of a small run. */
function envelopes(i: number, n: number): NewEnvelope[] {
  const at = atOf(i, n);
  const status = running(i) ? 'running' : 'completed';
  return [
    {
      v: 1,
      at,
      event: {
        type: 'run.started',
        pipeline: `p${i % 5}`,
        version: '1',
        machineHash: 'h',
        definition: null,
        module: null,
        input: { n: i },
        limits: { budgetUsd: null, maxIterations: null, deadlineAt: null },
        forkedFrom: null,
      },
      state: { value: { a: 'ready' }, status: 'running', step: 'a', costUsd: 0 },
    },
    {
      v: 1,
      at: at + 5,
      event: {
        type: 'MODEL_RESPONSE',
        step: 'a',
        attempt: 1,
        requestId: null,
        model: i % 2 ? 'claude-haiku-4-5' : 'claude-sonnet-4-6',
        stopReason: 'end_turn',
        usage: {
          inputTokens: 100,
          outputTokens: 20,
          cacheReadTokens: 0,
          cacheWrite5mTokens: 0,
          cacheWrite1hTokens: 0,
        },
        costUsd: 0.0002,
        verdict: 'valid',
        issues: [],
        text: null,
        durationMs: 3,
      },
      state: {
        value: status === 'running' ? { a: 'ready' } : status,
        status,
        step: 'a',
        costUsd: 0.0002,
      },
    },
  ];
}

/** Fills a new SQLite store with `n` runs by SQL (see the header). */
function fillSqlite(path: string, n: number): void {
  // The adapter makes the schema (tables, listing indexes, rollup tables), then we write rows.
  void openSqliteStore(path).close();
  const db = new Database(path);
  db.pragma('synchronous = OFF');
  const insRun = db.prepare(
    `INSERT INTO runs (run_id, pipeline, version, machine_hash, module, status, step, cost_usd, last_seq, started_at, updated_at, ended_at)
     VALUES (?, ?, '1', 'h', NULL, ?, 'a', 0.0002, 2, ?, ?, ?)`,
  );
  const insEvent = db.prepare(
    'INSERT INTO events (run_id, seq, at, type, body) VALUES (?, ?, ?, ?, ?)',
  );
  const insRolled = db.prepare('INSERT INTO cost_rolled (run_id, seq) VALUES (?, ?)');
  const rollup = new Map<string, { calls: number; usd: number }>();
  const batch = db.transaction((from: number, to: number) => {
    for (let i = from; i < to; i++) {
      const [s, m] = envelopes(i, n) as [NewEnvelope, NewEnvelope];
      const done = !running(i);
      insRun.run(id(i), `p${i % 5}`, m.state.status, s.at, m.at, done ? m.at : null);
      insEvent.run(id(i), 1, s.at, 'run.started', JSON.stringify(s));
      insEvent.run(id(i), 2, m.at, 'MODEL_RESPONSE', JSON.stringify(m));
      insRolled.run(id(i), done ? 2 : 0);
      if (done) {
        const key = `${new Date(m.at).toISOString().slice(0, 10)}|p${i % 5}|${(m.event as { model: string }).model}`;
        const r = rollup.get(key) ?? { calls: 0, usd: 0 };
        r.calls += 1;
        r.usd += 0.0002;
        rollup.set(key, r);
      }
    }
  });
  for (let i = 0; i < n; i += 20_000) batch(i, Math.min(n, i + 20_000));
  const insRollup = db.prepare('INSERT INTO cost_rollup VALUES (?, ?, ?, ?, ?, ?, 0, 0, ?, 0, 0)');
  for (const [key, r] of rollup) {
    const [day, pipeline, model] = key.split('|');
    insRollup.run(day, pipeline, model, r.calls, r.calls * 100, r.calls * 20, r.usd);
  }
  db.close();
}

/** Times `f`: the first call, then the median of 5 (ms). */
async function time(f: () => Promise<unknown>): Promise<{ cold: number; warm: number }> {
  const once = async (): Promise<number> => {
    const t = performance.now();
    await f();
    return performance.now() - t;
  };
  const cold = await once();
  const xs: number[] = [];
  for (let k = 0; k < 5; k++) xs.push(await once());
  xs.sort((a, b) => a - b);
  return { cold, warm: xs[2] as number };
}

/** The four queries of the issue, plus a page after a cursor in the middle of the store. */
async function queries(
  store: Store,
  n: number,
): Promise<Record<string, { cold: number; warm: number }>> {
  const mid = id(Math.floor(n / 2));
  return {
    'runs, first page (50)': await time(() => store.log.listRuns({ limit: 51 })),
    'runs --after <a run half way>': await time(() =>
      store.log.listRuns({ limit: 51, after: mid }),
    ),
    'runs --status running': await time(() => store.log.listRuns({ status: 'running', limit: 51 })),
    'cost --by day': await time(() => costReport(store, 'day')),
    'visualizer run list (500)': await time(() =>
      vizListRuns(store.log, new URLSearchParams(), Date.now()),
    ),
  };
}

/** Wall time of a CLI verb, median of 3 (ms), from the compiled bin. */
function cli(args: string[]): number {
  const xs: number[] = [];
  for (let k = 0; k < 3; k++) {
    const t = performance.now();
    execFileSync(process.execPath, ['bin/plumbline.mjs', ...args], { stdio: 'ignore' });
    xs.push(performance.now() - t);
  }
  return xs.sort((a, b) => a - b)[1] as number;
}

const dir = mkdtempSync(join(tmpdir(), 'plumbline-scale-'));
const out: Record<string, unknown> = {
  date: new Date().toISOString(),
  runs: RUNS,
  natsRuns: NATS_RUNS,
};
try {
  const db = join(dir, 'scale.db');
  let t = performance.now();
  if (RUNS > 0) {
    fillSqlite(db, RUNS);
    out.sqliteFillSeconds = (performance.now() - t) / 1000;
    out.sqliteBytes = statSync(db).size;
    const store = openSqliteStore(db);
    out.sqlite = await queries(store, RUNS);
    await store.close();
    out.load1 = load1();
    out.cliMs = {
      'plumbline --version': cli(['--version']),
      'runs (first page)': cli(['runs', '--store', db]),
      'runs --status running': cli(['runs', '--status', 'running', '--store', db]),
      'cost --by day': cli(['cost', '--by', 'day', '--store', db]),
    };
  }

  if (NATS_RUNS > 0) {
    await using server = await startNatsServer({ storeDir: join(dir, 'nats') });
    const js = await openJetStreamStore({ servers: server.url });
    t = performance.now();
    let next = 0;
    const worker = async (): Promise<void> => {
      for (let i = next++; i < NATS_RUNS; i = next++)
        await js.log.append(id(i), envelopes(i, NATS_RUNS), 'no_stream');
    };
    const progress = setInterval(
      () => process.stderr.write(`jetstream: ${next} runs appended, load ${load1()}\n`),
      30_000,
    );
    await Promise.all(Array.from({ length: NATS_INFLIGHT }, worker));
    clearInterval(progress);
    out.natsFillSeconds = (performance.now() - t) / 1000;
    out.nats = await queries(js, NATS_RUNS);
    // The rollups must hold every ended run's call: 0.0002 USD each.
    const ended = NATS_RUNS - Array.from({ length: NATS_RUNS }, (_, i) => i).filter(running).length;
    const total = (await costReport(js, 'day')).rows.reduce((a, r) => a + r.calls, 0);
    out.natsCostCalls = { fromRollups: total, expected: NATS_RUNS, endedRuns: ended };
    await js.close();
    out.natsCliMs = {
      'runs (first page)': cli(['runs', '--store', server.url]),
      'runs --status running': cli(['runs', '--status', 'running', '--store', server.url]),
      'cost --by day': cli(['cost', '--by', 'day', '--store', server.url]),
    };
  }
  out.load1After = load1();
} finally {
  if (!process.argv.includes('--keep')) rmSync(dir, { recursive: true, force: true });
  else process.stderr.write(`kept ${dir}\n`);
}
process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
