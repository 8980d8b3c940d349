/**
 * The CLI in terminals and pipes: `run` on a pseudo-terminal shows one live line and a short
 * summary with its log lines in a file; in a pipe it is quiet and `--json` is NDJSON only; a
 * reader that closes the pipe early ends the CLI quietly (no EPIPE stack trace).
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadPipeline } from '../src/runtime/load.js';
import { ROOT, ndjson, plumbline } from './helpers/cli.js';
import { harness } from './helpers/harness.js';

const BUDGETED = 'test/fixtures/pipelines/budgeted.ts';
const ESC = '\x1b';

/** Runs the CLI under a pseudo-terminal (util-linux `script`) `cols` wide; all it drew. */
function underPty(args: string[], env: Record<string, string>, cols = 100): Promise<string> {
  const quoted = args.map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  const cmd = `stty cols ${cols} rows 40; ${process.execPath} bin/plumbline.mjs ${quoted}`;
  return new Promise((resolve, reject) => {
    const child = spawn('script', ['-qfec', cmd, '/dev/null'], {
      cwd: ROOT,
      env: { ...process.env, TERM: 'xterm', ...env },
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('close', () => resolve(out));
  });
}

/** What a terminal shows of `text`: each `\r` returns to the start of the line, `ESC[2K` clears it. */
function screenLines(text: string): string[] {
  return text.split(/\r?\n/).map((raw) => {
    const parts = raw.split('\r');
    // eslint-disable-next-line no-control-regex
    return (parts[parts.length - 1] ?? '').replace(/\x1b\[[0-9;]*[A-Za-z]/g, '');
  });
}

describe('run on a terminal', () => {
  it('draws one live line, then a short summary naming the log file; log lines go to that file', async () => {
    await using h = await harness({ script: () => ({ kind: 'json', value: { note: 'x' } }) });
    const env = { ANTHROPIC_BASE_URL: h.fake.url, PLUMBLINE_LOG_LEVEL: 'info' };
    const args = ['run', BUDGETED, '--input', '{"topic":"t"}', '--store', h.dbPath];
    const tty = await underPty([...args, '--run-id', 'tty-1'], env, 90);
    const screen = screenLines(tty).filter((l) => l.trim() !== '');
    const logDir = join(h.dir, 'logs');
    const [logName] = readdirSync(logDir);
    expect(logName).toMatch(/^\d{4}-\d{2}-\d{2}\.log$/);
    const logPath = join(logDir, logName ?? '');
    // Three lines on the screen: the finished progress line, the result, where the log is.
    expect(screen).toHaveLength(3);
    // The last draw of the live line, cut to the terminal's 90 columns.
    expect(screen[0]).toMatch(/^tty-1\s+budgeted\s+\[█{20}\]\s+5\/5 done\s+\$.*…$/);
    expect(screen[1]).toMatch(/^run tty-1 completed, cost \$0\.\d+, path one → two/);
    expect(screen[2]).toBe(`log: ${logPath}`);
    // The live line was redrawn in place (once per event), each draw narrower than the terminal.
    const draws = tty.split(`\r${ESC}[2K`).slice(1);
    expect(draws.length).toBe(11);
    for (const d of draws) expect([...(d.split(/\r?\n/)[0] ?? '')].length).toBeLessThan(90);
    // No log text reached the terminal; it is in the file, one JSON line per decision.
    expect(tty).not.toMatch(/run started|"level"|INFO/);
    const logged = readFileSync(logPath, 'utf8').trim().split('\n');
    expect(logged.map((l) => (JSON.parse(l) as { msg: string }).msg)).toContain('run started');

    // --verbose: log lines on stderr (the terminal), no live line and no log file named.
    const verbose = await underPty([...args, '--run-id', 'tty-2', '--verbose'], env, 100);
    expect(verbose).toMatch(/run started/);
    expect(verbose).not.toContain(`\r${ESC}[2K`);
    expect(verbose).toMatch(/run tty-2 completed/);
    expect(verbose).not.toMatch(/log: /);
  });
});

describe('run in a pipe', () => {
  it('is quiet (no live line), and --json prints nothing but JSON lines', async () => {
    await using h = await harness({ script: () => ({ kind: 'json', value: { note: 'x' } }) });
    const env = { ANTHROPIC_BASE_URL: h.fake.url, PLUMBLINE_LOG_LEVEL: 'info' };
    const args = ['run', BUDGETED, '--input', '{"topic":"p"}', '--store', h.dbPath];
    const plain = await plumbline([...args, '--run-id', 'pipe-1'], env);
    expect(plain.code, plain.stderr).toBe(0);
    expect(plain.stdout).not.toContain(ESC);
    expect(plain.stdout.trim().split('\n')).toEqual([
      expect.stringMatching(/^run pipe-1 completed, cost/),
    ]);
    // Not a person watching: logs stay on stderr as JSON lines, and no log file is made.
    expect(plain.stderr).toMatch(/"msg":"run started"/);
    expect(existsSync(join(h.dir, 'logs'))).toBe(false);

    const json = await plumbline([...args, '--run-id', 'pipe-2', '--json'], env);
    expect(json.code, json.stderr).toBe(0);
    const lines = json.stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(12);
    const rows = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(rows.at(-1)).toMatchObject({ summary: true, runId: 'pipe-2', status: 'completed' });
    expect(ndjson(json.stdout)).toHaveLength(12);
  });
});

/**
 * `plumbline ARGS | head -n LINES` in bash (a real pipe of 64 KiB, as a user types it): what
 * head printed, the CLI's exit code (PIPESTATUS) and its stderr.
 */
function pipedToHead(
  args: string[],
  lines: number,
): Promise<{ shown: string[]; code: number; stderr: string }> {
  const quoted = args.map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  const cmd = `${process.execPath} bin/plumbline.mjs ${quoted} | head -n ${lines}; echo "exit=\${PIPESTATUS[0]}"`;
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['-c', cmd], {
      cwd: ROOT,
      env: { ...process.env, PLUMBLINE_LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', () => {
      const out = stdout.trimEnd().split('\n');
      const code = Number(/^exit=(\d+)$/.exec(out.pop() ?? '')?.[1] ?? NaN);
      resolve({ shown: out, code, stderr });
    });
  });
}

describe('a reader that closes the pipe early', () => {
  it('`runs --json | head -1`, `replay | head -2`, `watch --json | head -1` end quietly, exit 141, no EPIPE trace', async () => {
    await using h = await harness();
    const rt = h.runtime();
    const many = await loadPipeline('test/fixtures/pipelines/manySteps.ts');
    await rt.start(many, { input: {}, runId: 'long-1' });
    // Enough runs that `runs --json` writes well over the 64 KiB a pipe holds.
    const small = await loadPipeline('test/fixtures/pipelines/stubborn.ts');
    for (let i = 0; i < 400; i++)
      await rt.create(small, { input: {}, runId: `listed-${String(i).padStart(3, '0')}` });

    const cases: Array<[string[], number]> = [
      [['runs', '--json', '--all', '--store', h.dbPath], 1],
      [['replay', 'long-1', '--store', h.dbPath], 2],
      [['watch', 'long-1', '--json', '--store', h.dbPath], 1],
    ];
    for (const [args, lines] of cases) {
      const r = await pipedToHead(args, lines);
      expect(r.shown, args[0]).toHaveLength(lines);
      expect(r.stderr, args[0]).not.toMatch(/EPIPE|Error|\n\s+at /);
      expect(r.code, `${args[0]}: ${r.stderr}`).toBe(141);
    }
  });
});
