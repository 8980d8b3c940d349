/**
 * `plumbline replay`: every attempt with its classification, delay and cost, from the log alone.
 */
import { describe, expect, it } from 'vitest';
import { ndjson, plumbline } from './helpers/cli.js';
import { harness } from './helpers/harness.js';

describe('plumbline replay', () => {
  it('shows each attempt with its classification, delay and cost, and --until stops early', async () => {
    await using h = await harness({
      script: [
        { kind: 'status', status: 529 },
        { kind: 'status', status: 429, headers: { 'retry-after': '1' } },
        { kind: 'json', value: { n: 'x' } },
        { kind: 'json', value: { n: 3 } },
      ],
    });
    const env = { ANTHROPIC_BASE_URL: h.fake.url };
    const run = await plumbline(
      ['run', 'test/fixtures/pipelines/patient.ts', '--store', h.dbPath, '--run-id', 'rp-1'],
      env,
    );
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/run rp-1 completed, cost \$0\.\d+, path ask/);
    const before = h.fake.count;

    const r = await plumbline(['replay', 'rp-1', '--store', h.dbPath]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(
      /MODEL_ERROR\s+ask\.calling → ask\.backoff .* attempt 1 retryable overloaded 529, delay \d+ ms, cost \$0\.000000/,
    );
    expect(r.stdout).toMatch(/MODEL_ERROR .* attempt 2 retryable rate_limit 429, delay 1000 ms/);
    expect(r.stdout).toMatch(
      /MODEL_RESPONSE\s+ask\.calling → ask\.ready .* attempt 3 invalid \[n: .*\], cost \$0\.000350/,
    );
    expect(r.stdout).toMatch(
      /MODEL_RESPONSE\s+ask\.calling → completed .* attempt 4 valid, cost \$0\.000350/,
    );
    expect(r.stdout).toMatch(/every recorded state matched/);
    expect(h.fake.count).toBe(before);

    const until = await plumbline([
      'replay',
      'rp-1',
      '--until',
      '3',
      '--json',
      '--store',
      h.dbPath,
    ]);
    const rows = ndjson(until.stdout) as Array<{
      seq?: number;
      summary?: boolean;
      state?: unknown;
    }>;
    expect(rows.filter((x) => !x.summary).map((x) => x.seq)).toEqual([1, 2, 3]);
    expect(rows.at(-1)).toMatchObject({ summary: true, seq: 3, state: { ask: 'backoff' } });
  });
});
