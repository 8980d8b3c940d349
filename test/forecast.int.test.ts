/**
 * `plumbline forecast` and `--budget-usd auto` (issue 15) through the CLI: refused with the fix
 * while the store has no finished run of the pipeline version; then based on the runs that
 * finished, and `run --budget-usd auto` records the cap it prints and completes under it.
 */
import { describe, expect, it } from 'vitest';
import { loadPipeline } from '../src/runtime/load.js';
import { ndjson, plumbline } from './helpers/cli.js';
import { harness, ofType } from './helpers/harness.js';

const BUDGETED = 'test/fixtures/pipelines/budgeted.ts';
const input = { topic: 'owls' };

describe('forecast verb', { timeout: 120_000 }, () => {
  it('refuses without history, forecasts from finished runs, and auto sets the cap', async () => {
    await using h = await harness({ script: () => ({ kind: 'json', value: { note: 'ok' } }) });
    const env = { ANTHROPIC_BASE_URL: h.fake.url };
    const store = ['--store', h.dbPath];

    const none = await plumbline(['forecast', BUDGETED, ...store]);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(
      /no finished run of pipeline 'budgeted' version '1' in this store to forecast from: run it a few times first/,
    );
    const refused = await plumbline(
      ['run', BUDGETED, '--input', JSON.stringify(input), '--budget-usd', 'auto', ...store],
      env,
    );
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/--budget-usd auto: no finished run .* pass --budget-usd <n>/);
    const queued = await plumbline(['start', 'budgeted', '--budget-usd', 'auto', ...store]);
    expect(queued.code).toBe(2);
    expect(queued.stderr).toMatch(/--budget-usd auto: no finished run of pipeline 'budgeted' to/);
    expect(await h.store.log.listRuns()).toEqual([]);

    const prepared = await loadPipeline(BUDGETED);
    const rt = h.runtime();
    for (const runId of ['h1', 'h2', 'h3'])
      expect((await rt.start(prepared, { input, runId })).status).toBe('completed');
    const costs = await Promise.all(
      ['h1', 'h2', 'h3'].map(async (id) => (await h.events(id)).at(-1)?.state.costUsd ?? 0),
    );

    const json = await plumbline(['forecast', 'budgeted', '--json', ...store]);
    expect(json.code, json.stderr).toBe(0);
    const [f] = ndjson(json.stdout) as Array<{
      version: string;
      basis: string;
      autoBudgetUsd: number;
      autoBudgetMargin: number;
      forecast: {
        runs: number;
        costUsd: { max: number };
        calls: { p50: number; max: number };
        neededUsd: { p99: number };
        steps: Array<{ step: string; runs: number; calls: { max: number } }>;
      };
    }>;
    expect(f).toMatchObject({ version: '1', basis: 'all', autoBudgetMargin: 1.5 });
    expect(f?.forecast).toMatchObject({ runs: 3, calls: { p50: 5, max: 5 } });
    expect(f?.forecast.costUsd.max).toBe(Math.max(...costs));
    expect(f?.forecast.steps.map((s) => [s.step, s.runs, s.calls.max])).toEqual(
      ['one', 'two', 'three', 'four', 'five'].map((s) => [s, 3, 1]),
    );
    const auto = f?.autoBudgetUsd ?? 0;
    expect(auto).toBeCloseTo((f?.forecast.neededUsd.p99 ?? 0) * 1.5, 9);
    expect(auto).toBeGreaterThan(Math.max(...costs) * 1.5);

    const text = await plumbline(['forecast', BUDGETED, ...store]);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/^forecast for budgeted v1 from 3 finished run\(s\)\n/);
    expect(text.stdout).toMatch(/step five \(3 run\(s\)\)/);
    expect(text.stdout).toContain(`--budget-usd auto would cap a run at $${auto.toFixed(6)}`);

    const run = await plumbline(
      [
        'run',
        BUDGETED,
        '--input',
        JSON.stringify(input),
        '--budget-usd',
        'auto',
        '--run-id',
        'auto-1',
        '--json',
        ...store,
      ],
      env,
    );
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).toContain(
      `--budget-usd auto: $${auto.toFixed(6)} = p99 of the cap runs needed`,
    );
    expect(run.stderr).toContain('from 3 finished run(s) of budgeted v1 with this input');
    const events = await h.events('auto-1');
    expect(events[0]?.event).toMatchObject({ limits: { budgetUsd: auto } });
    expect(events.at(-1)?.state.status).toBe('completed');
    expect(ofType(events, 'MODEL_RESPONSE')).toHaveLength(5);
  });
});
