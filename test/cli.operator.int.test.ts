/**
 * Operator verbs: fork reuses recorded results, verify catches a renamed step, watch draws a
 * progress line on a TTY and prints valid NDJSON with --json, stranded runs are listed.
 */
import { spawn } from 'node:child_process';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { StoredEnvelope } from '../src/machines/events.js';
import { ROOT, ndjson, plumbline } from './helpers/cli.js';
import { harness, ofType } from './helpers/harness.js';

describe('fork', () => {
  it('makes model calls only for the steps after SEQ', async () => {
    await using h = await harness({
      script: (req) => ({
        kind: 'json',
        value: { note: `re: ${JSON.stringify(req.body.messages).slice(12, 30)}` },
      }),
    });
    const env = { ANTHROPIC_BASE_URL: h.fake.url };
    const run = await plumbline(
      [
        'run',
        'test/fixtures/pipelines/budgeted.ts',
        '--input',
        '{"topic":"owls"}',
        '--store',
        h.dbPath,
        '--run-id',
        'src-1',
      ],
      env,
    );
    expect(run.code, run.stderr).toBe(0);
    expect(h.fake.count).toBe(5);
    const source = await h.events('src-1');
    // seq 5 is the MODEL_RESPONSE of step "two": steps one and two are reused, three to five run.
    expect(source[4]?.event).toMatchObject({ type: 'MODEL_RESPONSE', step: 'two' });
    const fork = await plumbline(
      ['fork', 'src-1', '--at', '5', '--run-id', 'fork-1', '--store', h.dbPath, '--json'],
      env,
    );
    expect(fork.code, fork.stderr).toBe(0);
    expect(h.fake.count).toBe(5 + 3);
    const summary = ndjson(fork.stdout)[0] as {
      status: string;
      outputs: Record<string, unknown>;
      forkedFrom: unknown;
    };
    expect(summary).toMatchObject({ status: 'completed', forkedFrom: { runId: 'src-1', seq: 5 } });
    const forked = await h.events('fork-1');
    expect(forked[0]?.event).toMatchObject({
      type: 'run.started',
      forkedFrom: { runId: 'src-1', seq: 5 },
    });
    expect(forked.slice(1, 5).map((e) => e.event)).toEqual(source.slice(1, 5).map((e) => e.event));
    expect(ofType(forked, 'ATTEMPT').map((e) => e.event.step)).toEqual([
      'one',
      'two',
      'three',
      'four',
      'five',
    ]);
    const out = (await plumbline(['replay', 'fork-1', '--store', h.dbPath])).stdout;
    expect(out).toMatch(/every recorded state matched/);
  });
});

describe('verify', () => {
  it('exits non-zero after a step is renamed, naming the run and the first mismatching seq', async () => {
    await using h = await harness({ script: () => ({ kind: 'json', value: { n: 1 } }) });
    const env = { ANTHROPIC_BASE_URL: h.fake.url };
    const file = join(ROOT, 'test', 'fixtures', 'pipelines', `verify-copy-${process.pid}.ts`);
    copyFileSync(join(ROOT, 'test/fixtures/pipelines/stubborn.ts'), file);
    try {
      const r = await plumbline(['run', file, '--store', h.dbPath, '--run-id', 'v-1'], env);
      expect(r.code, r.stderr).toBe(0);
      const ok = await plumbline(['verify', '--all', '--store', h.dbPath]);
      expect(ok.code, ok.stdout + ok.stderr).toBe(0);
      expect(ok.stdout).toMatch(/^1 of 1 runs verified$/m);
      writeFileSync(file, readFileSync(file, 'utf8').replace("name: 'ask'", "name: 'question'"));
      const bad = await plumbline(['verify', 'v-1', '--store', h.dbPath, '--json']);
      expect(bad.code).toBe(1);
      const v = ndjson(bad.stdout)[0] as {
        runId: string;
        ok: boolean;
        firstMismatchSeq: number;
        message: string;
      };
      expect(v).toMatchObject({ runId: 'v-1', ok: false, firstMismatchSeq: 1 });
      expect(v.message).toMatch(/machine hash changed \(recorded \w+, now \w+\)/);
      const text = await plumbline(['verify', '--all', '--store', h.dbPath]);
      expect(text.code).toBe(1);
      expect(text.stdout).toMatch(
        /^v-1\s+stubborn\s+1\s+machine hash changed .*first mismatching seq 1/m,
      );
    } finally {
      const { rmSync } = await import('node:fs');
      rmSync(file, { force: true });
    }
  });
});

