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

const finite = (v: unknown): boolean => typeof v === 'number' && Number.isFinite(v);
const finiteOrAbsent = (v: unknown): boolean => v === undefined || finite(v);

/** True when `ev` has the figures {@link addOutcome} sums, each a finite number where present. */
export function outcomeFieldsOk(ev: unknown): ev is OutcomeFields {
  if (typeof ev !== 'object' || ev === null) return false;
  const e = ev as Record<string, unknown>;
  if (typeof e.model !== 'string' || !finiteOrAbsent(e.costUsd)) return false;
  if (e.unconfirmed !== undefined && typeof e.unconfirmed !== 'boolean') return false;
  const u = e.usage as Record<string, unknown> | null | undefined;
  if (u === null || u === undefined) return true;
  return (
    typeof u === 'object' &&
    finite(u.inputTokens) &&
    finite(u.outputTokens) &&
    finiteOrAbsent(u.cacheReadTokens) &&
    finiteOrAbsent(u.cacheWrite5mTokens) &&
    finiteOrAbsent(u.cacheWrite1hTokens)
  );
}

/** True for an event type that is billed (a model attempt's outcome; an agent's turn is one). */
export function isOutcomeType(type: string): boolean {
  return type === 'MODEL_RESPONSE' || type === 'MODEL_ERROR' || type === 'AGENT_TURN';
}

/** The UTC day (`YYYY-MM-DD`) of an epoch-ms time, the key of `cost --by day`. */
export function utcDay(at: number): string {
  // Epoch ms has no leap seconds: a UTC day is exactly DAY_MS long, so its index names it.
  const index = Math.floor(at / DAY_MS);
  if (index !== lastDay.index) lastDay = { index, day: new Date(at).toISOString().slice(0, 10) };
  return lastDay.day;
}

const DAY_MS = 86_400_000;
/** The day `utcDay` named last: runs ending near each other end on the same day. */
let lastDay: { index: number; day: string } = { index: NaN, day: '' };

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

/** The summed fields of a rollup row, in the order compact counters keep them. */
export const ROLLUP_FIELDS = [
  'calls',
  'inputTokens',
  'outputTokens',
  'cacheReadTokens',
  'cacheWriteTokens',
  'costUsd',
  'unconfirmedUsd',
  'unconfirmedCalls',
] as const;

/**
 * One run's billed outcomes per (UTC day, model), as compact counters in {@link ROLLUP_FIELDS}
 * order, keyed `JSON.stringify([day, model])`: small enough to live in a run's index entry.
 */
export type RunCosts = Record<string, number[]>;

/** A row from compact counters (missing counters read as 0). */
function rowOf(day: string, pipeline: string, model: string, c: readonly number[] = []) {
  const row = emptyRollupRow(day, pipeline, model);
  ROLLUP_FIELDS.forEach((f, i) => (row[f] = c[i] ?? 0));
  return row;
}

/** Adds one outcome at `at` to a run's costs (in place). */
export function addRunCost(costs: RunCosts, at: number, ev: OutcomeFields, isError: boolean): void {
  const day = utcDay(at);
  const key = JSON.stringify([day, ev.model]);
  const row = rowOf(day, '', ev.model, costs[key]);
  addOutcome(row, ev, isError);
  costs[key] = ROLLUP_FIELDS.map((f) => row[f]);
}

/** `a − b`, counter by counter (what a run added since an earlier contribution). */
export function subtractRunCosts(a: RunCosts, b: RunCosts): RunCosts {
  const out: RunCosts = {};
  for (const [key, c] of Object.entries(a)) {
    const d = c.map((x, i) => x - (b[key]?.[i] ?? 0));
    if (d.some((x) => x !== 0)) out[key] = d;
  }
  return out;
}

/** The rollup rows of one run's costs, under its pipeline. */
export function runCostRows(pipeline: string, costs: RunCosts): CostRollupRow[] {
  return Object.entries(costs).map(([key, c]) => {
    const [day, model] = JSON.parse(key) as [string, string];
    return rowOf(day, pipeline, model, c);
  });
}

/** Adds rows into a table keyed by (day, pipeline, model) (in place). */
export function mergeRollupRows(
  table: Map<string, CostRollupRow>,
  rows: readonly CostRollupRow[],
): void {
  for (const r of rows) {
    const key = JSON.stringify([r.day, r.pipeline, r.model]);
    const cur = table.get(key) ?? emptyRollupRow(r.day, r.pipeline, r.model);
    for (const f of ROLLUP_FIELDS) cur[f] += r[f];
    table.set(key, cur);
  }
}
