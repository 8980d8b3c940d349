/**
 * Defects found by trying the CLI as a new user would (issue 10, item 11): a fork with new
 * limits that could never replay, a run left `running` when no model is configured, raw
 * ZodErrors for bad numbers, a bad retry policy found only mid-run, and `replay --json` saying
 * `running` for a parked run. Each through the real CLI against the fake Claude.
 */
import { describe, expect, it } from 'vitest';
import { ndjson, plumbline } from './helpers/cli.js';
import { harness, ofType, type Harness } from './helpers/harness.js';

const BUDGETED = 'test/fixtures/pipelines/budgeted.ts';
const oneLine = (text: string): string[] => text.trim().split('\n');
const noModel = { ANTHROPIC_API_KEY: '', ANTHROPIC_BASE_URL: '' };
/** Tests that spawn the CLI ten times or so: generous on a loaded two-core machine. */
const SLOW = { timeout: 300_000 };

interface ReplaySummary {
  summary: true;
  status: string;
  verified: boolean;
}

async function replaySummary(h: Harness, runId: string): Promise<ReplaySummary> {
  const r = await plumbline(['replay', runId, '--store', h.dbPath, '--json']);
  expect(r.code, r.stderr).toBe(0);
  return ndjson(r.stdout).at(-1) as ReplaySummary;
}

/**
 * A run of the five-call pipeline parked on its budget after one valid call: the budget is the
 * first call's worst case (read from a probe run) plus less than one call's actual cost.
 */
async function parkedOnBudget(h: Harness, runId: string): Promise<number> {
  const env = { ANTHROPIC_BASE_URL: h.fake.url };
  const input = ['--input', '{"topic":"owls"}', '--store', h.dbPath];
  const probe = await plumbline(
    ['run', BUDGETED, ...input, '--run-id', `${runId}-probe`, '--budget-usd', '0'],
    env,
  );
  expect(probe.code, probe.stderr).toBe(3);
  const worst = ofType(await h.events(`${runId}-probe`), 'ATTEMPT')[0]?.event.estimate.usd ?? 0;
  expect(worst).toBeGreaterThan(0);
  const budget = (worst + 0.0001).toFixed(6);
  const run = await plumbline(
    ['run', BUDGETED, ...input, '--run-id', runId, '--budget-usd', budget],
    env,
  );
  expect(run.code, run.stderr).toBe(3);
  const events = await h.events(runId);
  expect(events.at(-1)?.state.status).toBe('parked');
  expect(events.at(-1)?.event.type).toBe('ATTEMPT');
  expect(ofType(events, 'MODEL_RESPONSE').length).toBeGreaterThanOrEqual(1);
  return events.length;
}

