/**
 * Group commit for the SQLite event log: appends requested in the same tick (by any number of
 * runs) are written in one IMMEDIATE transaction — one commit, one fsync when synchronous=FULL —
 * each in its own savepoint, so a version conflict fails that append only. Every caller's
 * promise settles after the transaction commits: nobody acts on an event that is not durable.
 */
import type Database from 'better-sqlite3';
import type { NewEnvelope } from '../machines/events.js';
import type { ExpectedVersion } from './types.js';

type AppendFn = (runId: string, events: NewEnvelope[], expected: ExpectedVersion) => number;

interface Pending {
  runId: string;
  events: NewEnvelope[];
  expected: ExpectedVersion;
  resolve: (seq: number) => void;
  reject: (e: unknown) => void;
}

/** Appends batched per tick through `append` (a transaction function: nested, it is a savepoint). */
export function groupCommit(
  db: Database.Database,
  append: AppendFn,
): (runId: string, events: NewEnvelope[], expected: ExpectedVersion) => Promise<number> {
  let queue: Pending[] = [];
  let scheduled = false;
  const results: Array<{ ok: true; seq: number } | { ok: false; error: unknown }> = [];
  const batch = db.transaction((items: Pending[]) => {
    results.length = 0;
    for (const it of items) {
      try {
        results.push({ ok: true, seq: append(it.runId, it.events, it.expected) });
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
    } catch (e) {
      // The transaction itself failed (disk full, locked past the timeout): every append in it.
      for (const it of items) it.reject(e);
      return;
    }
    items.forEach((it, i) => {
      const r = results[i];
      if (r?.ok === true) it.resolve(r.seq);
      else it.reject(r?.error);
    });
  };
  return (runId, events, expected) =>
    new Promise<number>((resolve, reject) => {
      queue.push({ runId, events, expected, resolve, reject });
      if (!scheduled) {
        scheduled = true;
        setImmediate(flush);
      }
    });
}
