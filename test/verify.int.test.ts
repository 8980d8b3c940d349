/**
 * `verify --all` on a store where 7 of 10 runs were hand-edited, each a different way (through
 * raw SQL on the SQLite file): every one is named with its seq and reason, the 3 good ones
 * (one of them hash-chained) pass, and `cost` still reports the readable runs.
 */
import Database from 'better-sqlite3';
import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { GENESIS, link } from '../src/machines/chain.js';
import type { NewEnvelope, StoredEnvelope } from '../src/machines/events.js';
import { loadPipeline } from '../src/runtime/load.js';
import type { Store } from '../src/store/types.js';
import { ROOT, ndjson, plumbline } from './helpers/cli.js';
import { harness } from './helpers/harness.js';

const PIPELINE = resolve(ROOT, 'test/fixtures/pipelines/budgeted.ts');

/** Re-appends `source`'s log as run `runId` with every envelope chained (as the run writer will). */
async function chainedCopy(store: Store, source: string, runId: string): Promise<void> {
  const envs = (await store.log.read(source)).map(({ runId: _r, seq: _s, ...e }): NewEnvelope => e);
  await store.log.append(runId, link(envs, GENESIS, 1), 'no_stream');
}

/** Rewrites one stored event body the way someone with the SQLite file could. */
function edit(db: Database.Database, runId: string, seq: number, fn: (e: StoredEnvelope) => void) {
  const row = db
    .prepare('SELECT body FROM events WHERE run_id = ? AND seq = ?')
    .get(runId, seq) as { body: string };
  const env = JSON.parse(row.body) as StoredEnvelope;
  fn(env);
  db.prepare('UPDATE events SET body = ? WHERE run_id = ? AND seq = ?').run(
    JSON.stringify(env),
    runId,
    seq,
  );
}

interface Failure {
  runId: string;
  ok: boolean;
  seq: number | null;
  problems: Array<{ seq: number | null; reason: string }>;
}

