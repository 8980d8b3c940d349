/**
 * Run leases in the SQLite store: one row per run, taken and renewed in IMMEDIATE transactions
 * so two processes never both hold a run. `rev` grows with every write (the record a waiting
 * process watches), `token` with every acquisition (the fencing token), and `renewed_at` is
 * SQLite's own clock (for listing, never for deciding a take-over).
 */
import type Database from 'better-sqlite3';
import { LeaseObserver, ownerIsDead } from './leaseRules.js';
import type { Lease, LeaseAcquired, LeaseHolder, LeaseStore } from './types.js';

export const LEASES_SCHEMA = `
CREATE TABLE IF NOT EXISTS leases (
  run_id TEXT PRIMARY KEY, owner TEXT NOT NULL, token INTEGER NOT NULL, rev INTEGER NOT NULL,
  ttl_ms INTEGER NOT NULL, renewed_at INTEGER NOT NULL, released INTEGER NOT NULL DEFAULT 0);
`;

const NOW_MS = `CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)`;

interface Row {
  run_id: string;
  owner: string;
  token: number;
  rev: number;
  ttl_ms: number;
  renewed_at: number;
  released: number;
}

const holderOf = (r: Row): LeaseHolder => ({
  owner: r.owner,
  token: r.token,
  renewedAt: r.renewed_at,
  ttlMs: r.ttl_ms,
  revision: r.rev,
});

/**
 * Runs a synchronous write in a write transaction (the store's group commit), when it commits;
 * `replayable`: the write has no effect outside the database (see `sqliteGroupCommit.ts`).
 */
export type WriteRunner = <T>(op: () => T, replayable?: boolean) => Promise<T>;

/**
 * The lease port over the store's database (its schema must include {@link LEASES_SCHEMA}).
 * Its writes go through `write` (by default each in its own IMMEDIATE transaction).
 */
export function sqliteLeases(
  db: Database.Database,
  observer = new LeaseObserver(),
  write?: WriteRunner,
): LeaseStore {
  db.exec(LEASES_SCHEMA);
  const q = {
    get: db.prepare<[string], Row>('SELECT * FROM leases WHERE run_id = ?'),
    insert: db.prepare(
      `INSERT INTO leases (run_id, owner, token, rev, ttl_ms, renewed_at, released)
       VALUES (?, ?, 1, 1, ?, ${NOW_MS}, 0)`,
    ),
    take: db.prepare(
      `UPDATE leases SET owner = ?, token = token + 1, rev = rev + 1, ttl_ms = ?, renewed_at = ${NOW_MS},
       released = 0 WHERE run_id = ? AND rev = ?`,
    ),
    renew: db.prepare(
      `UPDATE leases SET rev = rev + 1, renewed_at = ${NOW_MS}
       WHERE run_id = ? AND owner = ? AND token = ? AND released = 0`,
    ),
    release: db.prepare(
      `UPDATE leases SET rev = rev + 1, released = 1, renewed_at = ${NOW_MS}
       WHERE run_id = ? AND owner = ? AND token = ? AND released = 0`,
    ),
  };

  const immediateTx = db.transaction(<T>(op: () => T): T => op());
  const run: WriteRunner =
    write ?? (<T>(op: () => T) => Promise.resolve().then(() => immediateTx.immediate(op) as T));
  const acquireRows = (runId: string, owner: string, ttlMs: number): LeaseAcquired => {
    const row = q.get.get(runId);
    if (row === undefined) {
      q.insert.run(runId, owner, ttlMs);
      return { ok: true as const, lease: { runId, owner, token: 1, ttlMs, revision: 1 } };
    }
    const left =
      row.released === 1 || ownerIsDead(row.owner)
        ? 0
        : observer.remaining(runId, row.rev, row.ttl_ms);
    if (left > 0) return { ok: false as const, holder: holderOf(row), retryInMs: left };
    q.take.run(owner, ttlMs, runId, row.rev);
    observer.forget(runId);
    return {
      ok: true as const,
      lease: { runId, owner, token: row.token + 1, ttlMs, revision: row.rev + 1 },
    };
  };

  return {
    acquire(runId, owner, ttlMs): Promise<LeaseAcquired> {
      return run(() => acquireRows(runId, owner, ttlMs));
    },
    async renew(lease: Lease) {
      const ok = await run(
        () => q.renew.run(lease.runId, lease.owner, lease.token).changes === 1,
        true,
      );
      if (ok) lease.revision += 1;
      return ok;
    },
    async release(lease: Lease) {
      await run(() => q.release.run(lease.runId, lease.owner, lease.token), true);
    },
    async holders(runIds) {
      const out = new Map<string, LeaseHolder>();
      for (let i = 0; i < runIds.length; i += 500) {
        const chunk = runIds.slice(i, i + 500);
        const rows = db
          .prepare(
            `SELECT * FROM leases WHERE released = 0 AND run_id IN (${chunk.map(() => '?').join(',')})`,
          )
          .all(...chunk) as Row[];
        for (const r of rows) out.set(r.run_id, holderOf(r));
      }
      return out;
    },
  };
}
