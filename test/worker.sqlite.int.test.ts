/**
 * The worker on the embedded store: starts queued through the SQLite work queue, deduplicated,
 * bad commands dead-lettered with a reason while valid ones keep being served.
 */
import { spawn } from 'node:child_process';
import { createServer, type AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { openSqliteBus } from '../src/bus/sqlite.js';
import { ROOT, ndjson, plumbline } from './helpers/cli.js';
import { harness } from './helpers/harness.js';

describe('worker on SQLite', () => {
  it('runs queued starts once, dead-letters what it can never run, and keeps serving', async () => {
    await using h = await harness({ script: () => ({ kind: 'json', value: { n: 7 } }) });
    const env = { ANTHROPIC_BASE_URL: h.fake.url };
    const first = await plumbline(
      [
        'start',
        'test/fixtures/pipelines/stubborn.ts',
        '--run-id',
        'q-1',
        '--store',
        h.dbPath,
        '--json',
      ],
      env,
    );
    expect(ndjson(first.stdout)[0]).toEqual({
      runId: 'q-1',
      pipeline: 'stubborn',
      duplicate: false,
    });
    const again = await plumbline([
      'start',
      'test/fixtures/pipelines/stubborn.ts',
      '--run-id',
      'q-1',
      '--store',
      h.dbPath,
    ]);
    expect(again.stdout).toMatch(/duplicate start for run q-1: already queued or started, dropped/);
    // Commands no worker can run: an unknown pipeline, an input failing the schema, garbage bytes.
    const bus = openSqliteBus(h.dbPath);
    await bus.publishStart({ runId: 'q-2', pipeline: 'nope', input: {} });
    await bus.publishStart({ runId: 'q-3', pipeline: 'plain', input: { n: 'not a number' } });
    await bus.publishStart({ runId: 'q-4', pipeline: 'plain', input: { n: 4 } });
    const { default: Database } = await import('better-sqlite3');
    const raw = new Database(h.dbPath);
    raw
      .prepare("INSERT INTO commands (dedup, kind, data, visible_at) VALUES (NULL, 'start', ?, 0)")
      .run(Buffer.from([0xff, 0x00, 0x7b]));
    raw.close();

    const port = await new Promise<number>((resolve) => {
      const srv = createServer().listen(0, '127.0.0.1', () => {
        const p = (srv.address() as AddressInfo).port;
        srv.close(() => resolve(p));
      });
    });
    const worker = spawn(
      process.execPath,
      [
        'bin/plumbline.mjs',
        'worker',
        '--store',
        h.dbPath,
        '--pipelines',
        'test/fixtures/pipelines/stubborn.ts',
        'test/fixtures/pipelines/plain.js',
        '--metrics-port',
        String(port),
      ],
      {
        cwd: ROOT,
        env: { ...process.env, ...env, PLUMBLINE_LOG_LEVEL: 'warn' },
        stdio: 'ignore',
      },
    );
    const deadline = Date.now() + 30_000;
    const done = async (): Promise<boolean> => {
      const a = await h.store.log.getRun('q-1');
      const b = await h.store.log.getRun('q-4');
      return (
        a?.status === 'completed' &&
        b?.status === 'completed' &&
        (await bus.deadLetters()).length === 3
      );
    };
    while (Date.now() < deadline && !(await done())) await new Promise((r) => setTimeout(r, 100));
    // Prometheus metrics of what the worker did.
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    expect(metrics).toMatch(/plumbline_runs_total\{pipeline="stubborn",status="completed"\} 1/);
    expect(metrics).toMatch(/plumbline_runs_total\{pipeline="plain",status="completed"\} 1/);
    expect(metrics).toMatch(
      /plumbline_model_attempts_total\{pipeline="stubborn",model="claude-haiku-4-5",classification="ok"\} 1/,
    );
    expect(metrics).toMatch(
      /plumbline_cost_usd_total\{pipeline="stubborn",model="claude-haiku-4-5"\} 0\.000\d+/,
    );
    expect(metrics).toMatch(/plumbline_append_seconds_count \d+/);
    expect(metrics).toMatch(/plumbline_runs_in_flight 0/);
    expect(metrics).toMatch(/plumbline_store_unavailable 0/);
    worker.kill('SIGTERM');
    await new Promise((r) => worker.on('close', r));
    expect(await h.store.log.getRun('q-1')).toMatchObject({ status: 'completed' });
    expect(await h.store.log.getRun('q-4')).toMatchObject({ status: 'completed' });
    expect(await h.store.log.getRun('q-2')).toBeUndefined();
    expect(await h.store.log.getRun('q-3')).toBeUndefined();
    expect(h.fake.count).toBe(1);
    const dead = (await bus.deadLetters()).map((d) => d.reason).sort();
    expect(dead[0]).toMatch(/command is not UTF-8 text|not JSON/);
    expect(dead[1]).toMatch(/input does not match pipeline 'plain' input schema: n: /);
    expect(dead[2]).toMatch(/unknown pipeline 'nope': this worker loads stubborn, plain/);
    await bus.close();
    const listed = await plumbline(['dlq', '--json', '--store', h.dbPath]);
    expect(ndjson(listed.stdout)).toHaveLength(3);
  });
});
