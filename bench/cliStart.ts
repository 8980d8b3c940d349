/**
 * How long a verb of the built CLI takes from spawn to exit (issue 14: a verb starts in
 * ≤ 150 ms). `plumbline demo` fills a SQLite store and a JetStream store (a nats-server of its
 * own) with the demo's runs; then each command is spawned `--spawns` times, the commands taking
 * turns, as a user runs them: `node bin/plumbline.mjs <verb>` over dist/bundle/. Wall time is spawn to
 * exit; CPU is the child's own (user + system, read by a preloaded module at exit).
 * `node -e 0` is measured in the same loop: what Node itself costs to start on this machine.
 * Needs dist/ (`npm run build`; `npm run bench` builds it first).
 * Usage: node --import tsx bench/cliStart.ts [--spawns 20]
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startNatsServer } from '../test/helpers/natsServer.js';
import { emitResult, load1, numArg } from './lib/proc.js';
import { percentile } from './lib/stats.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BIN = join(ROOT, 'bin/plumbline.mjs');
const SPAWNS = numArg('spawns', 20);
if (!existsSync(join(ROOT, 'dist/bundle/cli/main.js')))
  throw new Error('dist/ is missing: run `npm run build` first');

/** Prints the process's CPU (ms) on stderr at exit: loaded with --import before the CLI. */
const CPU_AT_EXIT = `data:text/javascript,${encodeURIComponent(
  "import { writeSync } from 'node:fs'; process.on('exit', () => { const u = process.cpuUsage(); writeSync(2, '\\nCPU_MS ' + (u.user + u.system) / 1000 + '\\n'); });",
)}`;

const dir = mkdtempSync(join(tmpdir(), 'plumbline-clistart-'));
const env = { ...process.env };
delete env.ANTHROPIC_API_KEY;
delete env.PLUMBLINE_STORE;
const nats = await startNatsServer();
const stores = { sqlite: join(dir, 'demo.db'), jetstream: nats.url };

try {
  for (const store of Object.values(stores)) {
    const r = spawnSync(process.execPath, [BIN, 'demo', '--store', store], {
      cwd: dir,
      env,
      encoding: 'utf8',
      timeout: 180_000,
    });
    if (r.status !== 0) throw new Error(`demo on ${store} failed: ${r.stderr}`);
  }

  const commands: Record<string, string[]> = { 'node -e 0': ['-e', '0'] };
  commands['plumbline --version'] = [BIN, '--version'];
  for (const [name, store] of Object.entries(stores)) {
    commands[`runs (${name})`] = [BIN, 'runs', '--store', store];
    commands[`runs --status running (${name})`] = [
      BIN,
      'runs',
      '--status',
      'running',
      '--store',
      store,
    ];
    commands[`cost --by day (${name})`] = [BIN, 'cost', '--by', 'day', '--store', store];
  }

  const samples = new Map<string, { wall: number[]; cpu: number[] }>();
  const loads: number[] = [];
  for (let i = 0; i < SPAWNS; i++) {
    loads.push(load1());
    const names = Object.keys(commands);
    // Alternate the order so no command always follows the same one.
    for (const name of i % 2 === 0 ? names : names.reverse()) {
      const args = commands[name] as string[];
      const t0 = performance.now();
      const r = spawnSync(process.execPath, ['--import', CPU_AT_EXIT, ...args], {
        cwd: dir,
        env,
        encoding: 'utf8',
        timeout: 60_000,
      });
      const wall = performance.now() - t0;
      if (r.status !== 0) throw new Error(`${name} exited ${r.status}: ${r.stderr}`);
      const cpu = Number(/CPU_MS ([\d.]+)/.exec(r.stderr)?.[1] ?? Number.NaN);
      const s = samples.get(name) ?? { wall: [], cpu: [] };
      s.wall.push(wall);
      s.cpu.push(cpu);
      samples.set(name, s);
    }
  }

  const rows = [...samples].map(([command, s]) => ({
    command,
    wallP50: percentile(s.wall, 0.5),
    wallP90: percentile(s.wall, 0.9),
    cpuP50: percentile(s.cpu, 0.5),
    cpuP90: percentile(s.cpu, 0.9),
  }));
  for (const r of rows)
    process.stderr.write(
      `${r.command.padEnd(38)} wall p50 ${r.wallP50.toFixed(0)} p90 ${r.wallP90.toFixed(0)}  cpu p50 ${r.cpuP50.toFixed(0)} p90 ${r.cpuP90.toFixed(0)} ms\n`,
    );
  emitResult({ spawns: SPAWNS, load: loads, rows });
} finally {
  await nats[Symbol.asyncDispose]();
  rmSync(dir, { recursive: true, force: true });
}
