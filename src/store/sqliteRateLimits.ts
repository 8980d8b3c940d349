/**
 * Shared rate limits in the SQLite store: one row per key holding its bucket state as JSON;
 * every change is one IMMEDIATE transaction (read, apply the rule, write), so any number of
 * connections and processes on one file pace by the same buckets.
 */
import type Database from 'better-sqlite3';
import { parseRateState, ratePort, type RateUpdate } from './rateLimits.js';
import type { RateState } from './rateRules.js';
import type { RateLimitStore } from './types.js';

/** The rate-limit table (created by {@link sqliteRateLimits} on a writable connection). */
export const RATE_LIMITS_SCHEMA = `
CREATE TABLE IF NOT EXISTS rate_limits (key TEXT PRIMARY KEY, state TEXT NOT NULL);
`;

/**
 * The rate-limit port over the store's database. A read-only connection to a file made before
 * rate limits has no table: it then knows no key, and any write fails as writes to it do.
 */
export function sqliteRateLimits(db: Database.Database): RateLimitStore {
  if (!db.readonly) db.exec(RATE_LIMITS_SCHEMA);
  const tables = db.prepare(
    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'rate_limits'",
  );
  let q: ReturnType<typeof prepare> | undefined;
  const stmts = (): ReturnType<typeof prepare> | null => {
    if (q === undefined && tables.get() !== undefined) q = prepare(db);
    return q ?? null;
  };
  const tx = db.transaction(
    (key: string, f: (s: RateState) => { state: RateState | null; result: unknown }) => {
      if (stmts() === null) db.exec(RATE_LIMITS_SCHEMA);
      const s = stmts()!;
      const { state, result } = f(parseRateState(s.get.get(key)?.state));
      if (state !== null) s.put.run(key, JSON.stringify(state));
      return result;
    },
  );
  const update: RateUpdate = async (key, f) =>
    tx.immediate(key, f) as ReturnType<typeof f>['result'];
  return ratePort(update, async (key) => {
    const row = stmts()?.get.get(key);
    return row === undefined ? undefined : parseRateState(row.state);
  });
}

function prepare(db: Database.Database) {
  return {
    get: db.prepare<[string], { state: string }>('SELECT state FROM rate_limits WHERE key = ?'),
    put: db.prepare(
      'INSERT INTO rate_limits (key, state) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET state = excluded.state',
    ),
  };
}
