/**
 * `plumbline run` and `plumbline demo` end to end, as a user types them.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { TRIAGE_POLICY } from '../src/examples/triagePolicy.js';
import { ndjson, plumbline } from './helpers/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'plumbline-run-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('plumbline run', () => {
  it('loads a .js pipeline, prints events then a summary as NDJSON, exit 0', async () => {
    const r = await plumbline([
      'run',
      'test/fixtures/pipelines/plain.js',
      '--input',
      '{"n":20}',
      '--json',
      '--store',
      join(dir, 'a.db'),
    ]);
    expect(r.code, r.stderr).toBe(0);
    const rows = ndjson(r.stdout) as Array<Record<string, unknown>>;
    expect(rows.slice(0, -1).map((e) => (e.event as { type: string }).type)).toEqual([
      'run.started',
      'STEP_DONE',
      'STEP_DONE',
    ]);
    expect(rows.at(-1)).toMatchObject({
      summary: true,
      status: 'completed',
      costUsd: 0,
      outputs: { double: { n: 40 }, inc: { n: 41 } },
    });
  });

  it('prints the run id, final state, cost and path without --json', async () => {
    const r = await plumbline([
      'run',
      'test/fixtures/pipelines/plain.js',
      '--input',
      '{"n":1}',
      '--run-id',
      'p-1',
      '--store',
      join(dir, 'b.db'),
    ]);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe('run p-1 completed, cost $0.000000, path double → inc');
  });
});

describe('plumbline demo', () => {
  it('triages the sample tickets, routes three messages, maps a document and runs the support agent, with the fake Claude when no API key is set, and says so', async () => {
    const r = await plumbline(['demo', '--store', join(dir, 'demo.db')], {
      ANTHROPIC_API_KEY: '',
      PLUMBLINE_OUTBOX: join(dir, 'outbox'),
    });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(
      /no ANTHROPIC_API_KEY: using the fake Claude at http:\/\/127\.0\.0\.1:\d+/,
    );
    expect(r.stdout.match(/ completed, cost \$/g)).toHaveLength(5);
    expect(r.stdout).toMatch(/draft \(skipped\)/);
    // classify caches its long system prompt ('5m'): the first ticket writes it, the second
    // reads it — the fake counts half a byte per token; Sonnet 4.6 reads at $0.30, not $3, /MTok.
    const triage = r.stdout.split('\n').slice(0, 12);
    const cache = triage.filter((l) => l.startsWith('  prompt cache: '));
    expect(cache).toHaveLength(5);
    const policy = Math.ceil(Buffer.byteLength(TRIAGE_POLICY, 'utf8') / 2);
    const n = (x: number): string => x.toLocaleString('en-US');
    expect(cache[0]).toMatch(/^ {2}prompt cache: wrote ([\d,]+) tokens \$(\d\.\d{6})$/);
    const [, written = '', writeUsd = ''] =
      /wrote ([\d,]+) tokens \$(\S+)/.exec(cache[0] ?? '') ?? [];
    const w = Number(written.replace(/,/g, ''));
    expect(w).toBeGreaterThan(policy);
    expect(writeUsd).toBe(((w * 3.75) / 1e6).toFixed(6));
    expect(cache[1]).toContain(
      `, read ${n(policy)} tokens $${((policy * 0.3) / 1e6).toFixed(6)} ($${((policy * 3) / 1e6).toFixed(6)} at the input price)`,
    );
    expect(triage.indexOf(cache[0] ?? '')).toBe(triage.findIndex((l) => l.startsWith('run ')) + 1);
    // The route: one message per branch, each naming the branch it took.
    expect(r.stdout).toMatch(/→ classify: billing → branch billing \(refund-request\) → reply/);
    expect(r.stdout).toMatch(/→ classify: bug → branch bug \(bug-report → file-bug\) → reply/);
    expect(r.stdout).toMatch(/→ classify: question → branch question \(answer\) → reply/);
    // The map: 8 chunks, a child run each, never more than 5 driven at once.
    expect(r.stdout).toMatch(/split into 8 chunks/);
    expect(r.stdout).toMatch(
      /fan-out: 8 child runs \S+-summaries-0 … \S+-summaries-7, 5 at a time \(at most [1-5] seen at once\)/,
    );
    expect(r.stdout.match(/^ {4}#\d completed /gm)).toHaveLength(8);
    expect(r.stdout).toMatch(/answers scripted by the fake Claude/);
    // The support agent: a lookup, a refund by the tool, and one over $100 approved by the demo.
    expect(r.stdout).toMatch(
      /→ lookupOrder\(A-1002\) ok → issueRefund\(A-1002, \$24\.00\) ok → answer/,
    );
    expect(r.stdout).toMatch(/issueRefund\(A-1003, \$240\.00\) refused \(refunds over \$100 need/);
    expect(r.stdout).toMatch(/waiting for signal 'approve' \(step approval\)/);
    expect(r.stdout).toMatch(
      /approval: sent automatically by the demo \(in production a person runs `plumbline signal S-3003-\S+ approve --data/,
    );
    expect(r.stdout).toMatch(/refunded after approval by plumbline demo: \$240\.00 paid/);
    expect(r.stdout.match(/^ {4}S-300\d-\S+: completed, \$/gm)).toHaveLength(3);
    const refunds = ndjson(readFileSync(join(dir, 'refunds.jsonl'), 'utf8')) as Array<{
      orderId: string;
      via: string;
    }>;
    expect(refunds.map((x) => [x.orderId, x.via])).toEqual([
      ['A-1002', 'tool'],
      ['A-1003', 'approval'],
    ]);
    const runs = await plumbline(['runs', '--json', '--store', join(dir, 'demo.db')]);
    // Top-level runs only (a child's cost is in its parent's: counting both would count it twice).
    const roots = new Set(['triage', 'router', 'summarise', 'support']);
    const listed = (ndjson(runs.stdout) as Array<{ costUsd: number; pipeline: string }>).filter(
      (l) => roots.has(l.pipeline),
    );
    const count = (name: string): number => listed.filter((l) => l.pipeline === name).length;
    expect([count('triage'), count('router'), count('summarise'), count('support')]).toEqual([
      5, 3, 1, 3,
    ]);
    const total = listed.reduce((a, r) => a + r.costUsd, 0);
    // Spend folded from the log, three ways, always adding up to the runs' total.
    for (const by of ['model', 'pipeline', 'day']) {
      const c = await plumbline(['cost', '--by', by, '--json', '--store', join(dir, 'demo.db')]);
      const rows = ndjson(c.stdout) as Array<{ key: string; calls: number; costUsd: number }>;
      expect(Math.abs(rows.reduce((a, r) => a + r.costUsd, 0) - total)).toBeLessThan(1e-9);
      if (by === 'model')
        expect(rows.map((r) => r.key).sort()).toEqual(['claude-haiku-4-5', 'claude-sonnet-4-6']);
      if (by === 'pipeline')
        expect(rows.map((r) => r.key)).toEqual(
          expect.arrayContaining(['triage', 'router', 'summarise', 'support']),
        );
    }
    const bad = await plumbline(['cost', '--by', 'week', '--store', join(dir, 'demo.db')]);
    expect(bad.code).toBe(2);
  });
});
