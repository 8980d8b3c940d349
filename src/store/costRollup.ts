/**
 * Cost rollups, the pure part: how one model outcome (MODEL_RESPONSE, MODEL_ERROR) adds to a
 * (UTC day, pipeline, model) row. The store adapters keep these rows as runs end, so `cost`
 * reads a few rows instead of folding every log; `cost --from-log` folds with the same rule.
 */
import type { CostRollupRow } from './types.js';

/** The fields of a model outcome that count, as stored (usage fields may be absent). */
export interface OutcomeFields {
  model: string;
  costUsd?: number | undefined;
  unconfirmed?: boolean | undefined;
  usage?: {
    inputTokens: number;
    outputTokens: number;
    cacheReadTokens?: number;
    cacheWrite5mTokens?: number;
    cacheWrite1hTokens?: number;
  } | null;
}

/** True for an event type that is billed (a model attempt's outcome; an agent's turn is one). */
export function isOutcomeType(type: string): boolean {
  return type === 'MODEL_RESPONSE' || type === 'MODEL_ERROR' || type === 'AGENT_TURN';
}

/** The UTC day (`YYYY-MM-DD`) of an epoch-ms time, the key of `cost --by day`. */
export function utcDay(at: number): string {
  return new Date(at).toISOString().slice(0, 10);
}

/** An empty row for a key. */
export function emptyRollupRow(day: string, pipeline: string, model: string): CostRollupRow {
  return {
    day,
    pipeline,
    model,
    calls: 0,
    inputTokens: 0,
    outputTokens: 0,
    cacheReadTokens: 0,
    cacheWriteTokens: 0,
    costUsd: 0,
    unconfirmedUsd: 0,
    unconfirmedCalls: 0,
  };
}

/** Adds one outcome to a row (in place): one call, its tokens and its cost. */
export function addOutcome(row: CostRollupRow, ev: OutcomeFields, isError: boolean): void {
  row.calls += 1;
  const u = ev.usage;
  if (u !== null && u !== undefined) {
    row.inputTokens += u.inputTokens;
    row.outputTokens += u.outputTokens;
    row.cacheReadTokens += u.cacheReadTokens ?? 0;
    row.cacheWriteTokens += (u.cacheWrite5mTokens ?? 0) + (u.cacheWrite1hTokens ?? 0);
  }
  const usd = ev.costUsd ?? 0;
  row.costUsd += usd;
  if (isError && ev.unconfirmed === true) {
    row.unconfirmedCalls += 1;
    row.unconfirmedUsd += usd;
  }
}
