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

/**
 * Adds the parent columns (a child run's parent run id, step and part as JSON) to a store made
 * before child runs, filling them from each run's `run.started`, and indexes them: listings
 * show top-level runs (a partial index) and find a run's children without a scan.
 */
export function ensureParentColumns(db: Database.Database): void {
  const cols = db.prepare<[], { name: string }>('PRAGMA table_info(runs)').all();
  if (!cols.some((c) => c.name === 'parent')) {
    db.transaction(() => {
      db.exec(`ALTER TABLE runs ADD COLUMN parent TEXT;
        ALTER TABLE runs ADD COLUMN parent_step TEXT;
        ALTER TABLE runs ADD COLUMN parent_part TEXT;`);
      // Large run.started bodies moved to blob files are not read here: those stay top-level.
      db.exec(`UPDATE runs SET parent = json_extract(e.body, '$.event.parent.runId'),
          parent_step = json_extract(e.body, '$.event.parent.step'),
          parent_part = json_quote(json_extract(e.body, '$.event.parent.part'))
        FROM events e WHERE e.run_id = runs.run_id AND e.seq = 1 AND e.body LIKE '%"parent":{%'
          AND json_valid(e.body) AND json_extract(e.body, '$.event.parent.runId') IS NOT NULL`);
    })();
  }
  db.exec(`CREATE INDEX IF NOT EXISTS runs_parent ON runs (parent, started_at, run_id);
    CREATE INDEX IF NOT EXISTS runs_top_started ON runs (started_at, run_id) WHERE parent IS NULL;`);
}

const withParent = new WeakMap<Database.Database, boolean>();

/** True when the runs table has the parent columns (asked once per connection). */
export function hasParentColumn(db: Database.Database): boolean {
  let has = withParent.get(db);
  if (has === undefined) {
    has = db
      .prepare<[], { name: string }>('PRAGMA table_info(runs)')
      .all()
      .some((c) => c.name === 'parent');
    withParent.set(db, has);
  }
  return has;
}

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
  // A read-only connection to a store made before child runs: no run has a parent.
  const parents = hasParentColumn(db);
  if (filter.parent !== undefined && filter.parent !== null && !parents) return [];
  if (filter.parent === null && parents) where.push('parent IS NULL');
  else if (filter.parent !== undefined && filter.parent !== null) {
    where.push('parent = ?');
    args.push(filter.parent);
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
