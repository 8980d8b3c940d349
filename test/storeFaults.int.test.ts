/**
 * A store file that cannot be used — disk full, read-only, deleted or replaced under the process,
 * in a directory that does not exist — is a StoreUnavailableError naming the path and the fix,
 * never "unexpected SqliteError", and `run` never says "completed" for a run it did not record.
 */
import { existsSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { openSqliteBus } from '../src/bus/sqlite.js';
import { isStoreUnavailable, StoreUnavailableError } from '../src/errors.js';
import { openSqliteStore } from '../src/store/sqlite.js';
import { plumbline } from './helpers/cli.js';
import { started, stepDone } from './helpers/envelopes.js';

const dir = mkdtempSync(join(tmpdir(), 'plumbline-faults-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const failure = async (p: Promise<unknown>): Promise<StoreUnavailableError> => {
  const e = await p.then(
    () => undefined,
    (x: unknown) => x,
  );
  if (!isStoreUnavailable(e)) throw new Error(`expected a StoreUnavailableError, got ${String(e)}`);
  return e;
};

describe('store faults', () => {
  it('a full disk is E_STORE_FULL naming the file, and writes work again once space is freed', async () => {
    const path = join(dir, 'full', 'plumbline.db');
    let conn: Database.Database | undefined;
    const store = openSqliteStore(path, { connection: (db) => void (conn = db) });
    await store.log.append('r1', [started()], 'no_stream');
    const db = conn as Database.Database;
    db.pragma(`max_page_count = ${db.pragma('page_count', { simple: true }) as number}`);
    const big = Array.from({ length: 50 }, (_, i) => ({ ...stepDone(i + 1), at: 5_000 + i }));
    for (const e of big) (e.event as { output: unknown }).output = { pad: 'x'.repeat(4000) };
    const e = await failure(store.log.append('r1', big, 1));
    expect(e.code).toBe('E_STORE_FULL');
    expect(e.path).toBe(path);
    expect(e.message).toContain(`free space on the disk holding ${path}`);
    expect(e.message).toContain('SQLITE_FULL');
    // Nothing half-written, and the log takes the same append once there is room.
    expect(await store.log.read('r1')).toHaveLength(1);
    db.pragma('max_page_count = 1073741823');
    expect(await store.log.append('r1', big, 1)).toBe(51);
    await store.close();
  });

  it('a read-only store file is E_STORE_READ_ONLY naming the file and the fix', async () => {
    const path = join(dir, 'ro.db');
    const rw = openSqliteStore(path);
    await rw.log.append('r1', [started()], 'no_stream');
    await rw.close();
    const ro = openSqliteStore(path, { readonly: true });
    expect(await ro.log.getRun('r1')).toMatchObject({ runId: 'r1' });
    const e = await failure(ro.log.append('r1', [stepDone(1)], 1));
    expect(e.code).toBe('E_STORE_READ_ONLY');
    expect(e.message).toContain(
      `the store file ${path} is read-only: fix its permissions or pass --store`,
    );
    await failure(ro.control.setKill({ runId: 'r1', reason: 'x', at: 1 }));
    await ro.close();
  });

  it.each(['deleted', 'replaced'] as const)(
    'a store file %s under the process is E_STORE_GONE on the next write',
    async (how) => {
      const path = join(dir, `gone-${how}.db`);
      const store = openSqliteStore(path);
      const bus = openSqliteBus(path);
      await store.log.append('r1', [started()], 'no_stream');
      if (how === 'deleted') for (const f of [path, `${path}-wal`, `${path}-shm`]) rmSync(f);
      else {
        writeFileSync(`${path}.other`, '');
        renameSync(`${path}.other`, path);
      }
      const e = await failure(store.log.append('r1', [stepDone(1)], 1));
      expect(e.code).toBe('E_STORE_GONE');
      expect(e.message).toContain(
        `the store file ${path} was deleted or replaced while plumbline was running: restore it or restart`,
      );
      await failure(store.ledger.claim('r1', 's', 'k', 1));
      await failure(bus.publishStart({ runId: 'r2', pipeline: 'p', input: {} }));
      // Reads of what was open keep working (the viewer can still show it).
      expect(await store.log.getRun('r1')).toMatchObject({ runId: 'r1' });
      await bus.close();
      await store.close();
    },
  );

  it.each(['deleted', 'replaced'] as const)(
    '`run` whose store is %s mid-run fails loudly instead of printing completed',
    async (mode) => {
      const path = join(dir, `cli-${mode}`, 'plumbline.db');
      const r = await plumbline(
        ['run', 'test/fixtures/pipelines/vanish.ts', '--store', path, '--input', '{}'],
        { VANISH_STORE: path, VANISH_MODE: mode === 'replaced' ? 'replace' : 'delete' },
      );
      expect(r.stdout).not.toMatch(/completed/);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toContain(
        `plumbline: the store file ${path} was deleted or replaced while plumbline was running: restore it or restart`,
      );
      expect(r.stderr).not.toMatch(/unexpected/);
    },
  );

  it('`start` and `dlq` with a store in a missing directory create it, as `run` does', async () => {
    const path = join(dir, 'not', 'yet', 'there.db');
    const start = await plumbline(['start', 'somepipeline', '--run-id', 'm-1', '--store', path]);
    expect(start.stderr).not.toMatch(/unexpected/);
    expect(start.code, start.stderr).toBe(0);
    expect(start.stdout).toMatch(/queued run m-1/);
    expect(existsSync(path)).toBe(true);
    const other = join(dir, 'also', 'missing.db');
    const dlq = await plumbline(['dlq', '--store', other]);
    expect(dlq.code, dlq.stderr).toBe(0);
    expect(dlq.stdout).toMatch(/no dead letters/);
  });

  it('a store path that cannot be a file is E_STORE_CANNOT_OPEN naming it, for the bus too', async () => {
    const blocker = join(dir, 'blocker');
    writeFileSync(blocker, 'a file where a directory should be');
    const path = join(blocker, 'x.db');
    expect(() => openSqliteStore(path)).toThrow(StoreUnavailableError);
    expect(() => openSqliteBus(path)).toThrow(/cannot open the store file .*blocker\/x\.db/);
    const r = await plumbline(['dlq', '--store', path]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`cannot open the store file ${path}`);
    expect(r.stderr).not.toMatch(/unexpected/);
  });
});
