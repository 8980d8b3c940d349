/**
 * Listing the SQLite run index a page at a time: newest first (`started_at`, then `run_id`,
 * both descending), with indexes in that order so a first page or a page after a cursor reads
 * only its own rows, whatever the size of the store.
 */
import type Database from 'better-sqlite3';
import { UsageError } from '../errors.js';
import type { RunFilter } from './types.js';

/** The indexes listing pages use (created with the schema; a no-op when present). */
export const LIST_INDEXES = `
CREATE INDEX IF NOT EXISTS runs_started ON runs (started_at, run_id);
CREATE INDEX IF NOT EXISTS runs_status_started ON runs (status, started_at, run_id);
CREATE INDEX IF NOT EXISTS runs_pipeline_started ON runs (pipeline, started_at, run_id);
`;

/** The refusal of a cursor that names no run (same words on every adapter). */
export function unknownCursor(after: string): UsageError {
  return new UsageError(
    `cannot list runs after '${after}': no such run; pass the last run id of the previous page`,
  );
}

/** Runs the page query of `filter`; rows as stored (the caller maps them). */
export function listRunRows<Row>(db: Database.Database, filter: RunFilter): Row[] {
  const where: string[] = [];
  const args: unknown[] = [];
  if (filter.status !== undefined) {
    const list = Array.isArray(filter.status) ? filter.status : [filter.status];
    where.push(`status IN (${list.map(() => '?').join(', ')})`);
    args.push(...list);
  }
  if (filter.pipeline !== undefined) {
    where.push('pipeline = ?');
    args.push(filter.pipeline);
  }
  if (filter.updatedBefore !== undefined) {
    where.push('updated_at < ?');
    args.push(filter.updatedBefore);
  }
  if (filter.after !== undefined) {
    const at = db
      .prepare<[string], { started_at: number }>('SELECT started_at FROM runs WHERE run_id = ?')
      .get(filter.after);
    if (at === undefined) throw unknownCursor(filter.after);
    where.push('(started_at, run_id) < (?, ?)');
    args.push(at.started_at, filter.after);
  }
  const sql = `SELECT * FROM runs ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY started_at DESC, run_id DESC LIMIT ?`;
  return db.prepare(sql).all(...args, filter.limit ?? -1) as Row[];
}
