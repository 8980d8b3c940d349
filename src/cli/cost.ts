/**
 * `plumbline cost`: spend folded from the log (every attempt that reported usage is billed,
 * including invalid answers and failed attempts). A call lost with its process is counted at
 * its reservation and reported apart as unconfirmed; a fork's copied attempts are counted once,
 * to the run that made them.
 */
import type { StoredEnvelope } from '../machines/events.js';
import { roundUsd } from '../machines/context.js';
import { addOutcome, emptyRollupRow, isOutcomeType, utcDay } from '../store/costRollup.js';
import type { CostRollupRow, RunSummary, Store } from '../store/types.js';

/** One row of the cost report. */
export interface CostRow {
  key: string;
  calls: number;
  inputTokens: number;
  outputTokens: number;
  cacheReadTokens: number;
  cacheWriteTokens: number;
  costUsd: number;
  /** How much of `costUsd` is unconfirmed: calls lost mid-flight, counted at their reservation. */
  unconfirmedUsd: number;
  /** How many of `calls` are unconfirmed. */
  unconfirmedCalls: number;
}

/** A run the report could not read, and why. */
export interface SkippedRun {
  runId: string;
  reason: string;
}

/** The cost report: its rows, and the runs left out because their log could not be read. */
export interface CostReport {
  rows: CostRow[];
  skipped: SkippedRun[];
}

/**
 * How `cost` groups spend: by the pipeline a call's run belongs to, its model, its UTC day, or
 * its top-level run (a run with its children, grandchildren and so on: one row per tree).
 */
export type CostBy = 'pipeline' | 'model' | 'day' | 'run';

type By = CostBy;

/** Receives every event of the store, run by run in append order. */
type Sink = (e: StoredEnvelope) => void;

/**
 * Feeds every event of the store to a sink made by `makeSink`. Reads the whole store in pages;
 * when a page holds an unreadable event it starts again (with a fresh sink) run by run, so the
 * runs that read back are fed and each one that does not is returned with the reason.
 */
export async function scanStore(store: Store, makeSink: () => Sink): Promise<SkippedRun[]> {
  const skipped: SkippedRun[] = [];
  try {
    const sink = makeSink();
    let pos = 0;
    for (;;) {
      const page = await store.log.readAll(pos, 5000);
      if (page.length === 0) break;
      for (const e of page) {
        pos = e.pos;
        sink(e);
      }
    }
  } catch {
    const sink = makeSink();
    for (const run of (await store.log.listRuns()).reverse()) {
      let events: StoredEnvelope[];
      try {
        events = await store.log.read(run.runId);
      } catch (e) {
        skipped.push({ runId: run.runId, reason: (e as Error).message });
        continue;
      }
      for (const e of events) sink(e);
    }
  }
  return skipped;
}

/**
 * A sink that passes on the model outcomes (MODEL_RESPONSE, MODEL_ERROR) each run made itself:
 * in a fork, the events up to the fork point are copies of the source's and are skipped.
 */
function modelOutcomes(
  visit: (e: StoredEnvelope & { event: { type: 'MODEL_RESPONSE' | 'MODEL_ERROR' } }) => void,
): Sink {
  const copiedUpTo = new Map<string, number>();
  return (e) => {
    const ev = e.event;
    if (ev.type === 'run.started' && ev.forkedFrom !== null)
      copiedUpTo.set(e.runId, ev.forkedFrom.seq);
    // An agent's turn (AGENT_TURN) is billed like a model response.
    if (!isOutcomeType(ev.type)) return;
    if (e.seq <= (copiedUpTo.get(e.runId) ?? 0)) return;
    visit(e as never);
  };
}

/** True for the outcome of a call lost with its process (cost = its reservation). */
export function isUnconfirmed(ev: StoredEnvelope['event']): boolean {
  return ev.type === 'MODEL_ERROR' && ev.unconfirmed === true;
}

