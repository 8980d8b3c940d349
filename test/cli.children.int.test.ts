/**
 * The CLI with child runs (issue 11): `runs` lists top-level runs with a count of their
 * children (`--tree` nests them, `--parent` pages through them, `--flat` lists them as rows),
 * `replay` of a parent shows each join's children with their ids, and `cost` counts every model
 * call once: a parent's rolled-up cost is never added on top of its children's.
 */
import { resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { prepare } from '../src/runtime/prepare.js';
import { ROOT, ndjson, plumbline } from './helpers/cli.js';
import { harness, type Harness } from './helpers/harness.js';
import fanout from './fixtures/pipelines/fanout.js';

interface RunRow {
  runId: string;
  status: string;
  costUsd: number;
  parent?: { runId: string; step: string; part: unknown };
  children?: { total: number; byStatus: Record<string, number> };
  depth?: number;
  moreChildren?: { total: number; byStatus: Record<string, number> };
}

interface CostRow {
  key: string;
  calls: number;
  costUsd: number;
}

describe('plumbline runs, replay and cost with child runs', () => {
  let h: Harness;
  /** What the model calls cost, summed from every run's own outcome events. */
  const billed = new Map<string, { calls: number; usd: number }>();
  const cli = (...args: string[]) => plumbline([...args, '--store', h.dbPath]);

  beforeAll(async () => {
    h = await harness({ usage: { input_tokens: 100, output_tokens: 50 } });
    const p = prepare(fanout, resolve(ROOT, 'test/fixtures/pipelines/fanout.ts'));
    const docs = ['a', 'b', 'c', 'd', 'e'];
    expect((await h.runtime().start(p, { input: { docs }, runId: 'fan-1' })).status).toBe(
      'completed',
    );
    const two = await h.runtime().start(p, { input: { docs: ['x', 'bad', 'y'] }, runId: 'fan-2' });
    expect(two.status).toBe('completed');
    for (const r of await h.store.log.listRuns()) {
      const outcomes = (await h.events(r.runId)).filter(
        (e) => e.event.type === 'MODEL_RESPONSE' || e.event.type === 'MODEL_ERROR',
      );
      billed.set(r.runId, {
        calls: outcomes.length,
        usd: outcomes.reduce((a, e) => a + (e.event as { costUsd: number }).costUsd, 0),
      });
    }
  });
  afterAll(() => h.close());

  it('runs: top-level runs only, each with its children counted by status; paging over them', async () => {
    const r = await cli('runs', '--json');
    expect(r.code, r.stderr).toBe(0);
    const rows = ndjson(r.stdout) as RunRow[];
    expect(rows.map((x) => x.runId)).toEqual(['fan-2', 'fan-1']);
    expect(rows[0]?.children).toEqual({ total: 3, byStatus: { completed: 2, failed: 1 } });
    expect(rows[1]?.children).toEqual({ total: 5, byStatus: { completed: 5 } });

    const text = await cli('runs');
    expect(text.stdout).toMatch(/^fan-2 .* 3 \(2 completed, 1 failed\)$/m);
    expect(text.stdout).toMatch(/^fan-1 .* 5 completed$/m);
    expect(text.stdout).not.toContain('fan-1-each-0');

    const first = await cli('runs', '--limit', '1', '--json');
    expect((ndjson(first.stdout) as RunRow[]).map((x) => x.runId)).toEqual(['fan-2']);
    expect(first.stderr).toContain('more: --after fan-2');
    const next = await cli('runs', '--limit', '1', '--after', 'fan-2', '--json');
    expect((ndjson(next.stdout) as RunRow[]).map((x) => x.runId)).toEqual(['fan-1']);
    expect(next.stderr).not.toContain('more:');
  });

  it('runs --tree: children beneath their parent, failed first when cut, the rest counted', async () => {
    const r = await cli('runs', '--tree', '--children', '2');
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.split('\n');
    const at = (prefix: string) => lines.findIndex((l) => l.startsWith(prefix));
    // fan-2: its failed child is shown, then one completed one, then the count of the rest.
    expect(at('fan-2 ')).toBeGreaterThan(0);
    expect(lines[at('fan-2 ') + 1]).toMatch(/^└ fan-2-each-0 .* completed /);
    expect(lines[at('fan-2 ') + 2]).toMatch(/^└ fan-2-each-1 .* failed /);
    expect(lines[at('fan-2 ') + 3]).toBe(
      '  … 1 more children: 1 completed (plumbline runs --parent fan-2)',
    );
    expect(lines[at('fan-1 ') + 3]).toBe(
      '  … 3 more children: 3 completed (plumbline runs --parent fan-1)',
    );

    const json = ndjson((await cli('runs', '--tree', '--json')).stdout) as RunRow[];
    expect(json.map((x) => x.runId ?? 'more')).toEqual([
      'fan-2',
      'fan-2-each-0',
      'fan-2-each-1',
      'fan-2-each-2',
      'fan-1',
      ...[0, 1, 2, 3, 4].map((i) => `fan-1-each-${i}`),
    ]);
    expect(json[2]).toMatchObject({
      status: 'failed',
      depth: 1,
      parent: { runId: 'fan-2', step: 'each', part: 1 },
    });
  });

  it('runs --parent pages through one run’s children; --flat lists every run', async () => {
    const kids = ndjson((await cli('runs', '--parent', 'fan-1', '--json')).stdout) as RunRow[];
    expect(kids.map((x) => x.runId).sort()).toEqual([0, 1, 2, 3, 4].map((i) => `fan-1-each-${i}`));
    const failed = await cli('runs', '--parent', 'fan-2', '--status', 'failed', '--json');
    expect((ndjson(failed.stdout) as RunRow[]).map((x) => x.runId)).toEqual(['fan-2-each-1']);
    const flat = ndjson((await cli('runs', '--flat', '--json')).stdout) as RunRow[];
    expect(flat).toHaveLength(10);
    const unknown = await cli('runs', '--parent', 'nope');
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr).toContain("unknown run id 'nope'");
    const clash = await cli('runs', '--flat', '--tree');
    expect(clash.code).not.toBe(0);
    expect(clash.stderr).toContain('leave out --tree and --parent');
  });

  it("replay of a parent shows each child's id, status, cost and error under the join", async () => {
    const r = await cli('replay', 'fan-2');
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.split('\n');
    const join = lines.findIndex((l) => l.startsWith('CHILDREN_DONE') || /CHILDREN_DONE/.test(l));
    expect(join).toBeGreaterThan(0);
    const c0 = billed.get('fan-2-each-0')?.usd ?? -1;
    const c2 = billed.get('fan-2-each-2')?.usd ?? -1;
    expect(lines[join + 1]).toBe(
      `    3 child runs of map 'each': 2 completed, 1 failed, cost $${(c0 + c2).toFixed(6)} (plumbline replay <child id>)`,
    );
    expect(lines[join + 2]).toBe(`    └ fan-2-each-0 completed $${c0.toFixed(6)}`);
    expect(lines[join + 3]).toMatch(
      /^ {4}└ fan-2-each-1 failed {4}\$0\.000000 {2}.*document bad is unreadable/,
    );
    expect(r.stdout).toMatch(/every recorded state matched/);

    const json = ndjson((await cli('replay', 'fan-2', '--json')).stdout) as Array<{
      event?: { type: string };
      children?: Array<{ runId: string; status: string; costUsd: number; error?: string }>;
    }>;
    const done = json.find((x) => x.event?.type === 'CHILDREN_DONE');
    expect(done?.children?.map((c) => [c.runId, c.status])).toEqual([
      ['fan-2-each-0', 'completed'],
      ['fan-2-each-1', 'failed'],
      ['fan-2-each-2', 'completed'],
    ]);
    expect(done?.children?.[1]?.error).toContain('document bad is unreadable');
    // A child replays on its own.
    const child = await cli('replay', 'fan-2-each-0');
    expect(child.code, child.stderr).toBe(0);
    expect(child.stdout).toMatch(/every recorded state matched/);
  });

  it('cost counts every call once: totals equal the calls made, the parent’s roll-up is not added', async () => {
    const truth = [...billed.values()].reduce(
      (a, b) => ({ calls: a.calls + b.calls, usd: a.usd + b.usd }),
      { calls: 0, usd: 0 },
    );
    // fan-1: its own call and one per document; fan-2: its own and two (one document fails first).
    expect(truth.calls).toBe(6 + 3);
    const fan1 = ['fan-1', ...[0, 1, 2, 3, 4].map((i) => `fan-1-each-${i}`)];
    const fan1Usd = fan1.reduce((a, id) => a + (billed.get(id)?.usd ?? NaN), 0);
    // The parent's index cost already includes its children's (rolled up at the join).
    expect((await h.store.log.getRun('fan-1'))?.costUsd).toBeCloseTo(fan1Usd, 9);

    for (const args of [[], ['--from-log']]) {
      const rows = ndjson((await cli('cost', '--json', ...args)).stdout) as CostRow[];
      expect(rows.map((x) => x.key).sort()).toEqual(['fanout', 'fanout-each']);
      expect(rows.reduce((a, x) => a + x.calls, 0)).toBe(truth.calls);
      expect(rows.reduce((a, x) => a + x.costUsd, 0)).toBeCloseTo(truth.usd, 9);
      expect(rows.find((x) => x.key === 'fanout')?.calls).toBe(2);
      expect(rows.find((x) => x.key === 'fanout-each')?.calls).toBe(7);
    }

    const byRun = ndjson((await cli('cost', '--by', 'run', '--json')).stdout) as CostRow[];
    expect(byRun.map((x) => [x.key, x.calls])).toEqual([
      ['fan-1', 6],
      ['fan-2', 3],
    ]);
    expect(byRun[0]?.costUsd).toBeCloseTo(fan1Usd, 9);
    expect(byRun[0]?.costUsd).toBeCloseTo((await h.store.log.getRun('fan-1'))?.costUsd ?? -1, 9);
    const text = await cli('cost', '--by', 'run');
    expect(text.stdout).toMatch(/^run\s+calls/);
    expect(text.stdout).toMatch(/^fan-1\s+6\s/m);
  });
});
