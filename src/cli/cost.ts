/**
 * `plumbline cost`: spend folded from the log (every attempt that reported usage is billed,
 * including invalid answers and failed attempts). A call lost with its process is counted at
 * its reservation and reported apart as unconfirmed; a fork's copied attempts are counted once,
 * to the run that made them.
 */
import type { StoredEnvelope } from '../machines/events.js';
import { roundUsd } from '../machines/context.js';
import type { Store } from '../store/types.js';

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

type By = 'pipeline' | 'model' | 'day';

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
    if (ev.type !== 'MODEL_RESPONSE' && ev.type !== 'MODEL_ERROR') return;
    if (e.seq <= (copiedUpTo.get(e.runId) ?? 0)) return;
    visit(e as never);
  };
}

/** True for the outcome of a call lost with its process (cost = its reservation). */
export function isUnconfirmed(ev: StoredEnvelope['event']): boolean {
  return ev.type === 'MODEL_ERROR' && ev.unconfirmed === true;
}

/**
 * Sums model attempts across every run by pipeline, model or day (UTC), each row saying how
 * much of it is unconfirmed. Runs whose log cannot be read are listed in `skipped`.
 */
export async function costReport(store: Store, by: By): Promise<CostReport> {
  let rows = new Map<string, CostRow>();
  const skipped = await scanStore(store, () => {
    rows = new Map();
    const pipelineOf = new Map<string, string>();
    const outcomes = modelOutcomes((e) => {
      const ev = e.event;
      const key =
        by === 'model'
          ? ev.model
          : by === 'day'
            ? new Date(e.at).toISOString().slice(0, 10)
            : (pipelineOf.get(e.runId) ?? '?');
      const row = rows.get(key) ?? {
        key,
        calls: 0,
        inputTokens: 0,
        outputTokens: 0,
        cacheReadTokens: 0,
        cacheWriteTokens: 0,
        costUsd: 0,
        unconfirmedUsd: 0,
        unconfirmedCalls: 0,
      };
      row.calls += 1;
      const u = ev.usage;
      if (u !== null) {
        row.inputTokens += u.inputTokens;
        row.outputTokens += u.outputTokens;
        row.cacheReadTokens += u.cacheReadTokens;
        row.cacheWriteTokens += u.cacheWrite5mTokens + u.cacheWrite1hTokens;
      }
      row.costUsd = roundUsd(row.costUsd + ev.costUsd);
      if (isUnconfirmed(ev)) {
        row.unconfirmedCalls += 1;
        row.unconfirmedUsd = roundUsd(row.unconfirmedUsd + ev.costUsd);
      }
      rows.set(key, row);
    });
    return (e) => {
      if (e.event.type === 'run.started') pipelineOf.set(e.runId, e.event.pipeline);
      outcomes(e);
    };
  });
  return {
    rows: [...rows.values()].sort((a, b) => b.costUsd - a.costUsd || a.key.localeCompare(b.key)),
    skipped,
  };
}

/**
 * Each run's unconfirmed spend (calls lost mid-flight, at their reservation), as included in
 * its `costUsd` (a fork's copied lost calls included, as its cost includes them); runs without
 * any are absent.
 */
export async function unconfirmedByRun(
  store: Store,
): Promise<{ byRun: Map<string, number>; skipped: SkippedRun[] }> {
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
