/**
 * Group commit for the SQLite store: writes requested in the same tick (appends of any number of
 * runs, and the small writes around them: leases, the effect ledger) are made in one IMMEDIATE
 * transaction — one commit, one WAL write, one fsync when synchronous=FULL — each in its own
 * savepoint, so a version conflict or a lost lease race fails that write only. Every caller's
 * promise settles after the transaction commits: nobody acts on a write that is not durable.
 */
import type Database from 'better-sqlite3';

interface Pending {
  op: () => unknown;
  resolve: (value: unknown) => void;
  reject: (e: unknown) => void;
}

/** Runs writes batched per tick; see the module comment. */
export interface GroupCommit {
  /**
   * Runs `op` (synchronous SQLite work) in the next batch, in its own savepoint; resolves with
   * its result once the batch has committed, rejects with what it threw (or what failed the batch).
   */
  run<T>(op: () => T): Promise<T>;
}

/**
 * A group commit over `db`. `afterCommit` runs once per committed batch (the store's check that
 * its file is still the one at its path); if it throws, every write of the batch rejects with it.
 */
export function groupCommit(db: Database.Database, afterCommit?: () => void): GroupCommit {
  let queue: Pending[] = [];
  let scheduled = false;
  const results: Array<{ ok: true; value: unknown } | { ok: false; error: unknown }> = [];
  // Nested in the batch's transaction, a transaction function is a savepoint.
  const savepoint = db.transaction((op: () => unknown) => op());
  const batch = db.transaction((items: Pending[]) => {
    results.length = 0;
    for (const it of items) {
      try {
        results.push({ ok: true, value: savepoint(it.op) });
      } catch (error) {
        // Some errors (a full disk, I/O) roll the whole transaction back: fail the batch with it.
        if (!db.inTransaction) throw error;
        results.push({ ok: false, error });
      }
    }
  });
  const flush = (): void => {
    scheduled = false;
    const items = queue;
    queue = [];
    try {
      batch.immediate(items);
      afterCommit?.();
    } catch (e) {
      // The transaction itself failed (disk full, locked past the timeout), or the file is no
      // longer the store's: every write in it.
      for (const it of items) it.reject(e);
      return;
    }
    items.forEach((it, i) => {
      const r = results[i];
      if (r?.ok === true) it.resolve(r.value);
      else it.reject(r?.error);
    });
  };
  return {
    run<T>(op: () => T): Promise<T> {
      return new Promise<T>((resolve, reject) => {
        queue.push({ op, resolve: resolve as (v: unknown) => void, reject });
        if (!scheduled) {
          scheduled = true;
          setImmediate(flush);
        }
      });
    },
  };
}
