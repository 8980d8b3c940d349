/**
 * plumbline as a user gets it: `npm pack`, the tarball installed into a fresh project outside the
 * repository, then plain Node ESM, `npx plumbline` and a strict TypeScript consumer use it.
 *
 * The install unpacks the tarball into the project's node_modules and links there the packages
 * of plumbline's production dependency tree (from package-lock.json; the repository's copies,
 * so better-sqlite3 is not compiled again), as `npm install` would lay them out. Nothing else is
 * visible: an import of a dev dependency or of a file left out of `files` fails here. tsx is
 * left out on purpose, to show that plumbline itself needs no TypeScript loader.
 */
import { spawn } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeClaude, type FakeClaude } from '../src/testing/index.js';
import { ndjson, ROOT, type ChildResult } from './helpers/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'plumbline-consumer-'));
const app = join(dir, 'app');
const modules = join(app, 'node_modules');
const version = (
  JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }
).version;
let packed: { filename: string; files: Array<{ path: string }> };
let fake: FakeClaude;
let typecheck: Promise<ChildResult>;

/** Runs `cmd` and collects its output (killed after two minutes); `undefined` unsets a variable. */
function run(
  cmd: string,
  args: string[],
  cwd: string,
  env: Record<string, string | undefined> = {},
): Promise<ChildResult> {
  const merged: NodeJS.ProcessEnv = {
    ...process.env,
    PLUMBLINE_LOG_LEVEL: 'warn',
    npm_config_update_notifier: 'false',
    ...env,
  };
  // `undefined` unsets a variable the test runner's environment may carry.
  for (const [k, v] of Object.entries(merged)) if (v === undefined) delete merged[k];
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd,
      env: merged,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** The top-level packages of plumbline's production dependency tree, per package-lock.json. */
function productionPackages(): string[] {
  const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as {
    packages: Record<string, { dev?: boolean; optional?: boolean }>;
  };
  return Object.entries(lock.packages)
    .filter(([key, p]) => /^node_modules\/(@[^/]+\/)?[^/]+$/.test(key) && p.dev !== true)
    .map(([key]) => key.slice('node_modules/'.length))
    .filter((name) => name !== 'tsx' && existsSync(join(ROOT, 'node_modules', name)));
}

/** Installs the tarball as npm lays it out: the package, its dependencies, its bin link. */
async function install(tarball: string): Promise<void> {
  const pkg = join(modules, 'plumbline');
  mkdirSync(pkg, { recursive: true });
  const tar = await run('tar', ['-xzf', tarball, '-C', pkg, '--strip-components=1'], app);
  expect(tar.code, tar.stderr).toBe(0);
  for (const name of productionPackages()) {
    mkdirSync(dirname(join(modules, name)), { recursive: true });
    symlinkSync(join(ROOT, 'node_modules', name), join(modules, name), 'dir');
  }
  mkdirSync(join(modules, '.bin'));
  chmodSync(join(pkg, 'bin', 'plumbline.mjs'), 0o755);
  symlinkSync('../plumbline/bin/plumbline.mjs', join(modules, '.bin', 'plumbline'));
}

const PIPELINE = `import { z } from 'zod';
import { definePipeline, llm, step } from 'plumbline';

export default definePipeline({
  name: 'consumer',
  version: '1',
  input: z.object({ text: z.string() }),
  steps: [
    llm({
      name: 'classify',
      model: 'claude-sonnet-4-6',
      maxTokens: 100,
      prompt: ({ input }) => 'Classify: ' + input.text,
      output: z.object({ label: z.enum(['bug', 'other']) }),
    }),
    step({ name: 'shout', run: ({ outputs }) => ({ label: outputs.classify.label.toUpperCase() }) }),
  ],
});
`;

const MAIN = `import { createAnthropicClient, openSqliteStore, prepare, Runtime } from 'plumbline';
import { startFakeClaude } from 'plumbline/testing';
import pipeline from './pipeline.js';

const store = openSqliteStore(process.argv[2]);
const runtime = new Runtime({ store, model: createAnthropicClient({}) });
const r = await runtime.start(prepare(pipeline), { input: { text: 'it crashes' } });
await store.close();
console.log(JSON.stringify({ status: r.status, outputs: r.outputs, testing: typeof startFakeClaude }));
`;

/** A typed pipeline with a deliberate typo in a step output's field: must not compile. */
const TYPO_TS = `import { z } from 'zod';
import { pipeline } from 'plumbline';

export const typo = pipeline({ name: 'typo', version: '1', input: z.object({ text: z.string() }) })
  .llm({
    name: 'classify',
    model: 'claude-sonnet-4-6',
    prompt: ({ input }) => 'Classify: ' + input.text,
    output: z.object({ label: z.string() }),
  })
  .step({ name: 'shout', run: ({ outputs }) => outputs.classify.lable.toUpperCase() })
  .build();
`;

const CONSUMER_TS = `import { z } from 'zod';
import {
  createAnthropicClient,
  definePipeline,
  isPlumblineError,
  llm,
  openSqliteStore,
  prepare,
  Runtime,
  step,
  type RunResult,
} from 'plumbline';
import { startFakeClaude, type FakeClaude } from 'plumbline/testing';

const pipeline = definePipeline({
  name: 'typed',
  version: '1',
  input: z.object({ text: z.string() }),
  limits: { budgetUsd: 0.5 },
  steps: [
    llm({
      name: 'classify',
      model: 'claude-sonnet-4-6',
      prompt: ({ input }) => 'Classify: ' + input.text,
      output: z.object({ label: z.string() }),
    }),
    step({ name: 'count', run: ({ outputs }) => ({ steps: Object.keys(outputs).length }) }),
  ],
});

export async function main(): Promise<RunResult> {
  const fake: FakeClaude = await startFakeClaude({ script: [{ kind: 'valid' }] });
  const store = openSqliteStore(':memory:', { synchronous: 'FULL' });
  try {
    const runtime = new Runtime({ store, model: createAnthropicClient({ baseURL: fake.url }) });
    return await runtime.start(prepare(pipeline), { input: { text: 'x' } });
  } catch (e) {
    if (isPlumblineError(e)) console.error(e.code);
    throw e;
  } finally {
    await store.close();
    await fake.close();
  }
}
`;

beforeAll(async () => {
  mkdirSync(modules, { recursive: true });
  // dist/ is fresh (the int project's global setup builds it): pack it without building again.
  const pack = await run(
    'npm',
    ['pack', '--ignore-scripts', '--json', '--pack-destination', dir],
    ROOT,
  );
  expect(pack.code, pack.stderr).toBe(0);
  [packed] = JSON.parse(pack.stdout) as [typeof packed];
  await install(join(dir, packed.filename));
  writeFileSync(
    join(app, 'package.json'),
    JSON.stringify({ name: 'app', private: true, type: 'module' }),
  );
  writeFileSync(join(app, 'pipeline.js'), PIPELINE);
  writeFileSync(join(app, 'pipeline.ts'), PIPELINE);
  writeFileSync(join(app, 'main.js'), MAIN);
  writeFileSync(join(app, 'consumer.ts'), CONSUMER_TS);
  writeFileSync(join(app, 'typo.ts'), TYPO_TS);
  fake = await startFakeClaude({ script: () => ({ kind: 'json', value: { label: 'bug' } }) });
  writeFileSync(
    join(app, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        target: 'ES2022',
        lib: ['ES2023'],
        module: 'NodeNext',
        moduleResolution: 'NodeNext',
        strict: true,
        exactOptionalPropertyTypes: true,
        noUncheckedIndexedAccess: true,
        skipLibCheck: false,
        noEmit: true,
      },
      files: ['consumer.ts', 'typo.ts'],
    }),
  );
  // The slowest check (10-20 s on a busy machine): started now, awaited by its test.
  typecheck = run(
    process.execPath,
    [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'],
    app,
  );
});