describe('fork with new limits', SLOW, () => {
  it('a fork at a parked seq with --budget-usd replays, verifies and resumes to completion', async () => {
    await using h = await harness({ script: () => ({ kind: 'json', value: { note: 'ok' } }) });
    const env = { ANTHROPIC_BASE_URL: h.fake.url };
    const at = await parkedOnBudget(h, 'src');
    const source = await h.events('src');
    const calls = ofType(source, 'MODEL_RESPONSE').length;
    const before = h.fake.count;
    // Raised budget, and an iteration cap that lets exactly one more call through.
    const fork = await plumbline(
      [
        'fork',
        'src',
        '--at',
        String(at),
        '--run-id',
        'fork-1',
        '--budget-usd',
        '1',
        '--max-iterations',
        String(calls + 1),
        '--store',
        h.dbPath,
        '--json',
      ],
      env,
    );
    expect(fork.code, fork.stderr).toBe(3);
    expect(ndjson(fork.stdout)[0]).toMatchObject({ runId: 'fork-1', status: 'parked' });
    expect(h.fake.count - before).toBe(1);
    const forked = await h.events('fork-1');
    // The copied decisions fold under the limits they were made under; the new ones follow.
    expect(forked[0]?.event).toMatchObject({
      type: 'run.started',
      limits: (source[0]?.event as { limits: unknown }).limits,
      forkedFrom: { runId: 'src', seq: at },
    });
    expect(forked.slice(1, at).map((e) => e.event)).toEqual(source.slice(1).map((e) => e.event));
    expect(forked[at]?.event).toMatchObject({
      type: 'RESUME',
      budgetUsd: 1,
      maxIterations: calls + 1,
    });
    expect(forked.at(-1)?.state.status).toBe('parked');

    expect(await replaySummary(h, 'fork-1')).toMatchObject({ status: 'parked', verified: true });
    const verify = await plumbline(['verify', 'fork-1', '--store', h.dbPath]);
    expect(verify.code, verify.stdout + verify.stderr).toBe(0);

    const resumed = await plumbline(
      ['resume', 'fork-1', '--max-iterations', '50', '--store', h.dbPath, '--json'],
      env,
    );
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(ndjson(resumed.stdout)[0]).toMatchObject({ runId: 'fork-1', status: 'completed' });
    expect(ofType(await h.events('fork-1'), 'MODEL_RESPONSE').map((e) => e.event.step)).toEqual([
      'one',
      'two',
      'three',
      'four',
      'five',
    ]);
    expect(await replaySummary(h, 'fork-1')).toMatchObject({
      status: 'completed',
      verified: true,
    });
    const all = await plumbline(['verify', '--all', '--store', h.dbPath]);
    expect(all.code, all.stdout + all.stderr).toBe(0);
  });

  it('refuses, writing nothing, limits under which the copied decisions come out differently', async () => {
    await using h = await harness({ script: () => ({ kind: 'json', value: { note: 'ok' } }) });
    const env = { ANTHROPIC_BASE_URL: h.fake.url };
    await parkedOnBudget(h, 'src');
    const firstResponse = ofType(await h.events('src'), 'MODEL_RESPONSE')[0]?.seq ?? 0;
    const r = await plumbline(
      [
        'fork',
        'src',
        '--at',
        String(firstResponse),
        '--run-id',
        'fork-low',
        '--budget-usd',
        '0',
        '--store',
        h.dbPath,
      ],
      env,
    );
    expect(r.code, r.stderr).toBe(2);
    expect(oneLine(r.stderr)).toHaveLength(1);
    expect(r.stderr).toMatch(
      /cannot fork run src at seq \d+ with --budget-usd 0: the copied ATTEMPT at seq 2 was decided under the source's limits .*fork at a seq where the run is parked/,
    );
    expect(await h.events('fork-low')).toHaveLength(0);
    const all = await plumbline(['verify', '--all', '--store', h.dbPath]);
    expect(all.code, all.stdout + all.stderr).toBe(0);
  });

  it('checks the new run id with the same rule as run', async () => {
    await using h = await harness({ script: () => ({ kind: 'json', value: { note: 'ok' } }) });
    const env = { ANTHROPIC_BASE_URL: h.fake.url };
    await parkedOnBudget(h, 'src');
    for (const verb of ['fork', 'run']) {
      const args =
        verb === 'fork'
          ? ['fork', 'src', '--at', '1']
          : ['run', BUDGETED, '--input', '{"topic":"owls"}'];
      const r = await plumbline([...args, '--run-id', 'bad id!', '--store', h.dbPath], env);
      expect(r.code, verb).toBe(2);
      expect(oneLine(r.stderr)).toHaveLength(1);
      expect(r.stderr).toMatch(
        /run id 'bad id!' is invalid: use 1-128 letters, digits, '-' or '_'/,
      );
    }
    expect(await h.events('bad id!')).toHaveLength(0);
  });
});

