/**
 * `cost` from the SQLite rollups while another process ends runs: the rows of ended runs and the
 * unfinished runs' calls are read as of one moment. Read apart, a run that ends between the two
 * reads is in neither (its calls left the unfinished runs, its row was read before it came), and
 * the report dips below what it said a moment before. The writer is a child running the built
 * package, as a worker would.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { openSqliteStore } from '../src/store/sqlite.js';
import { ROOT } from './helpers/cli.js';
import { outcome, started, stepDone } from './helpers/envelopes.js';
import { readWhile, totalUnits as total, UNIT } from './helpers/rollupWatch.js';

const BUNDLE = pathToFileURL(join(ROOT, 'dist', 'bundle', 'index.js')).href;
const DAY = 86_400_000;
const T0 = Date.UTC(2026, 0, 1);
const RUNS = 1_500;

const dir = mkdtempSync(join(tmpdir(), 'plumbline-rollrace-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('sqlite cost rollups read while another process ends runs', { timeout: 180_000 }, () => {
  it('never count less than they did a moment before', async () => {
    const db = join(dir, 'runs.db');
    const reader = openSqliteStore(db);
    // Run i: its start and call in one append, its end in a second. A day each, so the rollup
    // has many rows and reading them takes a while.
    const runs = Array.from({ length: RUNS }, (_, i) => {
      const at = T0 + i * DAY;
      return {
        id: `r${i}`,
        open: [started('p', at), outcome(at + 1, (i + 1) * UNIT, 'claude-haiku-4-5')],
        end: [stepDone(1, 'completed', 0, at + 2)],
      };
    });
    const plan = join(dir, 'plan.json');
    writeFileSync(plan, JSON.stringify(runs));
    const script = `
      import { readFileSync } from 'node:fs';
      const { openSqliteStore } = await import(${JSON.stringify(BUNDLE)});
      const store = openSqliteStore(${JSON.stringify(db)});
      const runs = JSON.parse(readFileSync(${JSON.stringify(plan)}, 'utf8'));
      // Eight runs at a time, each opened then ended: ends keep committing while runs are open.
      for (let i = 0; i < runs.length; i += 8) {
        const batch = runs.slice(i, i + 8);
        await Promise.all(batch.map(async (r) => {
          await store.log.append(r.id, r.open, 'no_stream');
          await store.log.append(r.id, r.end, 2);
        }));
      }
      await store.close();`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    let done = false;
    void exited.then(() => (done = true));

    const { reads, dips } = await readWhile(reader.log, () => done);
    expect(await exited, stderr).toBe(0);
    const end = await reader.log.costRollup?.();
    await reader.close();
    // Every call counted once in the end, and no read in between counted less than one before.
    expect(end === undefined ? -1 : total(end)).toBe((RUNS * (RUNS + 1)) / 2);
    expect(end?.pending).toEqual([]);
    expect(reads).toBeGreaterThan(10);
    expect(dips).toEqual([]);
  });
});