type Outcome = StoredEnvelope & { event: { type: 'MODEL_RESPONSE' | 'MODEL_ERROR' } };

type Summing = CostRollupRow & { key: string };

/** The rows being summed, by key; `add` counts one outcome under a key. */
function rowTable(): { rows: Map<string, Summing>; add: (key: string, e: Outcome) => void } {
  const rows = new Map<string, Summing>();
  const add = (key: string, e: Outcome): void => {
    const r = rows.get(key) ?? { ...emptyRollupRow('', '', ''), key };
    addOutcome(r, e.event, e.event.type === 'MODEL_ERROR');
    rows.set(key, r);
  };
  return { rows, add };
}

/**
 * The report's rows: USD rounded once, in the report's order (by day: oldest day first, a time
 * series; otherwise the most spent first).
 */
function finish(rows: Iterable<Summing>, by: By): CostRow[] {
  return [...rows]
    .map((r): CostRow => ({
      key: r.key,
      calls: r.calls,
      inputTokens: r.inputTokens,
      outputTokens: r.outputTokens,
      cacheReadTokens: r.cacheReadTokens,
      cacheWriteTokens: r.cacheWriteTokens,
      costUsd: roundUsd(r.costUsd),
      unconfirmedUsd: roundUsd(r.unconfirmedUsd),
      unconfirmedCalls: r.unconfirmedCalls,
    }))
    .sort((a, b) =>
      by === 'day'
        ? a.key.localeCompare(b.key)
        : b.costUsd - a.costUsd || a.key.localeCompare(b.key),
    );
}

/** The key of an outcome in a report by `by` (by run: its own run, merged into trees after). */
const keyOf = (by: By, e: Outcome, pipeline: string): string =>
  by === 'model' ? e.event.model : by === 'day' ? utcDay(e.at) : by === 'run' ? e.runId : pipeline;

/**
 * Sums model attempts across every run by pipeline, model, day (UTC) or top-level run, each
 * row saying how much of it is unconfirmed. Every attempt counts once, to the run that made it
 * (a parent's rolled-up cost is never read). From the store's rollups (kept as runs end) plus
 * the newer events of unfinished runs; `fromLog`, `run` (the rollups keep no runs) or a store
 * without rollups folds every log instead, which also finds runs whose log no longer reads back
 * (listed in `skipped`).
 */
export async function costReport(
  store: Store,
  by: By,
  opts: { fromLog?: boolean } = {},
): Promise<CostReport> {
  // The rollups do not keep runs apart: by run folds the logs.
  const rollup = opts.fromLog === true || by === 'run' ? undefined : await store.log.costRollup?.();
  if (rollup === undefined) return foldedReport(store, by);
  const { rows, add } = rowTable();
  const addRow = (r: CostRollupRow): void => {
    const key = by === 'model' ? r.model : by === 'day' ? r.day : r.pipeline;
    const row = rows.get(key) ?? { ...emptyRollupRow('', '', ''), key };
    for (const f of SUMMED) row[f] += r[f];
    rows.set(key, row);
  };
  for (const r of rollup.rows) addRow(r);
  const skipped: SkippedRun[] = [];
  for (const p of rollup.pending) {
    // Summed by the store already (no checked read of the log, and no event schemas to load).
    if (p.rows !== undefined) {
      for (const r of p.rows) addRow(r);
      continue;
    }
    try {
      for (const e of await store.log.read(p.runId, p.fromSeq + 1))
        if (isOutcomeType(e.event.type)) add(keyOf(by, e as Outcome, p.pipeline), e as Outcome);
    } catch (e) {
      skipped.push({ runId: p.runId, reason: (e as Error).message });
    }
  }
  return { rows: finish(rows.values(), by), skipped };
}

const SUMMED = [
  'calls',
  'inputTokens',
  'outputTokens',
  'cacheReadTokens',
  'cacheWriteTokens',
  'costUsd',
  'unconfirmedUsd',
  'unconfirmedCalls',
] as const;

