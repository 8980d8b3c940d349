/**
 * The SQLite store's cost rollups: one row per (UTC day, pipeline, model) with the calls, tokens
 * and spend of ended runs, kept in the append transaction that ends a run. `cost_rolled` says up
 * to which seq each run is counted (a fork starts at its fork point: copied calls count once,
 * to the run that made them). An unfinished run's newer calls are summed the same way when the
 * rollups are read (`pending[].rows`), unless a body does not parse or lacks a figure: then the
 * reader folds that run's log through the checked read, which names the fault.
 */
import type Database from 'better-sqlite3';
import {
  addOutcome,
  emptyRollupRow,
  outcomeFieldsOk,
  utcDay,
  type OutcomeFields,
} from './costRollup.js';
import type { CostRollup, CostRollupRow, PendingCost } from './types.js';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS cost_rollup (
  day TEXT NOT NULL, pipeline TEXT NOT NULL, model TEXT NOT NULL, calls INTEGER NOT NULL,
  input_tokens INTEGER NOT NULL, output_tokens INTEGER NOT NULL, cache_read_tokens INTEGER NOT NULL,
  cache_write_tokens INTEGER NOT NULL, cost_usd REAL NOT NULL, unconfirmed_usd REAL NOT NULL,
  unconfirmed_calls INTEGER NOT NULL, PRIMARY KEY (day, pipeline, model));