describe('verify --all on a hand-edited store', () => {
  it('names each of the 7 edited runs with its seq and reason, passes the 3 good ones; cost still reports', async () => {
    await using h = await harness({
      // A topic "reask" gets an answer that fails the schema first, then a valid one after the feedback.
      script: (req) => {
        const body = JSON.stringify(req.body);
        return body.includes('reask') && !body.includes('previous answer was not accepted')
          ? { kind: 'json', value: { note: 7 } }
          : { kind: 'json', value: { note: 'fine' } };
      },
    });
    const prepared = await loadPipeline(PIPELINE);
    const rt = h.runtime();
    const plain = ['good-1', 'good-2', 'cost', 'json', 'deleted', 'state', 'schema'];
    for (const runId of plain) {
      const r = await rt.start(prepared, { runId, input: { topic: runId } });
      expect(r.status).toBe('completed');
    }
    const ro = await rt.start(prepared, { runId: 'output', input: { topic: 'reask' } });
    expect(ro.status).toBe('completed');
    await chainedCopy(h.store, 'good-1', 'good-chained');
    await chainedCopy(h.store, 'good-2', 'chained');
    const events = await h.events('good-1');
    // Seq 3 is the first step's answer; seq 2 / 4 are ATTEMPTs around it.
    expect(events[2]?.event).toMatchObject({ type: 'MODEL_RESPONSE', verdict: 'valid' });
    expect(events).toHaveLength(11);
    expect((await h.events('output'))[2]?.event).toMatchObject({ verdict: 'invalid' });

    // Before any edit: all 10 verify.
    const clean = await plumbline(['verify', '--all', '--store', h.dbPath]);
    expect(clean.code, clean.stdout + clean.stderr).toBe(0);
    expect(clean.stdout).toMatch(/^10 of 10 runs verified$/m);

    const db = new Database(h.dbPath);
    try {
      // 1. An invalid answer turned into a valid one (schema-valid output, so only the fold sees it).
      edit(db, 'output', 3, (e) => {
        Object.assign(e.event, { verdict: 'valid', output: { note: 'forged' }, issues: [] });
      });
      // 2. A forged cost on one call (the states after it left as they were).
      edit(db, 'cost', 3, (e) => Object.assign(e.event, { costUsd: 0.5 }));
      // 3. One event row that is not JSON.
      db.prepare(
        'UPDATE events SET body = \'{"v":1,"at":\' WHERE run_id = \'json\' AND seq = 4',
      ).run();
      // 4. A middle event deleted.
      db.prepare("DELETE FROM events WHERE run_id = 'deleted' AND seq = 5").run();
      // 5. A recorded state changed.
      edit(db, 'state', 6, (e) => Object.assign(e.state, { value: { five: 'ready' } }));
      // 6. A chained log with a field nothing else checks edited.
      edit(db, 'chained', 7, (e) => Object.assign(e.event, { durationMs: 12_345 }));
      // 7. A valid answer's output forged to one its schema refuses.
      edit(db, 'schema', 3, (e) => Object.assign(e.event, { output: { note: 42 } }));
    } finally {
      db.close();
    }

    const json = await plumbline(['verify', '--all', '--store', h.dbPath, '--json']);
    expect(json.code, json.stderr).toBe(1);
    const failures = ndjson(json.stdout) as Failure[];
    const byRun = new Map(failures.map((f) => [f.runId, f]));
    expect([...byRun.keys()].sort()).toEqual(
      ['chained', 'cost', 'deleted', 'json', 'output', 'schema', 'state'].sort(),
    );
    expect(failures.every((f) => !f.ok)).toBe(true);
    /** The run names a problem at `seq` matching `reason`; `first` is the lowest seq it names. */
    const has = (runId: string, seq: number, reason: RegExp, first = seq): void => {
      const f = byRun.get(runId);
      expect(f?.seq, `${runId}: ${JSON.stringify(f)}`).toBe(first);
      expect(
        f?.problems.some((p) => p.seq === seq && reason.test(p.reason)),
        `${runId}: ${JSON.stringify(f)}`,
      ).toBe(true);
    };
    has('output', 3, /first mismatching seq 3/);
    has('cost', 3, /records costUsd 0\.5 but its usage .* costs 0\.\d+/);
    has('json', 4, /unreadable: .*seq 4.*not JSON/);
    has('deleted', 5, /seq 6 follows seq 4: event 5 is missing/);
    has('deleted', 6, /gap in the log after seq 4/, 5);
    has('state', 6, /first mismatching seq 6: .*"five":"ready"/);
    has('chained', 8, /seq 8: prev hash does not match seq 7 — event 7 or 8 was edited/);
    has(
      'schema',
      3,
      /output of step 'one' is recorded as valid but does not match the step's schema \(note: /,
    );
    // The forged cost also shows in the running total the states recorded, and (every run's
    // log is chained by the runtime) in the hash the next event carries.
    expect(
      byRun
        .get('cost')
        ?.problems.map((p) => p.seq)
        .sort(),
    ).toEqual([3, 3, 4]);
    has('cost', 4, /seq 4: prev hash does not match seq 3/, 3);

    const text = await plumbline(['verify', '--all', '--store', h.dbPath]);
    expect(text.code).toBe(1);
    expect(text.stdout).toMatch(/^3 of 10 runs verified, 7 failed:$/m);
    expect(text.stdout).toMatch(/^run\s+pipeline\s+seq\s+reason$/m);
    expect(text.stdout).toMatch(/^chained\s+budgeted\s+8\s+seq 8: prev hash does not match/m);
    expect(text.stdout).toMatch(
      /^json\s+budgeted\s+4\s+unreadable: run json seq 4: stored event is invalid: not JSON/m,
    );
    for (const good of ['good-1', 'good-2', 'good-chained'])
      expect(text.stdout).not.toContain(good);

    // Progress goes to stderr only on a terminal (util-linux `script` gives it a pseudo-terminal).
    expect(text.stderr).not.toMatch(/verified \d+ of/);
    const tty = await new Promise<string>((resolve) => {
      const cmd = `${process.execPath} bin/plumbline.mjs verify --all --store ${h.dbPath}`;
      const child = spawn('script', ['-qfec', cmd, '/dev/null'], {
        cwd: ROOT,
        env: { ...process.env, PLUMBLINE_LOG_LEVEL: 'warn', TERM: 'xterm' },
      });
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.on('close', () => resolve(out));
    });
    expect(tty).toContain('\x1b[2Kverified 10 of 10 runs, 7 failed');

    // The good runs pass alone, and a named run is still checked on its own.
    const goods = await plumbline(['verify', 'good-1', 'good-chained', '--store', h.dbPath]);
    expect(goods.code, goods.stdout).toBe(0);
    expect(goods.stdout).toMatch(/^ok\s+good-chained \(budgeted\): all 11 recorded states match$/m);

    // cost --from-log folds every log: the rows of every readable run, the unreadable one
    // named on stderr (the rollups, kept as runs ended, cannot see a log damaged afterwards).
    const cost = await plumbline([
      'cost',
      '--by',
      'pipeline',
      '--from-log',
      '--store',
      h.dbPath,
      '--json',
    ]);
    expect(cost.code).toBe(1);
    expect(cost.stderr).toMatch(/skipped run json: .*seq 4/);
    let calls = 0;
    for (const run of await h.store.log.listRuns()) {
      if (run.runId === 'json') continue;
      calls += (await h.events(run.runId)).filter((e) => e.event.type === 'MODEL_RESPONSE').length;
    }
    expect(ndjson(cost.stdout)).toEqual([expect.objectContaining({ key: 'budgeted', calls })]);
    expect(calls).toBeGreaterThan(40);
  });
});
