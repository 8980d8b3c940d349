/**
 * A child process for the cross-process pool test: opens the SQLite store at argv[2], says it
 * is ready (creates `<dir>/ready-<name>`), waits for `<dir>/go`, then reserves `n` calls of
 * `usd` in pool argv[3] (keys `<name>-<i>`), settles each reserved one at `usd`, and prints the
 * keys it got as JSON.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openSqliteStore } from '../../src/store/sqlite.js';

const [path, pool, dir, name, n, usd] = process.argv.slice(2) as [
  string,
  string,
  string,
  string,
  string,
  string,
];
const store = openSqliteStore(path);
const pools = store.pools;
writeFileSync(join(dir, `ready-${name}`), '');
while (!existsSync(join(dir, 'go'))) await new Promise((r) => setTimeout(r, 2));
const got: string[] = [];
for (let i = 0; i < Number(n); i++) {
  const key = `${name}-${i}`;
  const r = await pools.reserve(pool, key, Number(usd));
  if (r.ok) {
    got.push(key);
    // Yield so the other process's transactions interleave with ours.
    await new Promise((res) => setImmediate(res));
    await pools.settle(pool, key, Number(usd));
  }
}
process.stdout.write(`${JSON.stringify(got)}\n`);
await store.close();
