/**
 * `npm run bench`: runs every figure in fresh child processes, interleaving the systems round by
 * round so a load spike from elsewhere hits them all alike, and writes BENCHMARKS.md (and the
 * raw results to bench/results/latest.json).
 *
 *   npm run bench                      all seven figures, 5 repetitions (about 13–16 minutes)
 *   npm run bench -- --quick           smoke run: small N, 2 repetitions, written to a temp file
 *   npm run bench -- --only peers,replay
 *   npm run bench -- --reps 3
 *   npm run bench -- --profile         CPU profile of the SQLite throughput run (bench/profile.ts)
 *   npm run bench -- --render          rewrite BENCHMARKS.md from bench/results/latest.json
 *   npm run bench -- --only memory --merge   re-measure some figures, keep the others
 * BENCH_QUICK=1 is the same as --quick.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { load1 } from './lib/proc.js';
import { renderReport, type Results } from './report.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const argv = process.argv.slice(2);
const flag = (name: string): boolean => argv.includes(`--${name}`);
const opt = (name: string): string | undefined => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : undefined;
};

if (flag('profile')) {
  const { profile } = await import('./profile.js');
  await profile(ROOT, flag('quick'));
  process.exit(0);
}

if (flag('render')) {
  // Re-renders BENCHMARKS.md from bench/results/latest.json (after editing bench/notes.md).
  const saved = JSON.parse(
    readFileSync(join(ROOT, 'bench/results/latest.json'), 'utf8'),
  ) as Results;
  writeFileSync(
    join(ROOT, 'BENCHMARKS.md'),
    renderReport(saved, readFileSync(join(ROOT, 'bench/notes.md'), 'utf8')),
  );
  process.stdout.write('re-rendered BENCHMARKS.md from bench/results/latest.json\n');
  process.exit(0);
}

const quick = flag('quick') || process.env.BENCH_QUICK === '1';
const only = new Set((opt('only') ?? 'plumbline,peers,replay,recovery,memory,cli').split(','));
const P = quick
  ? {
      reps: 2,
      runs: 200,
      inflight: 50,
      latency: 30,
      big: 1_000,
      kills: 2,
      memRuns: 1_000,
      memReps: 1,
      warmup: 50,
      spawns: 5,
    }
  : {
      reps: 5,
      runs: 1_000,
      inflight: 100,
      latency: 200,
      big: 10_000,
      kills: 20,
      memRuns: 10_000,
      memReps: 5,
      warmup: 1_000,
      spawns: 20,
    };
P.reps = Number(opt('reps') ?? P.reps);

/** Runs one measuring child and returns its RESULT json, or an error description. */
function child(label: string, args: string[], timeoutMs: number): Promise<Record<string, unknown>> {
  return new Promise((resolve) => {
    const started = Date.now();
    const c = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    c.stdout.on('data', (d: Buffer) => (out += d.toString()));
    c.stderr.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-4_000)));
    const timer = setTimeout(() => c.kill('SIGKILL'), timeoutMs);
    c.once('exit', (code, signal) => {
      clearTimeout(timer);
      const line = out.split('\n').find((l) => l.startsWith('RESULT '));
      const secs = ((Date.now() - started) / 1000).toFixed(1);
      if (line !== undefined) {
        process.stderr.write(`  ${label}: ok in ${secs} s (load ${load1()})\n`);
        resolve(JSON.parse(line.slice(7)) as Record<string, unknown>);
        return;
      }
      const why =
        signal === 'SIGKILL' ? `killed after ${timeoutMs / 1000} s` : `exit ${code ?? signal}`;
      process.stderr.write(`  ${label}: FAILED (${why})\n${err}\n`);
      resolve({ error: `${why}: ${err.trim().split('\n').slice(-6).join(' | ')}` });
    });
  });
}

const tsx = ['--import', 'tsx'];
const sizes = [
  '--runs',
  String(P.runs),
  '--inflight',
  String(P.inflight),
  '--latency',
  String(P.latency),
  '--warmup',
  String(P.warmup),
];
const fresh: Results = {
  quick,
  params: P,
  startedAt: new Date().toISOString(),
  machine: machine(),
  throughput: {},
  replay: {},
  recovery: [],
  memory: [],
};
// --merge: re-measure only the figures named by --only, keep the others from latest.json.
const results: Results = flag('merge')
  ? {
      ...(JSON.parse(readFileSync(join(ROOT, 'bench/results/latest.json'), 'utf8')) as Results),
      ...(only.has('memory') ? { memory: [] } : {}),
      ...(only.has('recovery') ? { recovery: [] } : {}),
      ...(only.has('replay') ? { replay: {} } : {}),
      ...(only.has('cli') ? { cli: [] } : {}),
    }
  : fresh;
if (flag('merge')) {
  if (only.has('plumbline'))
    for (const k of ['sqlite', 'sqlite-full', 'jetstream']) delete results.throughput[k];
  if (only.has('peers'))
    for (const k of ['restate', 'dbos', 'langgraph']) delete results.throughput[k];
  results.merged = [
    ...(results.merged ?? []),
    `${[...only].join(',')} re-measured ${fresh.startedAt}`,
  ];
}
const t0 = Date.now();
const push = (key: string, r: Record<string, unknown>): void => {
  (results.throughput[key] ??= []).push(r);
};