CREATE TABLE IF NOT EXISTS cost_rolled (run_id TEXT PRIMARY KEY, seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS store_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
`;

/** The run statuses whose newer events may not be rolled up yet. */
const UNFINISHED = ['running', 'parked'];

/** The rollup hooks the append transaction calls, and the reader. */
export interface SqliteRollup {
  /** A new run: counted from `fromSeq` on (its fork point, else 0). */
  created(runId: string, fromSeq: number): void;
  /** The run's status is terminal after seq `lastSeq`: add its uncounted outcomes. */
  ended(runId: string, lastSeq: number): void;
  /** The rows and the unfinished runs, or undefined when this store predates rollups. */
  read(): CostRollup | undefined;
}

/**
 * Creates the rollup tables (on a writable connection) and prepares the hooks. A store that
 * already had runs before the tables existed is marked incomplete: `read()` is undefined.
 */
export function sqliteRollup(
  db: Database.Database,
  readonlyMode: boolean,
  bodyOf: (runId: string, seq: number, body: string) => string,
): SqliteRollup {
  const has = (t: string): boolean =>
    db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").get(t) !==
    undefined;
  if (!readonlyMode && !has('cost_rollup')) {
    db.exec(SCHEMA);
    const empty = db.prepare('SELECT 1 FROM runs LIMIT 1').get() === undefined;
    if (empty)
      db.prepare("INSERT OR IGNORE INTO store_meta VALUES ('cost_rollup', 'complete')").run();
  }
  if (!has('cost_rollup')) {
    return { created: () => undefined, ended: () => undefined, read: () => undefined };
  }
  const q = {
    complete: db.prepare<[], { value: string }>(
      "SELECT value FROM store_meta WHERE key = 'cost_rollup'",
    ),
    created: db.prepare('INSERT OR IGNORE INTO cost_rolled (run_id, seq) VALUES (?, ?)'),
    /** Up to which seq the run is counted, and its pipeline (one look-up, at the run's end). */
    rolled: db.prepare<[string], { seq: number; pipeline: string | null }>(
      `SELECT c.seq, r.pipeline FROM cost_rolled c LEFT JOIN runs r ON r.run_id = c.run_id
       WHERE c.run_id = ?`,
    ),
    outcomes: db.prepare<
      [string, number, number],
      { seq: number; at: number; type: string; body: string }
    >(
      `SELECT seq, at, type, body FROM events WHERE run_id = ? AND seq > ? AND seq <= ?
       AND type IN ('MODEL_RESPONSE', 'MODEL_ERROR', 'AGENT_TURN') ORDER BY seq`,
    ),
    setRolled: db.prepare('UPDATE cost_rolled SET seq = ? WHERE run_id = ?'),
    upsert: db.prepare(
      `INSERT INTO cost_rollup VALUES (@day, @pipeline, @model, @calls, @inputTokens, @outputTokens,
       @cacheReadTokens, @cacheWriteTokens, @costUsd, @unconfirmedUsd, @unconfirmedCalls)
       ON CONFLICT (day, pipeline, model) DO UPDATE SET calls = calls + excluded.calls,
       input_tokens = input_tokens + excluded.input_tokens, output_tokens = output_tokens + excluded.output_tokens,
       cache_read_tokens = cache_read_tokens + excluded.cache_read_tokens,
       cache_write_tokens = cache_write_tokens + excluded.cache_write_tokens, cost_usd = cost_usd + excluded.cost_usd,
       unconfirmed_usd = unconfirmed_usd + excluded.unconfirmed_usd,
       unconfirmed_calls = unconfirmed_calls + excluded.unconfirmed_calls`,
    ),
    rows: db.prepare<[], Record<string, number | string>>('SELECT * FROM cost_rollup'),
    pending: db.prepare<[], { run_id: string; pipeline: string; seq: number; last_seq: number }>(
      `SELECT r.run_id, r.pipeline, c.seq, r.last_seq FROM runs r JOIN cost_rolled c ON c.run_id = r.run_id
       WHERE r.status IN (${UNFINISHED.map((s) => `'${s}'`).join(', ')}) AND c.seq < r.last_seq`,
    ),
  };
  /**
   * A run's model calls in (from, to] summed per (day, model); `checked`: throw on an outcome
   * whose figures are not numbers (the rows of ended runs trust the bodies the writer made).
   */
  const summed = (
    runId: string,
    pipeline: string,
    from: number,
    to: number,
    checked: boolean,
  ): Iterable<CostRollupRow> => {
    const rows = new Map<string, CostRollupRow>();
    for (const e of q.outcomes.all(runId, from, to)) {
      const ev = JSON.parse(bodyOf(runId, e.seq, e.body)) as { event: OutcomeFields };
      if (checked && !outcomeFieldsOk(ev.event))
        throw new Error(`run ${runId} seq ${e.seq}: not a model outcome`);
      const day = utcDay(e.at);
      const key = `${day}\n${ev.event.model}`;
      const row = rows.get(key) ?? emptyRollupRow(day, pipeline, ev.event.model);
      addOutcome(row, ev.event, e.type === 'MODEL_ERROR');
      rows.set(key, row);
    }
    return rows.values();
  };
  /**
   * The rows and the unfinished runs as of one moment (one read transaction): read apart, a run
   * another process ends in between would be in neither.
   */
  const readNow = db.transaction((): CostRollup => {
    const rows = q.rows.all().map((r): CostRollupRow => ({
      day: String(r.day),
      pipeline: String(r.pipeline),
      model: String(r.model),
      calls: Number(r.calls),
      inputTokens: Number(r.input_tokens),
      outputTokens: Number(r.output_tokens),
      cacheReadTokens: Number(r.cache_read_tokens),
      cacheWriteTokens: Number(r.cache_write_tokens),
      costUsd: Number(r.cost_usd),
      unconfirmedUsd: Number(r.unconfirmed_usd),
      unconfirmedCalls: Number(r.unconfirmed_calls),
    }));
    const pending = q.pending.all().map((p): PendingCost => {
      const out: PendingCost = { runId: p.run_id, pipeline: p.pipeline, fromSeq: p.seq };
      // A body that does not parse or lacks a figure leaves the run to the log's checked read
      // (which names what is wrong with it).
      try {
        out.rows = [...summed(p.run_id, p.pipeline, p.seq, p.last_seq, true)];
      } catch {
        // left to the read
      }
      return out;
    });
    return { rows, pending };
  });
  return {
    created(runId, fromSeq) {
      q.created.run(runId, fromSeq);
    },
    ended(runId, lastSeq) {
      const rolled = q.rolled.get(runId);
      if (rolled === undefined || rolled.seq >= lastSeq) return;
      for (const row of summed(runId, rolled.pipeline ?? '?', rolled.seq, lastSeq, false))
        q.upsert.run(row);
      q.setRolled.run(lastSeq, runId);
    },
    read() {
      if (q.complete.get()?.value !== 'complete') return undefined;
      return readNow();
    },
  };
}