describe('watch', () => {
  it('prints valid NDJSON with --json, and a progress line under a pseudo-terminal', async () => {
    await using h = await harness({ script: () => ({ kind: 'json', value: { note: 'x' } }) });
    const env = { ANTHROPIC_BASE_URL: h.fake.url };
    const r = await plumbline(
      [
        'run',
        'test/fixtures/pipelines/budgeted.ts',
        '--input',
        '{"topic":"w"}',
        '--store',
        h.dbPath,
        '--run-id',
        'w-1',
      ],
      env,
    );
    expect(r.code).toBe(0);
    const json = await plumbline(['watch', 'w-1', '--json', '--store', h.dbPath]);
    expect(json.code).toBe(0);
    const rows = ndjson(json.stdout);
    expect(rows).toHaveLength(11);
    rows.forEach((row) => StoredEnvelope.parse(row));

    // Under a pseudo-terminal (util-linux `script`), watch draws the progress line of the run.
    const tty = await new Promise<string>((resolve) => {
      const cmd = `${process.execPath} bin/plumbline.mjs watch w-1 --store ${h.dbPath}`;
      const child = spawn('script', ['-qfec', cmd, '/dev/null'], {
        cwd: ROOT,
        env: { ...process.env, PLUMBLINE_LOG_LEVEL: 'warn', TERM: 'xterm' },
      });
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.on('close', () => resolve(out));
    });
    expect(tty).toContain('\x1b[2K');
    expect(tty).toMatch(/w-1\s+budgeted\s+\[█{20}\]\s+5\/5 done\s+\$0\.\d{6} completed \(seq 11\)/);
  });
});

describe('stranded runs', () => {
  it('lists running runs whose driver is gone (no live lease), says so in `runs`, and `resume` takes only those', async () => {
    await using h = await harness({ script: () => ({ kind: 'json', value: { n: 1 } }) });
    const env = { ANTHROPIC_BASE_URL: h.fake.url };
    // A run whose process died after run.started: it is "running" and nobody touches it.
    const { Runtime } = await import('../src/runtime/driver.js');
    const { loadPipeline } = await import('../src/runtime/load.js');
    const rt = new Runtime({ store: h.store });
    const stubborn = await loadPipeline('test/fixtures/pipelines/stubborn.ts');
    await rt.create(stubborn, { input: {}, runId: 'idle-1' });
    // One as idle, but its driver (this process) is alive and holds its lease: a slow call.
    await rt.create(stubborn, { input: {}, runId: 'busy-1' });
    const busy = await rt.leases.take('busy-1');
    expect(busy.ok).toBe(true);
    await new Promise((r) => setTimeout(r, 300));
    const s = await plumbline(
      ['runs', '--stranded', '--older-than', '200ms', '--json', '--store', h.dbPath],
      env,
    );
    expect((ndjson(s.stdout) as Array<{ runId: string }>).map((x) => x.runId)).toEqual(['idle-1']);
    const listed = ndjson(
      (await plumbline(['runs', '--json', '--store', h.dbPath])).stdout,
    ) as Array<{ runId: string; status: string }>;
    expect(Object.fromEntries(listed.map((r) => [r.runId, r.status]))).toEqual({
      'idle-1': 'stranded',
      'busy-1': 'running',
    });
    const none = await plumbline(['stranded', '--older-than', '1h', '--store', h.dbPath]);
    expect(none.stdout).toMatch(/no stranded runs/);
    const resumed = ndjson(
      (await plumbline(['resume', '--store', h.dbPath, '--json'], env)).stdout,
    ) as Array<{ runId: string; status: string; stopped?: string }>;
    expect(resumed.find((r) => r.runId === 'idle-1')).toMatchObject({ status: 'completed' });
    expect(resumed.find((r) => r.runId === 'busy-1')).toMatchObject({
      status: 'running',
      stopped: 'leased',
    });
    expect((await h.store.log.read('busy-1')).length).toBe(1);
    if (busy.ok) await rt.leases.release(busy.held);
  });
});
