/**
 * Bad input: each is a one-line error naming the fix, exit code 2, and nothing in the log.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openSqliteStore } from '../src/store/sqlite.js';
import { plumbline } from './helpers/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'plumbline-bad-'));
const store = join(dir, 'bad.db');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function runsIn(path: string): Promise<number> {
  if (!existsSync(path)) return 0;
  const s = openSqliteStore(path);
  const n = (await s.log.listRuns()).length;
  await s.close();
  return n;
}

const oneLine = (text: string): string[] => text.trim().split('\n');

describe('bad input', () => {
  it('a module that does not export a pipeline', async () => {
    const r = await plumbline(['run', 'test/fixtures/pipelines/notAPipeline.ts', '--store', store]);
    expect(r.code).toBe(2);
    expect(oneLine(r.stderr)).toHaveLength(1);
    expect(r.stderr).toMatch(
      /does not default-export a pipeline: add `export default definePipeline/,
    );
    expect(await runsIn(store)).toBe(0);
  });

  it('a pipeline file that does not exist', async () => {
    const r = await plumbline(['run', 'nope/missing.ts', '--store', store]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/pipeline file not found: nope\/missing.ts/);
  });

  it('--input that is not JSON', async () => {
    const r = await plumbline(['run', 'examples/triage.ts', '--store', store, '--input', '{id: 1']);
    expect(r.code).toBe(2);
    expect(oneLine(r.stderr)).toHaveLength(1);
    expect(r.stderr).toMatch(/--input is not valid JSON .*pass a JSON object or @file.json/);
    expect(await runsIn(store)).toBe(0);
  });

  it('--input failing the input schema', async () => {
    const r = await plumbline([
      'run',
      'examples/triage.ts',
      '--store',
      store,
      '--input',
      '{"id":"T-1","subject":3}',
    ]);
    expect(r.code).toBe(2);
    expect(oneLine(r.stderr)).toHaveLength(1);
    expect(r.stderr).toMatch(
      /input does not match pipeline 'triage' input schema: from: .*subject: /,
    );
    expect(await runsIn(store)).toBe(0);
  });

  it('an unknown run id, for resume and replay', async () => {
    for (const verb of ['resume', 'replay']) {
      const r = await plumbline([verb, 'no-such-run', '--store', store]);
      expect(r.code, verb).toBe(2);
      expect(oneLine(r.stderr)).toHaveLength(1);
      expect(r.stderr).toMatch(/unknown run id 'no-such-run': list runs with `plumbline runs`/);
    }
    expect(await runsIn(store)).toBe(0);
  });

  it('an unknown option is a usage error', async () => {
    const r = await plumbline(['runs', '--store', store, '--colour']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/unknown option '--colour'/);
  });
});
