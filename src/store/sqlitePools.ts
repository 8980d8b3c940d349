/**
 * Spending pools in the SQLite store: one row per pool and one per reserved call, each change
 * one IMMEDIATE transaction (read, check the caps, write), so however many connections and
 * processes reserve against one file at once, their reservations together never cross a cap.
 */
import type Database from 'better-sqlite3';
import { roundUsd } from '../machines/context.js';
import { checkPoolAmount, checkPoolCaps, poolRefusal } from './poolRules.js';
import type { PoolCaps, PoolReservation, PoolState, PoolStore } from './types.js';

/** The pool tables (created by {@link sqlitePools} on a writable connection). */
export const POOLS_SCHEMA = `
CREATE TABLE IF NOT EXISTS pools (
  pool TEXT PRIMARY KEY, budget_usd REAL, max_iterations INTEGER, spent_usd REAL NOT NULL,
  reserved_usd REAL NOT NULL, iterations INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS pool_calls (
  pool TEXT, key TEXT, usd REAL NOT NULL, settled INTEGER NOT NULL, PRIMARY KEY (pool, key));
`;

interface PoolRow {
  budget_usd: number | null;
  max_iterations: number | null;
  spent_usd: number;
  reserved_usd: number;
  iterations: number;
}

const stateOf = (r: PoolRow): PoolState => ({
  budgetUsd: r.budget_usd,
  maxIterations: r.max_iterations,
  spentUsd: r.spent_usd,
  reservedUsd: r.reserved_usd,
  iterations: r.iterations,
});

/**
 * The pool port over the store's database. A read-only connection to a file made before pools
 * has no pool tables: it then knows no pool (`get` is undefined, `reserve` ok, `settle` a no-op),
 * and `open` fails as any write to a read-only file does.
 */
export function sqlitePools(db: Database.Database): PoolStore {
  if (!db.readonly) db.exec(POOLS_SCHEMA);
  const tables = db.prepare(
    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'pool_calls'",
  );
  let q: ReturnType<typeof prepare> | undefined;
  /** The statements, prepared on first use; null while the tables do not exist (read-only). */
  const stmts = (): ReturnType<typeof prepare> | null => {
    if (q === undefined && tables.get() !== undefined) q = prepare(db);
    return q ?? null;
  };

  const openTx = db.transaction((pool: string, caps: PoolCaps) => {
    // Only a read-only connection lacks the tables; creating them fails as its writes do.
    if (stmts() === null) db.exec(POOLS_SCHEMA);
    const s = stmts()!;
    if (s.update(pool, caps).changes === 0) s.insert(pool, caps);
  });

  const reserveTx = db.transaction((pool: string, key: string, usd: number): PoolReservation => {
    const s = stmts();
    const row = s?.get.get(pool);
    if (s == null || row === undefined) return { ok: true };
    if (s.getCall.get(pool, key) !== undefined) return { ok: true };
    const state = stateOf(row);
    const refused = poolRefusal(state, usd);
    if (refused !== null) return { ok: false, refused, state };
    s.insertCall.run(pool, key, usd);
    s.setHeld.run(roundUsd(row.reserved_usd + usd), row.iterations + 1, pool);
    return { ok: true };
  });

  const settleTx = db.transaction((pool: string, key: string, usd: number) => {
    const s = stmts();
    const call = s?.getCall.get(pool, key);
    const row = s?.get.get(pool);
    if (s == null || call === undefined || call.settled === 1 || row === undefined) return;
    s.settleCall.run(pool, key);
    s.setSpent.run(
      roundUsd(row.spent_usd + usd),
      Math.max(0, roundUsd(row.reserved_usd - call.usd)),
      pool,
    );
  });

  return {
    async open(pool, caps) {
      openTx.immediate(pool, checkPoolCaps(caps));
    },
    async reserve(pool, key, usd) {
      return reserveTx.immediate(pool, key, roundUsd(checkPoolAmount(usd, 'reserve')));
    },
    async settle(pool, key, usd) {
      settleTx.immediate(pool, key, roundUsd(checkPoolAmount(usd, 'settle')));
    },
    async get(pool) {
      const row = stmts()?.get.get(pool);
      return row === undefined ? undefined : stateOf(row);
    },
  };
}

/** The pool statements (the tables must exist). */
function prepare(db: Database.Database) {
  const insert = db.prepare(
    `INSERT INTO pools (pool, budget_usd, max_iterations, spent_usd, reserved_usd, iterations)
     VALUES (?, ?, ?, 0, 0, 0)`,
  );
  const update = db.prepare('UPDATE pools SET budget_usd = ?, max_iterations = ? WHERE pool = ?');
  return {
    get: db.prepare<[string], PoolRow>('SELECT * FROM pools WHERE pool = ?'),
    getCall: db.prepare<[string, string], { usd: number; settled: number }>(
      'SELECT usd, settled FROM pool_calls WHERE pool = ? AND key = ?',
    ),
    insert: (pool: string, c: PoolCaps) => insert.run(pool, c.budgetUsd, c.maxIterations),
    update: (pool: string, c: PoolCaps) => update.run(c.budgetUsd, c.maxIterations, pool),
    insertCall: db.prepare('INSERT INTO pool_calls (pool, key, usd, settled) VALUES (?, ?, ?, 0)'),
    settleCall: db.prepare('UPDATE pool_calls SET settled = 1 WHERE pool = ? AND key = ?'),
    setHeld: db.prepare('UPDATE pools SET reserved_usd = ?, iterations = ? WHERE pool = ?'),
    setSpent: db.prepare('UPDATE pools SET spent_usd = ?, reserved_usd = ? WHERE pool = ?'),
  };
}
