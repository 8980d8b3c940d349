/**
 * Group commit for the SQLite store: writes requested in the same tick (appends of any number of
 * runs, and the small writes around them: leases, the effect ledger) are made in one IMMEDIATE
 * transaction — one commit, one WAL write, one fsync when synchronous=FULL — each in its own
 * savepoint, so a version conflict or a lost lease race fails that write only. Every caller's
 * promise settles after the transaction commits: nobody acts on a write that is not durable.
 *
 * Writes that may run again with the same outcome (`replayable`: their only effects are in the
 * database, such as an append or a lease renewal) share one savepoint per run of them in the
 * batch instead of one each; if one of them throws, that savepoint is rolled back and its writes
 * are made again, each in its own savepoint, as before. A savepoint each cost ≈ 3–9 µs of CPU
 * per write in the benchmark (two statements, SAVEPOINT and RELEASE).
 */
import type Database from 'better-sqlite3';

interface Pending {
  op: () => unknown;
  replayable: boolean;
  resolve: (value: unknown) => void;
  reject: (e: unknown) => void;
}

type Result = { ok: true; value: unknown } | { ok: false; error: unknown };

/** Runs writes batched per tick; see the module comment. */
export interface GroupCommit {
  /**
   * Runs `op` (synchronous SQLite work) in the next batch, in its own savepoint; resolves with
   * its result once the batch has committed, rejects with what it threw (or what failed the batch).
   * `replayable`: `op` has no effect outside the database (it may be run again after a rollback,
   * with the same outcome), so it may share a savepoint with its neighbours.
   */
  run<T>(op: () => T, replayable?: boolean): Promise<T>;
}

/**
 * A group commit over `db`. `afterCommit` runs once per committed batch (the store's check that
 * its file is still the one at its path); if it throws, every write of the batch rejects with it.
 */
export function groupCommit(db: Database.Database, afterCommit?: () => void): GroupCommit {
  let queue: Pending[] = [];
  let scheduled = false;
  const results: Result[] = [];
  // Nested in the batch's transaction, a transaction function is a savepoint.
  const savepoint = db.transaction((op: () => unknown) => op());
  /** One write in its own savepoint. */
  const alone = (op: () => unknown): Result => {
    try {
      return { ok: true, value: savepoint(op) };
    } catch (error) {
      // Some errors (a full disk, I/O) roll the whole transaction back: fail the batch with it.
      if (!db.inTransaction) throw error;
      return { ok: false, error };
    }
  };
  /** Items `from` to `to` (exclusive), all replayable, in one savepoint. */
  const together = db.transaction((items: Pending[], from: number, to: number) => {
    for (let k = from; k < to; k++) results.push({ ok: true, value: (items[k] as Pending).op() });
  });
  const batch = db.transaction((items: Pending[]) => {
    results.length = 0;
    let i = 0;
    while (i < items.length) {
      let j = i + 1;
      if ((items[i] as Pending).replayable)
        while (j < items.length && (items[j] as Pending).replayable) j += 1;
      if (j - i === 1) {
        results.push(alone((items[i] as Pending).op));
      } else {
        const start = results.length;
        try {
          together(items, i, j);
        } catch (error) {
          if (!db.inTransaction) throw error;
          // One of them failed and the savepoint rolled them all back: each again, alone.
          results.length = start;
          for (let k = i; k < j; k++) results.push(alone((items[k] as Pending).op));
        }
      }
      i = j;
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
    run<T>(op: () => T, replayable = false): Promise<T> {
      return new Promise<T>((resolve, reject) => {
        queue.push({ op, replayable, resolve: resolve as (v: unknown) => void, reject });
        if (!scheduled) {
          scheduled = true;
          setImmediate(flush);
        }
      });
    },
  };
}
