/**
 * Scale of the store (issue 14): `runs` pages with --limit/--after (and says how to get the next
 * page), and `cost` from the rollups kept as runs end gives the numbers a fold of every log
 * gives: ended runs, an unfinished run's calls, a fork's copied calls counted once, a lost call.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import Database from 'better-sqlite3';
import { costReport, isUnconfirmed, unconfirmedByRun } from '../src/cli/cost.js';
import { openSqliteStore } from '../src/store/sqlite.js';
import type { Store } from '../src/store/types.js';
import { ndjson, plumbline } from './helpers/cli.js';
import { outcome, started, stepDone } from './helpers/envelopes.js';

const DAY = 86_400_000;
const T0 = Date.UTC(2026, 10, 1, 23, 0, 0);

describe('store scale: paging and cost rollups', { timeout: 120_000 }, () => {
  let dir: string;
  let db: string;
  let store: Store;
  const ids: string[] = [];
  let truth = 0;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'plumbline-paging-'));
    db = join(dir, 'runs.db');
    store = openSqliteStore(db);
    // 12 runs over two UTC days, two pipelines and two models; every fourth left unfinished.
    for (let i = 0; i < 12; i++) {
      const id = `run-${String(i).padStart(2, '0')}`;
      ids.push(id);
      const at = T0 + i * 20 * 60_000;
      const calls = [
        outcome(at + 1, 0.001 * (i + 1), i % 2 ? 'claude-haiku-4-5' : 'claude-sonnet-4-6'),
        outcome(at + 2, 0.0005, 'claude-haiku-4-5', i === 5),
      ];
      truth += 0.001 * (i + 1) + 0.0005;
      const end = i % 4 === 3 ? [] : [stepDone(1, 'completed', 0, at + 3)];
      await store.log.append(id, [started(i < 6 ? 'p' : 'q', at), ...calls, ...end], 'no_stream');
    }
    // A fork of run-00 after its first call: that copied call counts once (to run-00).
    const fork = started('p', T0 + DAY);
    (fork.event as { forkedFrom: unknown }).forkedFrom = { runId: 'run-00', seq: 2 };
    await store.log.append(
      'fork',
      [
        fork,
        outcome(T0, 0.001, 'claude-sonnet-4-6'),
        outcome(T0 + DAY + 1, 0.25, 'claude-haiku-4-5'),
      ],
      'no_stream',
    );
    await store.log.append('fork', [stepDone(1, 'failed', 0, T0 + DAY + 2)], 3);
    ids.push('fork');
    truth += 0.25;
  });

  afterAll(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("runs' unconfirmed column comes from one query, equal to reading the logs; a body that does not parse leaves its run to the log read", async () => {
    const page = await store.log.listRuns({ limit: 30 });
    expect(page.map((r) => r.runId)).toContain('run-05');
    const kept = await store.log.unconfirmedUsd?.(page.map((r) => r.runId));
    expect(kept?.size).toBe(page.length);
    for (const r of page) {
      const lost = (await store.log.read(r.runId))
        .filter((e) => isUnconfirmed(e.event))
        .reduce((a, e) => a + (e.event as { costUsd: number }).costUsd, 0);
      expect(kept?.get(r.runId)).toBeCloseTo(lost, 12);
    }
    // (The fixture's states carry no cost; `runs` asks only about runs that cost something.)
    const costly = page.map((r) => ({ ...r, costUsd: 0.01 }));
    expect((await unconfirmedByRun(store, costly)).byRun).toEqual(new Map([['run-05', 0.0005]]));

    // A second file whose lost call's body was damaged: that run is read from its log instead,
    // which names the fault; the other run is still answered by the query.
    const other = join(dir, 'damaged.db');
    const s2 = openSqliteStore(other);
    for (const id of ['bad', 'good'])
      await s2.log.append(
        id,
        [started('p', T0), outcome(T0 + 1, 0.002, 'claude-haiku-4-5', true)],
        'no_stream',
      );
    const raw = new Database(other);
    raw.prepare("UPDATE events SET body = '{' WHERE run_id = 'bad' AND type = 'MODEL_ERROR'").run();
    raw.close();
    const answered = await s2.log.unconfirmedUsd?.(['bad', 'good']);
    expect(answered).toEqual(new Map([['good', 0.002]]));
    const page2 = (await s2.log.listRuns({})).map((r) => ({ ...r, costUsd: 0.002 }));
    const { byRun, skipped } = await unconfirmedByRun(s2, page2);
    expect(byRun).toEqual(new Map([['good', 0.002]]));
    expect(skipped.map((k) => k.runId)).toEqual(['bad']);
    await s2.close();
  });

  it('cost from the rollups equals the fold of every log, by pipeline, model and day', async () => {
    const rollup = await store.log.costRollup?.();
    expect(rollup).toBeDefined();
    // The unfinished runs (3, 7, 11) are not in the rollups yet: their calls are folded live.
    expect(rollup?.pending.map((p) => p.runId).sort()).toEqual(['run-03', 'run-07', 'run-11']);
    const rolled = (rollup?.rows ?? []).reduce((a, r) => a + r.costUsd, 0);
    const live = [3, 7, 11].reduce((a, i) => a + 0.001 * (i + 1) + 0.0005, 0);
    expect(rolled + live).toBeCloseTo(truth, 9);
    for (const by of ['pipeline', 'model', 'day'] as const) {
      const fromRollup = await costReport(store, by);
      const folded = await costReport(store, by, { fromLog: true });
      expect(fromRollup).toEqual(folded);
      const total = fromRollup.rows.reduce((a, r) => a + r.costUsd, 0);
      expect(total).toBeCloseTo(truth, 9);
      expect(fromRollup.rows.reduce((a, r) => a + r.unconfirmedCalls, 0)).toBe(1);
    }
    // By day, a time series: oldest day first, whichever spent more.
    const byDay = await costReport(store, 'day');
    expect(byDay.rows.map((r) => r.key)).toEqual(['2026-11-01', '2026-11-02']);
    expect(byDay.rows[1]?.costUsd).toBeGreaterThan(byDay.rows[0]?.costUsd ?? Infinity);
  });

  it("an unfinished run's newer calls are summed by the store (no checked read); a body that does not parse or lacks a figure leaves its run to the log read", async () => {
    const rollup = await store.log.costRollup?.();
    const pending = rollup?.pending ?? [];
    expect(pending.length).toBe(3);
    for (const p of pending) expect(p.rows?.reduce((a, r) => a + r.calls, 0)).toBe(2);

    const other = join(dir, 'pending.db');
    const s2 = openSqliteStore(other);
    for (const [i, id] of ['good', 'torn', 'nofigure'].entries())
      await s2.log.append(
        id,
        [started('p', T0), outcome(T0 + 1, 0.001 * (i + 1), 'claude-haiku-4-5')],
        'no_stream',
      );
    const raw = new Database(other);
    raw.prepare("UPDATE events SET body = '{' WHERE run_id = 'torn' AND seq = 2").run();
    raw
      .prepare(
        `UPDATE events SET body = json_set(body, '$.event.costUsd', 'a lot')
         WHERE run_id = 'nofigure' AND seq = 2`,
      )
      .run();
    raw.close();
    const byId = new Map((await s2.log.costRollup?.())?.pending.map((p) => [p.runId, p]));
    expect(byId.get('good')?.rows).toEqual([
      expect.objectContaining({ day: '2026-11-01', model: 'claude-haiku-4-5', calls: 1 }),
    ]);
    expect(byId.get('torn')?.rows).toBeUndefined();
    expect(byId.get('nofigure')?.rows).toBeUndefined();
    const report = await costReport(s2, 'day');
    expect(report.rows.map((r) => [r.key, r.calls, r.costUsd])).toEqual([['2026-11-01', 1, 0.001]]);
    expect(report.skipped.map((k) => k.runId).sort()).toEqual(['nofigure', 'torn']);
    await s2.close();
  });

  it('runs pages with --limit and --after, says how to get the next page, --all lists every run', async () => {
    const newest = ['fork', ...ids.slice(0, 12).reverse()];
    const page = async (args: string[]): Promise<{ ids: string[]; stderr: string }> => {
      const r = await plumbline(['runs', '--json', '--store', db, ...args]);
      expect(r.code, r.stderr).toBe(0);
      return { ids: ndjson(r.stdout).map((x) => (x as { runId: string }).runId), stderr: r.stderr };
    };
    const first = await page(['--limit', '5']);
    expect(first.ids).toEqual(newest.slice(0, 5));
    expect(first.stderr).toContain(`more: --after ${newest[4]}`);
    const second = await page(['--limit', '5', '--after', newest[4] as string]);
    expect(second.ids).toEqual(newest.slice(5, 10));
    const last = await page(['--limit', '5', '--after', newest[9] as string]);
    expect(last.ids).toEqual(newest.slice(10));
    expect(last.stderr).not.toContain('more:');
    expect((await page([])).ids).toEqual(newest);
    expect((await page(['--all'])).ids).toEqual(newest);
    const running = await page(['--status', 'running', '--limit', '2']);
    expect(running.ids).toEqual(['run-11', 'run-07']);
    expect(running.stderr).toContain('more: --after run-07');
    // The text table has the same page, one line per run after the header.
    const text = await plumbline(['runs', '--limit', '3', '--store', db]);
    expect(text.stdout.trim().split('\n')).toHaveLength(4);
    const refused = await plumbline(['runs', '--all', '--limit', '3', '--store', db]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/leave out --limit and --after/);
    const unknown = await plumbline(['runs', '--after', 'nope', '--store', db]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/no such run; pass the last run id of the previous page/);
  });
});
