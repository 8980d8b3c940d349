/**
 * Group commit on SQLite: appends of many runs made in one tick share one transaction, each
 * caller gets its own outcome (a version conflict fails that append only), and every append is
 * durable (readable by another connection) when its promise settles.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { isVersionConflict } from '../src/errors.js';
import { openSqliteStore } from '../src/store/sqlite.js';
import { groupCommit } from '../src/store/sqliteGroupCommit.js';
import { started, stepDone } from './helpers/envelopes.js';

const dir = mkdtempSync(join(tmpdir(), 'plumbline-gc-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('group commit', () => {
  it('batches a tick of appends into one commit; a conflict fails only its own append', async () => {
    const path = join(dir, 'a.db');
    const store = openSqliteStore(path);
    const other = openSqliteStore(path, { readonly: true });
    await Promise.all(
      Array.from({ length: 50 }, (_, i) => store.log.append(`r${i}`, [started()], 'no_stream')),
    );
    const results = await Promise.allSettled([
      ...Array.from({ length: 50 }, (_, i) => store.log.append(`r${i}`, [stepDone(2)], 1)),
      store.log.append('r0', [stepDone(2)], 1), // the second append at seq 2 of r0: a conflict
    ]);
    const ok = results.filter((r) => r.status === 'fulfilled');
    const bad = results.filter((r) => r.status === 'rejected');
    expect(ok).toHaveLength(50);
    expect(bad).toHaveLength(1);
    expect(isVersionConflict((bad[0] as PromiseRejectedResult).reason)).toBe(true);
    // Durable for another connection once the promises settled.
    for (let i = 0; i < 50; i++) expect((await other.log.getRun(`r${i}`))?.lastSeq).toBe(2);
    expect((await other.log.read('r0')).map((e) => e.seq)).toEqual([1, 2]);
    await other.close();
    await store.close();
  });

  it('one commit per tick, not per append (counted by a second connection: data_version)', async () => {
    const path = join(dir, 'b.db');
    const store = openSqliteStore(path, { connection: (db) => hooks.push(db) });
    const db = hooks[0] as { prepare(s: string): { get(): unknown } };
    const before = (db.prepare('PRAGMA data_version').get() as { data_version: number })
      .data_version;
    await Promise.all(
      Array.from({ length: 40 }, (_, i) => store.log.append(`t${i}`, [started()], 'no_stream')),
    );
    // data_version changes only for commits by OTHER connections: use a second one to count.
    const watcher = openSqliteStore(path, { readonly: true, connection: (d) => hooks.push(d) });
    const w = hooks[1] as { prepare(s: string): { get(): unknown } };
    const v0 = (w.prepare('PRAGMA data_version').get() as { data_version: number }).data_version;
    await Promise.all(
      Array.from({ length: 40 }, (_, i) => store.log.append(`t${i}`, [stepDone(2)], 1)),
    );
    const v1 = (w.prepare('PRAGMA data_version').get() as { data_version: number }).data_version;
    // 40 appends from one tick: one commit (the watcher sees the file change once).
    expect(v1 - v0).toBe(1);
    expect(before).toBeGreaterThan(0);
    await watcher.close();
    await store.close();
  });
});

describe('replayable writes sharing a savepoint', () => {
  it('a failed one fails alone; its neighbours commit; a write that is not replayable runs once', async () => {
    const db = new Database(':memory:');
    db.exec('CREATE TABLE t (k TEXT PRIMARY KEY)');
    const insert = db.prepare('INSERT INTO t (k) VALUES (?)');
    const gc = groupCommit(db);
    const calls = { a: 0, once: 0, d: 0 };
    insert.run('taken');
    const settled = await Promise.allSettled([
      gc.run(() => {
        calls.a += 1;
        return insert.run('a').changes;
      }, true),
      gc.run(() => insert.run('taken').changes, true), // a constraint error
      gc.run(() => {
        calls.once += 1;
        return insert.run('once').changes;
      }),
      gc.run(() => {
        calls.d += 1;
        return insert.run('d').changes;
      }, true),
      gc.run(() => insert.run('e').changes, true),
    ]);
    expect(settled.map((r) => r.status)).toEqual([
      'fulfilled',
      'rejected',
      'fulfilled',
      'fulfilled',
      'fulfilled',
    ]);
    // The first pair shared a savepoint: rolled back, then each alone (a twice, in all).
    expect(calls).toEqual({ a: 2, once: 1, d: 1 });
    const keys = db.prepare('SELECT k FROM t ORDER BY k').all() as Array<{ k: string }>;
    expect(keys.map((r) => r.k)).toEqual(['a', 'd', 'e', 'once', 'taken']);
    db.close();
  });
});

const hooks: unknown[] = [];