afterAll(async () => {
  await fake?.close();
  rmSync(dir, { recursive: true, force: true });
});

const bin = (): string => join(modules, '.bin', 'plumbline');
const model = (): Record<string, string> => ({
  ANTHROPIC_BASE_URL: fake.url,
  ANTHROPIC_API_KEY: 'fake-key',
});

describe('the published package', () => {
  it('ships the build, the bin and the viewer page, and no tests, bench, CI or sources', () => {
    const files = packed.files.map((f) => f.path);
    for (const f of [
      'dist/index.js',
      'dist/index.d.ts',
      'dist/testing/index.js',
      'dist/testing/index.d.ts',
      'dist/bundle/index.js',
      'dist/bundle/testing/index.js',
      'dist/bundle/cli/main.js',
      'dist/bundle/examples/triage.js',
    ])
      expect(files).toContain(f);
    expect(files.filter((f) => f.startsWith('dist/bundle/chunks/')).length).toBeGreaterThan(0);
    expect(files).toContain('bin/plumbline.mjs');
    expect(files).toContain('src/viz/public/index.html');
    const stray = files.filter(
      (f) =>
        /^(test|bench|\.ci|examples|scratch)\//.test(f) ||
        /\.test\.|tsbuildinfo|\.stamp$|^dist\/bundle\/meta\.json$/.test(f) ||
        (f.startsWith('src/') && !f.startsWith('src/viz/public/')),
    );
    expect(stray).toEqual([]);
  });

  it('imports in plain Node ESM (no loader) and runs a .js pipeline against the fake Claude', async () => {
    const before = fake.count;
    const r = await run(process.execPath, ['main.js', join(dir, 'a.db')], app, model());
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({
      status: 'completed',
      outputs: { classify: { label: 'bug' }, shout: { label: 'BUG' } },
      testing: 'function',
    });
    expect(fake.count - before).toBe(1);
  });

  it('npx plumbline --version prints the package version', async () => {
    const r = await run('npx', ['--no', '--', 'plumbline', '--version'], app);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe(version);
  });

  it('npx plumbline run runs a .js pipeline; a .ts one without tsx is refused naming the fix', async () => {
    const before = fake.count;
    const db = join(dir, 'b.db');
    const r = await run(
      'npx',
      [
        '--no',
        '--',
        'plumbline',
        'run',
        'pipeline.js',
        '--input',
        '{"text":"boom"}',
        '--store',
        db,
      ],
      app,
      model(),
    );
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('completed');
    expect(fake.count - before).toBe(1);
    // The installed bin link itself (npx costs a second of npm each time).
    const runs = await run(bin(), ['runs', '--json', '--store', db], app);
    expect(runs.code, runs.stderr).toBe(0);
    expect(runs.stdout).toContain('"consumer"');

    const ts = await run(
      bin(),
      ['run', 'pipeline.ts', '--input', '{"text":"boom"}', '--store', db],
      app,
      model(),
    );
    expect(ts.code).toBe(2);
    expect(ts.stderr).toContain('TypeScript pipelines need tsx (npm install tsx)');
  });

  it('plumbline demo triages the sample tickets, routes, maps and runs the support agent from the compiled examples with the bundled fake, and replay finds their pipelines', async () => {
    const db = join(dir, 'demo.db');
    // No key and no base URL: the demo starts the fake Claude bundled in the package.
    const noClaude = { ANTHROPIC_API_KEY: undefined, ANTHROPIC_BASE_URL: undefined };
    const r = await run(bin(), ['demo', '--store', db], app, noClaude);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(
      /no ANTHROPIC_API_KEY: using the fake Claude at http:\/\/127\.0\.0\.1:\d+/,
    );
    expect(r.stdout.match(/^run \S+ completed, cost \$/gm)).toHaveLength(5);
    expect(r.stdout).toMatch(/path classify → draft → escalate → route/);
    expect(r.stdout).toMatch(/path classify → draft \(skipped\) → escalate \(skipped\) → route/);
    expect(r.stdout).toMatch(
      /^total cost \$\d+\.\d+ \(priced as if real; the fake served 9 requests\)$/m,
    );
    // The route and the map ran from the compiled examples too.
    expect(r.stdout).toMatch(/→ classify: billing → branch billing \(refund-request\) → reply/);
    expect(r.stdout).toMatch(/fan-out: 8 child runs .*, 5 at a time/);
    // The support agent too: its large refund waited and the demo approved it.
    expect(r.stdout).toMatch(/approval: sent automatically by the demo/);
    expect(r.stdout).toMatch(/refunded after approval by plumbline demo/);
    // The escalations (3) and the router's refund request (1) went to the default outbox under
    // the consumer's working directory.
    expect(readdirSync(join(app, '.plumbline', 'outbox')).length).toBe(4);
    // The agent's two refunds (the tool's, the approved one) went beside it.
    const refunds = readFileSync(join(app, '.plumbline', 'refunds.jsonl'), 'utf8');
    expect(refunds.trim().split('\n')).toHaveLength(2);

    // Runs record the compiled module inside the installed package (the bundle's copy of the
    // example, sharing its chunks with the CLI): replay loads it, no tsx.
    const runs = await run(bin(), ['runs', '--json', '--store', db], app);
    expect(runs.code, runs.stderr).toBe(0);
    const all = ndjson(runs.stdout) as Array<{
      runId: string;
      pipeline: string;
      module: string;
      status: string;
    }>;
    const roots = ['triage', 'router', 'summarise', 'support'];
    const file: Record<string, string> = { support: 'supportAgent' };
    const listed = all.filter((l) => roots.includes(l.pipeline));
    expect(roots.map((p) => listed.filter((l) => l.pipeline === p).length)).toEqual([5, 3, 1, 3]);
    for (const l of listed) {
      expect(l.status).toBe('completed');
      expect(l.module).toBe(
        join(
          realpathSync(modules),
          'plumbline',
          'dist',
          'bundle',
          'examples',
          `${file[l.pipeline] ?? l.pipeline}.js`,
        ),
      );
    }
    // A triage run, a routed run, the map's parent and an agent run (with its approval signal)
    // replay from the installed package.
    for (const p of roots) {
      // For the agent, the run whose refund waited for the demo's approval.
      const id =
        listed.find((l) => l.pipeline === p && (p !== 'support' || l.runId.startsWith('S-3003')))
          ?.runId ?? '';
      const replay = await run(bin(), ['replay', id, '--store', db], app, noClaude);
      expect(replay.code, replay.stderr).toBe(0);
      expect(replay.stdout).toMatch(/run\.started/);
      expect(replay.stdout).toMatch(
        /replayed \d+ events: state "completed", .*every recorded state matched/,
      );
    }
  });

  it('type-checks a strict TypeScript consumer (exactOptionalPropertyTypes, skipLibCheck off); a typo in outputs.<step>.<field> does not compile', async () => {
    const r = await typecheck;
    const errors = (r.stdout + r.stderr).split('\n').filter((l) => /error TS\d+/.test(l));
    // xstate 5.33's own setup.d.ts fails exactOptionalPropertyTypes when libraries are checked
    // (a bare `import type { AnyStateMachine } from 'xstate'` does the same): with
    // skipLibCheck those errors vanish. Nothing else may fail, plumbline's declarations least.
    const ours = errors.filter((l) => !l.includes('node_modules/xstate/'));
    // Exactly one error of ours: the deliberate typo in `outputs.classify.lable`.
    expect(ours).toHaveLength(1);
    expect(ours[0]).toMatch(/typo\.ts\(\d+,\d+\): error TS\d+: Property 'lable' does not exist/);
    expect(r.code === 0 || errors.length > 0).toBe(true);
  });
});
