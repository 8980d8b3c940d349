/**
 * `plumbline cost`: spend folded from the log (every attempt that reported usage is billed,
 * including invalid answers and failed attempts).
 */
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

/** Sums model attempts across every run by pipeline, model or day (UTC). */
export async function costReport(
  store: Store,
  by: 'pipeline' | 'model' | 'day',
): Promise<CostRow[]> {
  const pipelineOf = new Map<string, string>();
  const rows = new Map<string, CostRow>();
  let pos = 0;
  for (;;) {
    const page = await store.log.readAll(pos, 5000);
    if (page.length === 0) break;
    for (const e of page) {
      pos = e.pos;
      const ev = e.event;
      if (ev.type === 'run.started') pipelineOf.set(e.runId, ev.pipeline);
      if (ev.type !== 'MODEL_RESPONSE' && ev.type !== 'MODEL_ERROR') continue;
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
  }
  return [...rows.values()].sort((a, b) => b.costUsd - a.costUsd || a.key.localeCompare(b.key));
}
