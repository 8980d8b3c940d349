/**
 * Spending pools on one SQLite file shared by several connections and processes: the caps hold
 * across them (each reserve is one IMMEDIATE transaction).
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { openSqliteStore } from '../src/store/sqlite.js';
import { tsNode } from './helpers/cli.js';
import { reserveAtOnce } from './contract/pools.contract.js';

const dir = mkdtempSync(join(tmpdir(), 'plumbline-pools-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('sqlite pools across connections', () => {
  it('two connections to one file: 50 concurrent reserves of $0.10 against $1.00 → 10 ok', async () => {
    const path = join(dir, 'two.db');
    const a = openSqliteStore(path);
    const b = openSqliteStore(path);
    try {
      await a.pools.open('run-1/map', { budgetUsd: 1, maxIterations: null });
      const [fromA, fromB] = await Promise.all([
        reserveAtOnce(a.pools, 'run-1/map', 'a', 25, 0.1),
        reserveAtOnce(b.pools, 'run-1/map', 'b', 25, 0.1),
      ]);
      const ok = [
        ...fromA.flatMap((r, i) => (r.ok ? [`a-${i}`] : [])),
        ...fromB.flatMap((r, i) => (r.ok ? [`b-${i}`] : [])),
      ];
      expect(ok).toHaveLength(10);
      await Promise.all(ok.map((k, i) => (i % 2 ? a : b).pools.settle('run-1/map', k, 0.1)));
      expect(await b.pools.get('run-1/map')).toMatchObject({ spentUsd: 1, reservedUsd: 0 });
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('two processes reserving and settling at once never cross the budget or the call cap', async () => {
    const path = join(dir, 'procs.db');
    const store = openSqliteStore(path);
    try {
      await store.pools.open('run-2/map', { budgetUsd: 1, maxIterations: 8 });
      const children = ['p', 'q'].map((name) =>
        tsNode('test/helpers/poolReserver.ts', [path, 'run-2/map', dir, name, '40', '0.1']),
      );
      // Both have the store open before either starts, so their transactions overlap.
      const deadline = Date.now() + 60_000;
      while (!['p', 'q'].every((n) => existsSync(join(dir, `ready-${n}`)))) {
        if (Date.now() > deadline) throw new Error('the reserving processes never started');
        await new Promise((r) => setTimeout(r, 20));
      }
      writeFileSync(join(dir, 'go'), '');
      const results = await Promise.all(children);
      for (const r of results) expect(r.code, r.stderr).toBe(0);
      const got = results.flatMap((r) => JSON.parse(r.stdout) as string[]);
      // The call cap (8) binds before the budget (10 × $0.10): exactly 8 calls, all settled.
      expect(got).toHaveLength(8);
      expect(new Set(got).size).toBe(8);
      expect(await store.pools.get('run-2/map')).toEqual({
        budgetUsd: 1,
        maxIterations: 8,
        spentUsd: 0.8,
        reservedUsd: 0,
        iterations: 8,
      });
    } finally {
      await store.close();
    }
  }, 90_000);

  it('a read-only store on a file made before pools knows no pool, and open fails as a write', async () => {
    const path = join(dir, 'old.db');
    await openSqliteStore(path).close();
    const raw = new Database(path);
    raw.exec('DROP TABLE pools; DROP TABLE pool_calls');
    raw.close();
    const ro = openSqliteStore(path, { readonly: true });
    try {
      expect(await ro.pools.get('run-3/map')).toBeUndefined();
      expect(await ro.pools.reserve('run-3/map', 'k', 1)).toEqual({ ok: true });
      await ro.pools.settle('run-3/map', 'k', 1);
      await expect(
        ro.pools.open('run-3/map', { budgetUsd: 1, maxIterations: null }),
      ).rejects.toMatchObject({
        code: 'E_STORE_READ_ONLY',
      });
    } finally {
      await ro.close();
    }
  });
});
