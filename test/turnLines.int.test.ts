/**
 * The log's lines reach the file when the process ends in the middle of a turn (process.exit,
 * an uncaught exception), and a full disk neither throws into the caller nor kills the process
 * (src/runtime/turnLines.ts). Children run the built package, as users do.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT } from './helpers/cli.js';

const BUNDLE = pathToFileURL(join(ROOT, 'dist', 'bundle', 'index.js')).href;
const dir = mkdtempSync(join(tmpdir(), 'plumbline-turnlines-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Runs `body` in a child with `log`, a logger writing to `file` (or /dev/full). */
function child(file: string, body: string) {
  const script = `
    import { openSync } from 'node:fs';
    const { createLogger } = await import(${JSON.stringify(BUNDLE)});
    const log = createLogger({ destination: openSync(${JSON.stringify(file)}, 'a'), secrets: [] });
    ${body}`;
  return spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    encoding: 'utf8',
    timeout: 60_000,
  });
}
const lines = (file: string): Array<{ msg: string }> =>
  readFileSync(file, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { msg: string });

describe('the log file at the end of a process', () => {
  it('has the lines of the turn that called process.exit', () => {
    const file = join(dir, 'exit.log');
    const r = child(file, `log.info('one'); log.info('two'); process.exit(3);`);
    expect(r.status).toBe(3);
    expect(lines(file).map((l) => l.msg)).toEqual(['one', 'two']);
  });

  it('has the lines of the turn that threw an uncaught exception', () => {
    const file = join(dir, 'throw.log');
    const r = child(
      file,
      `log.info('before'); setImmediate(() => { log.info('last'); throw new Error('boom'); });`,
    );
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('boom');
    expect(lines(file).map((l) => l.msg)).toEqual(['before', 'last']);
  });
});

describe.skipIf(!existsSync('/dev/full'))('a full disk', () => {
  it('neither throws into the caller nor kills the process', () => {
    const r = child(
      '/dev/full',
      `for (let i = 0; i < 3; i++) { log.info('x'); await new Promise((r) => setImmediate(r)); }
       console.log('alive');`,
    );
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('alive');
    expect(r.status).toBe(0);
  });
});
