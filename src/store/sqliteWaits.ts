/**
 * The SQLite store's waiting runs: kept signals (one per run and name until the run records it)
 * and the wake-up schedule, indexed by time so a sweep reads only the due runs.
 */
import type Database from 'better-sqlite3';
import type { SignalRecord, WaitStore, WaitingRun } from './types.js';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS signals (
  run_id TEXT NOT NULL, name TEXT NOT NULL, payload TEXT NOT NULL, by TEXT, at INTEGER NOT NULL,
  PRIMARY KEY (run_id, name));
CREATE TABLE IF NOT EXISTS waiting (
  run_id TEXT PRIMARY KEY, signal TEXT, wake_at INTEGER, since INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS waiting_wake ON waiting (wake_at) WHERE wake_at IS NOT NULL;
`;

interface WaitRow {
  run_id: string;
  signal: string | null;
  wake_at: number | null;
  since: number;
}

const toWaiting = (r: WaitRow): WaitingRun => ({
  runId: r.run_id,
  signal: r.signal,
  wakeAt: r.wake_at,
  since: r.since,
});

/** The wait tables of `db` (created unless `readonly`; a reader of an older file sees none). */
export function sqliteWaits(db: Database.Database, readonly: boolean): WaitStore {
  if (!readonly) db.exec(SCHEMA);
  const has = (): boolean =>
    db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'waiting'").get() !==
    undefined;
  let ready = !readonly || has();
  const ok = (): boolean => (ready ||= has());
  return {
    async putSignal(s: SignalRecord) {
      const r = db
        .prepare(
          'INSERT OR IGNORE INTO signals (run_id, name, payload, by, at) VALUES (?, ?, ?, ?, ?)',
        )
        .run(s.runId, s.name, JSON.stringify(s.payload ?? null), s.by, s.at);
      return r.changes === 1;
    },
    async getSignal(runId, name) {
      if (!ok()) return undefined;
      const r = db
        .prepare('SELECT payload, by, at FROM signals WHERE run_id = ? AND name = ?')
        .get(runId, name) as { payload: string; by: string | null; at: number } | undefined;
      if (r === undefined) return undefined;
      return { runId, name, payload: JSON.parse(r.payload) as unknown, by: r.by, at: r.at };
    },
    async deleteSignal(runId, name) {
      db.prepare('DELETE FROM signals WHERE run_id = ? AND name = ?').run(runId, name);
    },
    async setWaiting(w) {
      db.prepare(
        'INSERT INTO waiting (run_id, signal, wake_at, since) VALUES (?, ?, ?, ?) ' +
          'ON CONFLICT (run_id) DO UPDATE SET signal = excluded.signal, wake_at = excluded.wake_at, since = excluded.since',
      ).run(w.runId, w.signal, w.wakeAt, w.since);
    },
    async clearWaiting(runId) {
      db.prepare('DELETE FROM waiting WHERE run_id = ?').run(runId);
    },
    async due(now, limit) {
      if (!ok()) return [];
      return (
        db
          .prepare(
            'SELECT * FROM waiting WHERE wake_at IS NOT NULL AND wake_at <= ? ORDER BY wake_at LIMIT ?',
          )
          .all(now, limit) as WaitRow[]
      ).map(toWaiting);
    },
    async wakeTimes(runIds) {
      const out = new Map<string, number | null>();
      if (!ok()) return out;
      // In chunks under SQLite's bound-parameter limit.
      for (let i = 0; i < runIds.length; i += 500) {
        const ids = runIds.slice(i, i + 500);
        const rows = db
          .prepare(
            `SELECT run_id, wake_at FROM waiting WHERE run_id IN (${ids.map(() => '?').join(',')})`,
          )
          .all(...ids) as Array<{ run_id: string; wake_at: number | null }>;
        for (const r of rows) out.set(r.run_id, r.wake_at);
      }
      return out;
    },
    async waiting(limit) {
      if (!ok()) return [];
      return (
        db.prepare('SELECT * FROM waiting ORDER BY since LIMIT ?').all(limit) as WaitRow[]
      ).map(toWaiting);
    },
  };
}
