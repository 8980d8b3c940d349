/**
 * Issue 14: a verb loads only what it needs. `--help` and `--version` import no model SDK, no
 * zod, no SQLite driver and no pino; `runs` reads the store without the Anthropic client. The
 * modules are seen through a resolve hook in the child, printing each resolved URL on stderr.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { AUTO_BUDGET_MARGIN } from '../src/runtime/forecast.js';
import { BUDGET_AUTO_HELP, HELP_AUTO_BUDGET_MARGIN } from '../src/cli/forecast.js';
import { runNode } from './helpers/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'plumbline-lazy-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const HOOK = join(dir, 'hook.mjs');
const RESOLVE = `export async function resolve(s, c, next) {
  const r = await next(s, c);
  process.stderr.write('RESOLVED ' + r.url + '\\n');
  return r;
}`;
writeFileSync(
  HOOK,
  `import { register } from 'node:module';\nregister('data:text/javascript,' + encodeURIComponent(${JSON.stringify(RESOLVE)}));\n`,
);

/** Runs the CLI under the hook; returns its exit code, stdout and the modules it resolved. */
async function loaded(
  args: string[],
): Promise<{ code: number | null; out: string; urls: string[] }> {
  const r = await runNode(['--import', HOOK, 'bin/plumbline.mjs', ...args]);
  const urls = r.stderr
    .split('\n')
    .filter((l) => l.startsWith('RESOLVED '))
    .map((l) => l.slice('RESOLVED '.length));
  return { code: r.code, out: r.stdout, urls };
}

const HEAVY = ['/@anthropic-ai/sdk/', '/zod/', '/better-sqlite3/', '/pino/', '/xstate/'];

describe('start of a verb (issue 14)', () => {
  it('--help and --version load none of the SDK, zod, better-sqlite3, pino, xstate', async () => {
    for (const args of [['--help'], ['--version'], ['runs', '--help']]) {
      const r = await loaded(args);
      expect(r.code).toBe(0);
      expect(r.out).not.toBe('');
      // The hook saw the CLI itself: the check below is not vacuous.
      expect(r.urls.some((u) => u.endsWith('/dist/cli/main.js'))).toBe(true);
      expect(r.urls.filter((u) => HEAVY.some((h) => u.includes(h)))).toEqual([]);
    }
  });

  it('runs reads the store (better-sqlite3) without the Anthropic client', async () => {
    const r = await loaded(['runs', '--store', join(dir, 'store.db')]);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^run\s+pipeline/);
    expect(r.urls.some((u) => u.includes('/better-sqlite3/'))).toBe(true);
    expect(r.urls.filter((u) => u.includes('/@anthropic-ai/sdk/client.mjs'))).toEqual([]);
  });

  it("--budget-usd auto's help names the margin the forecast uses", () => {
    expect(HELP_AUTO_BUDGET_MARGIN).toBe(AUTO_BUDGET_MARGIN);
    expect(BUDGET_AUTO_HELP).toContain(`× ${AUTO_BUDGET_MARGIN} `);
  });
});