describe('no model configured', SLOW, () => {
  it('run, fork and resume refuse before writing anything; a pipeline without llm steps runs', async () => {
    await using h = await harness({ script: () => ({ kind: 'json', value: { note: 'ok' } }) });
    const at = await parkedOnBudget(h, 'src');
    const runsBefore = (await h.store.log.listRuns()).length;
    const cases = [
      ['run', BUDGETED, '--input', '{"topic":"owls"}', '--run-id', 'no-model'],
      ['fork', 'src', '--at', String(at), '--run-id', 'no-model-fork', '--budget-usd', '1'],
      ['resume', 'src', '--budget-usd', '1'],
    ];
    for (const args of cases) {
      const r = await plumbline([...args, '--store', h.dbPath], noModel);
      expect(r.code, `${args[0]}: ${r.stderr}`).toBe(2);
      expect(oneLine(r.stderr)).toHaveLength(1);
      expect(r.stderr).toMatch(
        /no model configured: set ANTHROPIC_API_KEY \(or ANTHROPIC_BASE_URL for a fake Claude/,
      );
    }
    expect((await h.store.log.listRuns()).length).toBe(runsBefore);
    // The parked run was not resumed into a `running` state nobody drives.
    expect(await h.events('src')).toHaveLength(at);
    expect((await h.store.log.getRun('src'))?.status).toBe('parked');

    const plain = await plumbline(
      ['run', 'test/fixtures/pipelines/plain.js', '--input', '{"n":1}', '--store', h.dbPath],
      noModel,
    );
    expect(plain.code, plain.stderr).toBe(0);
  });
});

describe('numbers on the command line', () => {
  it.each([
    ['--max-iterations', '0', /--max-iterations must be a whole number >= 1, got '0'/],
    ['--max-iterations', '1.5', /--max-iterations must be a whole number >= 1, got '1.5'/],
    ['--max-iterations', '1e3', /--max-iterations must be a whole number >= 1, got '1e3'/],
    ['--budget-usd', '-1', /--budget-usd must be a number >= 0, e.g. 0.25, got '-1'/],
    ['--budget-usd', 'abc', /--budget-usd must be a number >= 0, e.g. 0.25, got 'abc'/],
    ['--budget-usd', '', /--budget-usd must be a number >= 0, e.g. 0.25, got ''/],
    ['--deadline', '5 parsecs', /--deadline '5 parsecs' is not a duration: use e.g. 500ms/],
  ])('run %s %j is a one-line usage error, exit 2, no run', async (flag, value, message) => {
    await using h = await harness();
    const r = await plumbline(
      ['run', BUDGETED, '--input', '{"topic":"owls"}', '--store', h.dbPath, flag, value],
      { ANTHROPIC_BASE_URL: h.fake.url },
    );
    expect(r.code, r.stderr).toBe(2);
    expect(oneLine(r.stderr)).toHaveLength(1);
    expect(r.stderr).toMatch(message);
    expect(r.stderr).not.toMatch(/ZodError|unexpected/);
    expect(await h.store.log.listRuns()).toHaveLength(0);
    expect(h.fake.count).toBe(0);
  });

  it.each([
    [['replay', 'x', '--until', '0'], /--until must be a whole number >= 1, got '0'/],
    [['fork', 'x', '--at', '2.5'], /--at must be a whole number >= 1, got '2.5'/],
    [['resume', 'x', '--max-iterations', '-3'], /--max-iterations must be a whole number >= 1/],
    [['viz', '--port', '70000'], /--port must be a port from 0 \(any free port\) to 65535/],
    [['runs', '--stranded', '--older-than', 'soon'], /--older-than 'soon' is not a duration/],
  ])('%j is a one-line usage error naming the flag', async (args, message) => {
    await using h = await harness();
    const r = await plumbline([...args, '--store', h.dbPath]);
    expect(r.code, r.stderr).toBe(2);
    expect(oneLine(r.stderr)).toHaveLength(1);
    expect(r.stderr).toMatch(message);
  });
});

describe('retry policy', () => {
  it('an invalid policy is refused when the pipeline loads, naming the step and the field', async () => {
    await using h = await harness();
    const r = await plumbline(['run', 'test/fixtures/pipelines/badRetry.ts', '--store', h.dbPath], {
      ANTHROPIC_BASE_URL: h.fake.url,
    });
    expect(r.code, r.stderr).toBe(2);
    expect(oneLine(r.stderr)).toHaveLength(1);
    expect(r.stderr).toMatch(
      /pipeline 'bad-retry' step 'ask': retry.baseMs must be a finite number of ms >= 0 \(got -1\)/,
    );
    expect(await h.store.log.listRuns()).toHaveLength(0);
    expect(h.fake.count).toBe(0);
  });
});

describe('replay --json status', SLOW, () => {
  it('says parked, killed and failed as the run does', async () => {
    await using h = await harness({ script: () => ({ kind: 'json', value: { note: 'ok' } }) });
    await parkedOnBudget(h, 'parked-1');
    expect(await replaySummary(h, 'parked-1')).toMatchObject({
      status: 'parked',
      verified: true,
    });
    const kill = await plumbline(['kill', 'parked-1', '--store', h.dbPath]);
    expect(kill.code, kill.stderr).toBe(0);
    expect(await replaySummary(h, 'parked-1')).toMatchObject({
      status: 'killed',
      verified: true,
    });

    h.fake.setScript(() => ({ kind: 'refusal' }));
    const failed = await plumbline(
      ['run', BUDGETED, '--input', '{"topic":"owls"}', '--store', h.dbPath, '--run-id', 'f-1'],
      { ANTHROPIC_BASE_URL: h.fake.url },
    );
    expect(failed.code, failed.stderr).toBe(1);
    expect(await replaySummary(h, 'f-1')).toMatchObject({ status: 'failed', verified: true });
    expect((await h.store.log.getRun('f-1'))?.status).toBe('failed');
  });
});
