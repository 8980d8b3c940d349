import Database from 'better-sqlite3';
const counts = new Map<string, number>();
const proto = (Database.prototype as any);
const origPrepare = proto.prepare;
proto.prepare = function (sql: string) {
  const st = origPrepare.call(this, sql);
  for (const m of ['run', 'get', 'all', 'iterate']) {
    const f = st[m];
    if (typeof f !== 'function') continue;
    st[m] = function (...a: unknown[]) { const k = `${m} ${sql.replace(/\s+/g, ' ').slice(0, 90)}`; counts.set(k, (counts.get(k) ?? 0) + 1); return f.apply(this, a); };
  }
  return st;
};
const origExec = proto.exec;
proto.exec = function (sql: string) { const k = `exec ${sql.replace(/\s+/g, ' ').slice(0, 60)}`; counts.set(k, (counts.get(k) ?? 0) + 1); return origExec.call(this, sql); };
const { mkdtempSync } = await import('node:fs');
const { join } = await import('node:path');
const { Runtime, openSqliteStore, prepare, createLogger } = await import('./src/index.js');
const { Breakers } = await import('./src/runtime/breakers.js');
const { startFakeProcess } = await import('./bench/lib/fake.js');
const { threeStep, modelClient, ticket, pool } = await import('./bench/workload.js');
const dir = mkdtempSync('/tmp/cnt-');
const fake = await startFakeProcess('valid');
const store = openSqliteStore(join(dir, 'db'), { synchronous: 'FULL' });
const rt = new Runtime({ store, model: modelClient(fake.url), breakers: new Breakers(store.control, {}) });
const p3 = prepare(threeStep(join(dir, 'sink')));
await pool(200, 50, (i) => rt.start(p3, { input: ticket(i), runId: `w-${i}` }));
counts.clear();
const N = 1000;
await pool(N, 100, (i) => rt.start(p3, { input: ticket(i), runId: `m-${i}` }));
let tot = 0;
for (const [k, v] of [...counts].sort((a, b) => b[1] - a[1])) { tot += v; console.log((v / N).toFixed(2).padStart(6), k); }
console.log('total per run', (tot / N).toFixed(2));
await store.close(); await fake.close(); process.exit(0);
