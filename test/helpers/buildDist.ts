/**
 * Vitest global setup: builds `dist/` when a file under `src/` is newer than the last build, so
 * the CLI the tests spawn (bin/plumbline.mjs runs dist/bundle/) is today's code: tsc, then the
 * bundle (scripts/bundle.mjs), as `npm run build`. Emits without type checking (`--noCheck`): a
 * type error is `npm run typecheck`'s to report, not a reason to test yesterday's build. A lock directory keeps two vitest processes from writing dist/ at once.
 */
import { spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  readdirSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './cli.js';

const DIST = join(ROOT, 'dist');
const STAMP = join(DIST, '.stamp');
const LOCK = join(ROOT, 'node_modules', '.plumbline-build.lock');
const INPUTS = ['src', 'scripts', 'tsconfig.json', 'tsconfig.build.json', 'package.json'];

/** The newest modification time under `path`. */
function newest(path: string): number {
  const st = statSync(path);
  if (!st.isDirectory()) return st.mtimeMs;
  let max = st.mtimeMs;
  for (const name of readdirSync(path)) max = Math.max(max, newest(join(path, name)));
  return max;
}

/** True when dist/ is missing or older than one of its inputs. */
export function distIsStale(): boolean {
  if (!existsSync(STAMP) || !existsSync(join(DIST, 'bundle', 'cli', 'main.js'))) return true;
  const built = statSync(STAMP).mtimeMs;
  return INPUTS.some((p) => newest(join(ROOT, p)) > built);
}

const sleep = (ms: number): void =>
  void Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

/** Takes the build lock, waiting for another process's build (a lock older than 2 min is stale). */
function lock(): void {
  for (;;) {
    try {
      mkdirSync(LOCK);
      return;
    } catch {
      const since = statSync(LOCK, { throwIfNoEntry: false })?.mtimeMs ?? Date.now();
      if (Date.now() - since > 120_000) rmSync(LOCK, { recursive: true, force: true });
      else sleep(200);
    }
  }
}

/** Builds dist/ if it is stale. */
export function buildDist(): void {
  if (!distIsStale()) return;
  lock();
  try {
    if (!distIsStale()) return;
    const started = Date.now();
    const tsc = spawnSync(
      process.execPath,
      [
        join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'),
        '-p',
        'tsconfig.build.json',
        '--noCheck',
      ],
      { cwd: ROOT, encoding: 'utf8' },
    );
    // Exit 2: diagnostics, but the files were written.
    if (tsc.status !== 0 && tsc.status !== 2)
      throw new Error(`npm run build failed (tsc exit ${tsc.status}):\n${tsc.stdout}${tsc.stderr}`);
    const bundle = spawnSync(process.execPath, [join(ROOT, 'scripts', 'bundle.mjs')], {
      cwd: ROOT,
      encoding: 'utf8',
    });
    if (bundle.status !== 0)
      throw new Error(
        `the bundle failed (exit ${bundle.status}):\n${bundle.stdout}${bundle.stderr}`,
      );
    // Dated when the build began: a file saved during the build makes the next run build again.
    writeFileSync(STAMP, `${new Date(started).toISOString()}\n`);
    utimesSync(STAMP, started / 1000, started / 1000);
    process.stderr.write(`built dist/ in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
  } finally {
    rmSync(LOCK, { recursive: true, force: true });
  }
}

export default buildDist;
