/**
 * `plumbline cost`: spend folded from the log (every attempt that reported usage is billed,
 * including invalid answers and failed attempts).
 */
import type { StoredEnvelope } from '../machines/events.js';
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

/** Adds one event to the rows (only model attempts count). */
function add(
  rows: Map<string, CostRow>,
  pipelineOf: Map<string, string>,
  by: By,
  e: StoredEnvelope,
): void {
  const ev = e.event;
  if (ev.type === 'run.started') pipelineOf.set(e.runId, ev.pipeline);
  if (ev.type !== 'MODEL_RESPONSE' && ev.type !== 'MODEL_ERROR') return;
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
  };
  row.calls += 1;
  const u = ev.usage;
  if (u !== null) {
    row.inputTokens += u.inputTokens;
    row.outputTokens += u.outputTokens;
    row.cacheReadTokens += u.cacheReadTokens;
    row.cacheWriteTokens += u.cacheWrite5mTokens + u.cacheWrite1hTokens;
  }
  row.costUsd = Math.round((row.costUsd + ev.costUsd) * 1e9) / 1e9;
  rows.set(key, row);
}

/**
 * Sums model attempts across every run by pipeline, model or day (UTC). Reads the whole store
 * in pages; when a page holds an unreadable event it starts again run by run, so the runs that
 * read back are counted and each one that does not is listed in `skipped` with the reason.
 */
export async function costReport(store: Store, by: By): Promise<CostReport> {
  const pipelineOf = new Map<string, string>();
  let rows = new Map<string, CostRow>();
  const skipped: SkippedRun[] = [];
  try {
    let pos = 0;
    for (;;) {
      const page = await store.log.readAll(pos, 5000);
      if (page.length === 0) break;
      for (const e of page) {
        pos = e.pos;
        add(rows, pipelineOf, by, e);
      }
    }
  } catch {
    rows = new Map();
    for (const run of (await store.log.listRuns()).reverse()) {
      let events: StoredEnvelope[];
      try {
        events = await store.log.read(run.runId);
      } catch (e) {
        skipped.push({ runId: run.runId, reason: (e as Error).message });
        continue;
      }
      for (const e of events) add(rows, pipelineOf, by, e);
    }
  }
  return {
    rows: [...rows.values()].sort((a, b) => b.costUsd - a.costUsd || a.key.localeCompare(b.key)),
    skipped,
  };
}
