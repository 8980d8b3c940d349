/**
 * Issue 14: a verb loads only what it needs. `--help` and `--version` import no model SDK, no
 * zod, no SQLite driver and no pino; `runs` reads the store without the Anthropic client. The
 * modules are seen through a resolve hook in the child, printing each resolved URL on stderr, and
 * the CommonJS module cache printed at exit (the `@nats-io` packages are loaded with `require`);
 * the CLI runs from the bundle, whose chunks are mapped back to the modules in them.
 * `runs` and `cost` (read verbs) open the store alone: no schemas, runtime, logger or bus.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { AUTO_BUDGET_MARGIN } from '../src/runtime/forecast.js';
import { BUDGET_AUTO_HELP, HELP_AUTO_BUDGET_MARGIN } from '../src/cli/forecast.js';
import { openJetStreamStore } from '../src/store/jetstream.js';
import { openSqliteStore } from '../src/store/sqlite.js';
import type { Store } from '../src/store/types.js';
import { ROOT, runNode } from './helpers/cli.js';
import { outcome, started, stepDone } from './helpers/envelopes.js';
import { startNatsServer } from './helpers/natsServer.js';

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
  [
    `import { createRequire, register } from 'node:module';`,
    `register('data:text/javascript,' + encodeURIComponent(${JSON.stringify(RESOLVE)}));`,
    `const cache = createRequire(import.meta.url).cache;`,
    `process.on('exit', () => { for (const f of Object.keys(cache)) process.stderr.write('RESOLVED file://' + f + '\\n'); });`,
    '',
  ].join('\n'),
);

/**
 * The modules in each file of the bundle (dist/bundle/meta.json, written by scripts/bundle.mjs),
 * as URLs of the files tsc wrote under dist/: what a loaded chunk holds.
 */
function bundled(): Map<string, string[]> {
  const meta = JSON.parse(readFileSync(join(ROOT, 'dist', 'bundle', 'meta.json'), 'utf8')) as {
    outputs: Record<string, { inputs: Record<string, unknown> }>;
  };
  return new Map(
    Object.entries(meta.outputs).map(([out, o]) => [
      pathToFileURL(join(ROOT, out)).href,
      Object.keys(o.inputs).map((i) => pathToFileURL(join(ROOT, i)).href),
    ]),
  );
}

/**
 * Runs the CLI under the hook; returns its exit code, stdout and the modules it loaded: each
 * URL resolved, and for a file of the bundle the dist/ modules in it.
 */
async function loaded(
  args: string[],
): Promise<{ code: number | null; out: string; urls: string[] }> {
  const r = await runNode(['--import', HOOK, 'bin/plumbline.mjs', ...args]);
  const chunks = bundled();
  const urls = r.stderr
    .split('\n')
    .filter((l) => l.startsWith('RESOLVED '))
    .map((l) => l.slice('RESOLVED '.length))
    .flatMap((u) => [u, ...(chunks.get(u) ?? [])]);
  // The CLI ran from the bundle: the checks below look through its chunks.
  expect(urls.some((u) => u.includes('/dist/bundle/cli/main.js'))).toBe(true);
  return { code: r.code, out: r.stdout, urls };
}

const HEAVY = ['/@anthropic-ai/sdk/', '/zod/', '/better-sqlite3/', '/pino/', '/xstate/'];
/** What a read verb (`runs`, `cost`) must not load: it needs the store, nothing of the runtime. */
const READ_VERB_HEAVY = [
  '/@anthropic-ai/sdk/',
  '/zod/',
  '/pino/',
  '/xstate/',
  '/@opentelemetry/',
  '/dist/runtime/driver.js',
  '/dist/machines/events.js',
  '/dist/bus/',
];

/** Records a completed run that cost $0.50 (so `runs` asks the store for its unconfirmed USD). */
async function recordCostlyRun(store: Store, runId: string): Promise<void> {
  const at = Date.UTC(2026, 10, 3, 12);
  await store.log.append(
    runId,
    [
      started('lazy-p', at),
      outcome(at + 1, 0.5, 'claude-haiku-4-5'),
      stepDone(1, 'completed', 0.5),
    ],
    'no_stream',
  );
}

/**
 * Runs `runs` and `cost --by model` on `store`, checks each answered (the run's row, its model's
 * cost) without loading the runtime's heavy modules, and returns what each loaded.
 */
async function readVerbs(
  store: string,
  runId: string,
): Promise<Array<{ code: number | null; out: string; urls: string[] }>> {
  const runs = await loaded(['runs', '--store', store]);
  expect(runs.code).toBe(0);
  expect(runs.out).toMatch(/^run\s+pipeline/);
  expect(runs.out).toMatch(
    new RegExp(`${runId}\\s+lazy-p\\s+1\\s+completed\\s+\\$0\\.500000\\s+-\\s+3\\s`),
  );
  const cost = await loaded(['cost', '--by', 'model', '--store', store]);
  expect(cost.code).toBe(0);
  expect(cost.out).toMatch(/claude-haiku-4-5\s+1\s/);
  for (const r of [runs, cost])
    expect(r.urls.filter((u) => READ_VERB_HEAVY.some((h) => u.includes(h)))).toEqual([]);
  return [runs, cost];
}

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

  it('runs and cost read the store without the SDK, zod, pino, xstate, OpenTelemetry or the runtime', async () => {
    const db = join(dir, 'store.db');
    const store = openSqliteStore(db);
    await recordCostlyRun(store, 'lazy-1');
    await store.close();
    // The verb did its work: the run's row, read through better-sqlite3.
    const r = await readVerbs(db, 'lazy-1');
    for (const x of r) expect(x.urls.some((u) => u.includes('/better-sqlite3/'))).toBe(true);
  });

  it('runs and cost on JetStream read the index and rollups without zod or the runtime', async () => {
    await using server = await startNatsServer();
    const store = await openJetStreamStore({ servers: server.url });
    await recordCostlyRun(store, 'lazy-js');
    await store.close();
    // The run's row: its index entry was read and checked (by hand: parseIndexEntry).
    const r = await readVerbs(server.url, 'lazy-js');
    for (const x of r) {
      // The NATS client, bundled into one CommonJS file by scripts/bundle.mjs.
      expect(x.urls.some((u) => u.endsWith('/dist/bundle/vendor/nats.cjs'))).toBe(true);
      expect(x.urls.filter((u) => u.includes('/node_modules/@nats-io/'))).toEqual([]);
      expect(x.urls.filter((u) => u.includes('/dist/store/jetstreamSchemas.js'))).toEqual([]);
      // The read path's light modules are in two chunks (scripts/bundleGroups.mjs): 8 files of
      // the bundle, where the chunks esbuild cut by `import()` made 26.
      const files = new Set(x.urls.filter((u) => /\/dist\/bundle\/.+\.js$/.test(u)));
      expect(files.size).toBeLessThanOrEqual(10);
    }
  });

  it("--budget-usd auto's help names the margin the forecast uses", () => {
    expect(HELP_AUTO_BUDGET_MARGIN).toBe(AUTO_BUDGET_MARGIN);
    expect(BUDGET_AUTO_HELP).toContain(`× ${AUTO_BUDGET_MARGIN} `);
  });
});