/** {@link costReport} by folding every event of the store. */
async function foldedReport(store: Store, by: By): Promise<CostReport> {
  let table = rowTable();
  let parentOf = new Map<string, string>();
  const skipped = await scanStore(store, () => {
    table = rowTable();
    parentOf = new Map();
    const pipelineOf = new Map<string, string>();
    const outcomes = modelOutcomes((e) =>
      table.add(keyOf(by, e, pipelineOf.get(e.runId) ?? '?'), e),
    );
    return (e) => {
      if (e.event.type === 'run.started') {
        pipelineOf.set(e.runId, e.event.pipeline);
        if (e.event.parent !== undefined) parentOf.set(e.runId, e.event.parent.runId);
      }
      outcomes(e);
    };
  });
  const rows = by === 'run' ? intoTrees(table.rows, parentOf) : table.rows;
  return { rows: finish(rows.values(), by), skipped };
}

/** Per-run rows summed into one row per top-level run (a child's calls count to its root). */
function intoTrees(
  byRun: Map<string, Summing>,
  parentOf: Map<string, string>,
): Map<string, Summing> {
  const rootOf = (runId: string): string => {
    let id = runId;
    // Bounded: a malformed log naming a cycle of parents ends somewhere in it.
    for (let n = 0, up = parentOf.get(id); up !== undefined && n < parentOf.size; n++) {
      id = up;
      up = parentOf.get(id);
    }
    return id;
  };

  const out = new Map<string, Summing>();
  for (const [runId, row] of byRun) {
    const key = rootOf(runId);
    const sum = out.get(key) ?? { ...emptyRollupRow('', '', ''), key };
    for (const f of SUMMED) sum[f] += row[f];
    out.set(key, sum);
  }
  return out;
}

/**
 * Each run's unconfirmed spend (calls lost mid-flight, at their reservation), as included in
 * its `costUsd` (a fork's copied lost calls included, as its cost includes them); runs without
 * any are absent.
 */
export async function unconfirmedByRun(
  store: Store,
  runs?: readonly RunSummary[],
): Promise<{ byRun: Map<string, number>; skipped: SkippedRun[] }> {
  if (runs !== undefined) return unconfirmedOf(store, runs);
  let byRun = new Map<string, number>();
  const skipped = await scanStore(store, () => {
    byRun = new Map();
    return (e) => {
      if (isUnconfirmed(e.event) && e.event.type === 'MODEL_ERROR')
        byRun.set(e.runId, roundUsd((byRun.get(e.runId) ?? 0) + e.event.costUsd));
    };
  });
  return { byRun, skipped };
}

/**
 * {@link unconfirmedByRun} for a page of runs: reads only their logs (a run that cost nothing
 * has nothing unconfirmed), a few at a time.
 */
async function unconfirmedOf(
  store: Store,
  runs: readonly RunSummary[],
): Promise<{ byRun: Map<string, number>; skipped: SkippedRun[] }> {
  const byRun = new Map<string, number>();
  const skipped: SkippedRun[] = [];
  let todo = runs.filter((r) => r.costUsd > 0);
  // What the store keeps in its index needs no log read (JetStream: a read per run is slow).
  const kept = (await store.log.unconfirmedUsd?.(todo.map((r) => r.runId))) ?? new Map();
  for (const [id, usd] of kept) if (usd > 0) byRun.set(id, roundUsd(usd));
  todo = todo.filter((r) => !kept.has(r.runId));
  const worker = async (): Promise<void> => {
    for (let r = todo.shift(); r !== undefined; r = todo.shift()) {
      try {
        let sum = 0;
        for (const e of await store.log.read(r.runId))
          if (isUnconfirmed(e.event) && e.event.type === 'MODEL_ERROR') sum += e.event.costUsd;
        if (sum > 0) byRun.set(r.runId, roundUsd(sum));
      } catch (e) {
        skipped.push({ runId: r.runId, reason: (e as Error).message });
      }
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
  return { byRun, skipped };
}