for (let rep = 1; rep <= P.reps; rep++) {
  process.stderr.write(`round ${rep}/${P.reps}\n`);
  if (only.has('plumbline')) {
    push(
      'sqlite',
      await child(
        'plumbline sqlite',
        [...tsx, 'bench/plumbline.ts', '--backend', 'sqlite', ...sizes],
        180_000,
      ),
    );
    push(
      'sqlite-full',
      await child(
        'plumbline sqlite FULL',
        [...tsx, 'bench/plumbline.ts', '--backend', 'sqlite-full', ...sizes],
        180_000,
      ),
    );
    push(
      'jetstream',
      await child(
        'plumbline jetstream',
        [...tsx, 'bench/plumbline.ts', '--backend', 'jetstream', ...sizes],
        180_000,
      ),
    );
  }
  if (only.has('peers')) {
    for (const peer of ['restate', 'dbos', 'langgraph'])
      push(peer, await child(peer, [...tsx, `bench/peers/${peer}.ts`, ...sizes], 240_000));
  }
  if (only.has('replay')) {
    for (const backend of ['sqlite', 'jetstream']) {
      (results.replay[backend] ??= []).push(
        await child(
          `replay ${backend}`,
          [...tsx, 'bench/replay.ts', '--backend', backend, '--big', String(P.big)],
          120_000,
        ),
      );
    }
  }
  if (only.has('memory') && rep <= P.memReps) {
    results.memory.push(
      await child(
        'memory',
        // Long backoffs let go as a worker does by default (10 s); a retry-after long enough
        // that no run comes due while the others park.
        [
          '--expose-gc',
          ...tsx,
          'bench/memory.ts',
          '--runs',
          String(P.memRuns),
          '--unload-ms',
          '10000',
          '--retry-after',
          '3600',
        ],
        240_000,
      ),
    );
  }
}
if (only.has('recovery')) {
  results.recovery.push(
    await child(
      'recovery, default worker settings',
      [...tsx, 'bench/recovery.ts', '--kills', String(P.kills)],
      600_000,
    ),
  );
  // The same with a shorter ack wait, to separate the take-over from the wait for redelivery.
  results.recovery.push(
    await child(
      'recovery, ack wait 1s',
      [
        ...tsx,
        'bench/recovery.ts',
        '--kills',
        String(Math.max(2, Math.round(P.kills / 2))),
        '--ack-wait',
        '1s',
      ],
      600_000,
    ),
  );
}
if (only.has('cli')) {
  // The CLI runs from dist/, as users run it: built from this checkout first.
  execFileSync('npm', ['run', 'build'], { cwd: ROOT, stdio: 'ignore' });
  (results.cli ??= []).push(
    await child('CLI start', [...tsx, 'bench/cliStart.ts', '--spawns', String(P.spawns)], 600_000),
  );
}
if (!flag('merge')) {
  results.finishedAt = new Date().toISOString();
  results.minutes = (Date.now() - t0) / 60_000;
}

const notes = readFileSync(join(ROOT, 'bench/notes.md'), 'utf8');
const md = renderReport(results, notes);
if (quick) {
  const dir = mkdtempSync(join(tmpdir(), 'plumbline-bench-quick-'));
  writeFileSync(join(dir, 'BENCHMARKS.md'), md);
  writeFileSync(join(dir, 'results.json'), `${JSON.stringify(results, null, 1)}\n`);
  process.stdout.write(`${md}\n(quick run: written to ${dir}, BENCHMARKS.md left alone)\n`);
} else {
  mkdirSync(join(ROOT, 'bench/results'), { recursive: true });
  // Formatted as the repository's prettier would (format:check covers bench/).
  const { format, resolveConfig } = await import('prettier');
  const file = join(ROOT, 'bench/results/latest.json');
  const style = (await resolveConfig(file)) ?? {};
  writeFileSync(file, await format(JSON.stringify(results), { ...style, filepath: file }));
  writeFileSync(join(ROOT, 'BENCHMARKS.md'), md);
  process.stdout.write(
    `wrote BENCHMARKS.md and bench/results/latest.json in ${((Date.now() - t0) / 60_000).toFixed(1)} min\n`,
  );
}

function sh(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
      .toString()
      .trim();
  } catch (e) {
    return `unavailable (${(e as Error).message.split('\n')[0]})`;
  }
}

function pkgVersion(name: string): string {
  try {
    return (
      JSON.parse(
        readFileSync(join(ROOT, 'bench/peers/node_modules', name, 'package.json'), 'utf8'),
      ) as { version: string }
    ).version;
  } catch {
    return 'not installed';
  }
}

function machine(): Results['machine'] {
  return {
    cores: cpus().length,
    cpu: cpus()[0]?.model ?? 'unknown',
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    nats: sh('nats-server', ['--version']),
    postgres: sh('psql', [
      'postgres://postgres@127.0.0.1:5432/postgres',
      '-tAc',
      'SHOW server_version',
    ]),
    sqlite: sh(process.execPath, [
      '-e',
      "const D=require('better-sqlite3');console.log(new D(':memory:').prepare('select sqlite_version() v').get().v)",
    ]),
    restate: `${pkgVersion('@restatedev/restate-server')} (server), ${pkgVersion('@restatedev/restate-sdk')} (SDK)`,
    dbos: pkgVersion('@dbos-inc/dbos-sdk'),
    langgraph: `${pkgVersion('@langchain/langgraph')} + checkpoint-sqlite ${pkgVersion('@langchain/langgraph-checkpoint-sqlite')}`,
    commit: sh('git', ['rev-parse', '--short', 'HEAD']),
    dirty: sh('git', ['status', '--short', '--', 'src'])
      .split('\n')
      .filter((l) => l !== '').length,
    load: load1(),
  };
}
