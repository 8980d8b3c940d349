/**
 * The SQLite store is durable against power loss by default: `synchronous=FULL` (an fsync per
 * committed group), NORMAL only when asked for.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { openSqliteStore } from '../src/store/sqlite.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** The connection's `synchronous` level (1 NORMAL, 2 FULL) as the store set it up. */
async function levelOf(options: Parameters<typeof openSqliteStore>[1]): Promise<unknown> {
  const dir = mkdtempSync(join(tmpdir(), 'plumbline-sync-'));
  dirs.push(dir);
  let level: unknown;
  const store = openSqliteStore(join(dir, 's.db'), {
    ...options,
    connection: (db) => {
      level = db.pragma('synchronous', { simple: true });
    },
  });
  await store.close();
  return level;
}

describe('SQLite durability', () => {
  it('is synchronous=FULL by default', async () => {
    expect(await levelOf({})).toBe(2);
  });
  it('is NORMAL only when asked for', async () => {
    expect(await levelOf({ synchronous: 'NORMAL' })).toBe(1);
    expect(await levelOf({ synchronous: 'FULL' })).toBe(2);
  });
});
