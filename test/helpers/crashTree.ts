/**
 * Evidence from a crash-tree store (test/fixtures/pipelines/crashTree.js) after a run: the root's
 * outcome, every run in the store, how often each was started, how each effect key was recorded,
 * and whether each log folds. Read with the built runtime (dist/), the code the child processes
 * ran, so a fold checks the logs against the very machines that wrote them.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import Database from 'better-sqlite3';
import type * as LoadModule from '../../src/runtime/load.js';
import type * as ReplayModule from '../../src/machines/replay.js';
import type * as SqliteModule from '../../src/store/sqlite.js';
import { ROOT } from './cli.js';

/** The fixture pipeline's module. */
export const CRASH_TREE = join(ROOT, 'test/fixtures/pipelines/crashTree.js');

const dist = async <T>(path: string): Promise<T> =>
  (await import(pathToFileURL(join(ROOT, 'dist', path)).href)) as T;

/** What one store holds about the tree rooted at `rootId`. */
export interface TreeState {
  rootStatus: string | undefined;
  /** The root's outputs, folded from its log. */
  outputs: unknown;
  /** Every run in the store, sorted. */
  runIds: string[];
  /** Problems found per run: a count of run.started other than 1, a seq gap, a fold error. */
  problems: string[];
  /** EFFECT_DONE events per effect key, over every run's log. */
  effectsDone: Record<string, number>;
}

/** Reads the tree's evidence from the SQLite store at `storePath`. */
export async function inspectTree(storePath: string, rootId: string): Promise<TreeState> {
  const { loadPipeline, findPipeline } = await dist<typeof LoadModule>('runtime/load.js');
  const { foldLog } = await dist<typeof ReplayModule>('machines/replay.js');
  const { openSqliteStore } = await dist<typeof SqliteModule>('store/sqlite.js');
  const root = await loadPipeline(CRASH_TREE);
  const store = openSqliteStore(storePath);
  const state: TreeState = {
    rootStatus: undefined,
    outputs: undefined,
    runIds: [],
    problems: [],
    effectsDone: {},
  };
  try {
    const runs = await store.log.listRuns();
    state.runIds = runs.map((r) => r.runId).sort();
    for (const run of runs) {
      const events = await store.log.read(run.runId);
      const started = events.filter((e) => e.event.type === 'run.started');
      if (started.length !== 1 || events[0]?.event.type !== 'run.started')
        state.problems.push(`${run.runId}: ${started.length} run.started events`);
      if (events.some((e, i) => e.seq !== i + 1)) state.problems.push(`${run.runId}: seq gap`);
      for (const e of events)
        if (e.event.type === 'EFFECT_DONE')
          state.effectsDone[e.event.key] = (state.effectsDone[e.event.key] ?? 0) + 1;
      try {
        const prepared = findPipeline(root, run.pipeline);
        if (prepared === undefined) throw new Error(`no pipeline '${run.pipeline}' in the tree`);
        const folded = foldLog(prepared.machine, prepared.hash, run.runId, events);
        const parent = folded.started.parent?.runId;
        if (run.runId !== rootId && parent !== rootId)
          state.problems.push(`${run.runId}: parent ${String(parent)}, not ${rootId}`);
        if (run.runId === rootId) state.outputs = folded.snapshot.context.outputs;
      } catch (e) {
        state.problems.push(`${run.runId}: does not fold: ${(e as Error).message}`);
      }
      if (run.runId === rootId) state.rootStatus = run.status;
    }
  } finally {
    await store.close();
  }
  return state;
}

/** The effect keys whose ledger entry holds a result (recorded), read without touching it. */
export function recordedEffects(storePath: string): Set<string> {
  const db = new Database(storePath, { readonly: true, fileMustExist: true });
  try {
    const rows = db.prepare('SELECT key FROM effects WHERE done_at IS NOT NULL').all() as Array<{
      key: string;
    }>;
    return new Set(rows.map((r) => r.key));
  } finally {
    db.close();
  }
}

/** How many times each effect function ran (its executions log), by key. */
export function executions(sink: string): Record<string, number> {
  const file = join(sink, 'executions.log');
  const out: Record<string, number> = {};
  if (!existsSync(file)) return out;
  for (const key of readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l !== ''))
    out[key] = (out[key] ?? 0) + 1;
  return out;
}

/** The keys the sink holds (one file per key). */
export function sinkKeys(sink: string): string[] {
  if (!existsSync(sink)) return [];
  return readdirSync(sink)
    .filter((f) => f.endsWith('.json'))
    .map((f) => f.slice(0, -'.json'.length))
    .sort();
}

/** An even sample of `size` points of 1..n (all of them when n ≤ size), first and last kept. */
export function evenSample(n: number, size: number): number[] {
  if (n <= size) return Array.from({ length: n }, (_, i) => i + 1);
  if (size <= 1) return [n];
  return [
    ...new Set(Array.from({ length: size }, (_, i) => 1 + Math.round((i * (n - 1)) / (size - 1)))),
  ];
}
