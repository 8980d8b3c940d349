/**
 * Usage errors a new user meets, each a clear message naming the fix and exit 2: no verb,
 * durations without a unit, store URLs with a typo'd scheme (nothing created), a port in use.
 * And `plumbline fake-claude --script`: the bundled fake Claude, scripted from JSON.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT, plumbline, type ChildResult } from './helpers/cli.js';

const BIN = join(ROOT, 'bin', 'plumbline.mjs');
const dir = mkdtempSync(join(tmpdir(), 'plumbline-usage-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const STORE = join(dir, 'store.db');

const oneLine = (text: string): string[] => text.split('\n').filter((l) => l.trim() !== '');

describe('no verb', () => {
  it('prints the help on stderr and exits 2', async () => {
    const r = await plumbline([]);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/Usage: plumbline \[options\] \[command\]/);
    expect(r.stderr).toMatch(/\brun\b.*drive one run/);
  });
});

describe('durations', () => {
  const bare: Array<[string[], string]> = [
    [['run', 'test/fixtures/pipelines/plain.js', '--deadline', '5'], '--deadline'],
    [['resume', 'x', '--deadline', '30'], '--deadline'],
    [['start', 'plain', '--deadline', '5'], '--deadline'],
    [['worker', '--pipelines', 'test/fixtures/pipelines/', '--ack-wait', '5'], '--ack-wait'],
    [['worker', '--pipelines', 'x', '--stranded-after', '60'], '--stranded-after'],
    [['worker', '--pipelines', 'x', '--unload-backoff', '10'], '--unload-backoff'],
    [['runs', '--stranded', '--older-than', '5'], '--older-than'],
    [['stranded', '--older-than', '1.5'], '--older-than'],
  ];
  it('every duration flag refuses a bare number, naming the flag and the fix, exit 2', async () => {
    const results = await Promise.all(bare.map(([args]) => plumbline([...args, '--store', STORE])));
    results.forEach((r, i) => {
      const [args, flag] = bare[i] as [string[], string];
      const value = args[args.length - 1] ?? '';
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(2);
      expect(oneLine(r.stderr)).toHaveLength(1);
      expect(r.stderr).toContain(
        `${flag} ${value}: give a unit, e.g. ${value}s or ${value}m (ms, s, m, h, d)`,
      );
    });
  });

  it('accepts units', async () => {
    const r = await plumbline([
      'run',
      'test/fixtures/pipelines/plain.js',
      '--input',
      '{"n":1}',
      '--deadline',
      '2m',
      '--json',
      '--store',
      STORE,
    ]);
    expect(r.code, r.stderr).toBe(0);
    const started = JSON.parse(oneLine(r.stdout)[0] ?? '{}') as {
      at: number;
      event: { limits: { deadlineAt: number } };
    };
    // 2 minutes from the start, not 2 ms.
    expect(started.event.limits.deadlineAt - started.at).toBe(120_000);
  });
});

describe('store URLs', () => {
  const bad = [
    'nats:/127.0.0.1:4222',
    'http://127.0.0.1:4222',
    'nats//127.0.0.1:4222',
    'sqlite://runs.db',
    'nats://',
    'nats://127.0.0.1:4222/path',
    'nats://a:4222,b:99999',
  ];
  it.each(bad)('%s is refused with the accepted forms, exit 2, nothing created', async (spec) => {
    const cwd = mkdtempSync(join(dir, 'cwd-'));
    const viaFlag = await inDir(cwd, ['runs', '--store', spec]);
    const viaEnv = await inDir(cwd, ['runs'], { PLUMBLINE_STORE: spec });
    for (const [r, source] of [
      [viaFlag, '--store'],
      [viaEnv, 'PLUMBLINE_STORE'],
    ] as const) {
      expect(r.code, r.stderr).toBe(2);
      expect(oneLine(r.stderr)).toHaveLength(1);
      expect(r.stderr).toContain(`${source} '`);
      expect(r.stderr).toMatch(
        /Accepted: a SQLite file path .*, or nats:\/\/host:port\[,host2:port\]/,
      );
    }
    expect(readdirSync(cwd)).toEqual([]);
  });

  it('masks credentials of a refused URL', async () => {
    const r = await plumbline(['runs', '--store', 'nats:/app:hunter2-secret@host:4222']);
    expect(r.code).toBe(2);
    expect(r.stderr).not.toContain('hunter2-secret');
  });
});

/** Runs the CLI with `cwd` as its working directory. */
function inDir(
  cwd: string,
  args: string[],
  env: Record<string, string> = {},
): Promise<ChildResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      cwd,
      env: { ...process.env, PLUMBLINE_STORE: undefined, PLUMBLINE_LOG_LEVEL: 'warn', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

/** A TCP server holding a port on 127.0.0.1. */
async function occupy(): Promise<Server & AsyncDisposable> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return Object.assign(server, {
    [Symbol.asyncDispose]: () => new Promise<void>((resolve) => server.close(() => resolve())),
  });
}

describe('a port in use', () => {
  it('is a clear error naming the port and the flag, exit 2 (viz, worker, fake-claude)', async () => {
    await using held = await occupy();
    const port = String((held.address() as AddressInfo).port);
    const cases: Array<[string[], string]> = [
      [['viz', '--port', port, '--store', STORE], '--port'],
      [
        [
          'worker',
          '--pipelines',
          'test/fixtures/pipelines/plain.js',
          '--metrics-port',
          port,
          '--store',
          STORE,
        ],
        '--metrics-port',
      ],
      [['fake-claude', '--port', port], '--port'],
    ];
    const results = await Promise.all(cases.map(([args]) => plumbline(args)));
    results.forEach((r, i) => {
      const [args, flag] = cases[i] as [string[], string];
      expect(r.code, `${args[0]}: ${r.stderr}`).toBe(2);
      expect(oneLine(r.stderr)).toHaveLength(1);
      expect(r.stderr).toContain(
        `port ${port} is already in use (127.0.0.1:${port}): stop what holds it, or pass another ${flag} (${flag} 0 picks a free one)`,
      );
      expect(r.stderr).not.toMatch(/unexpected|EADDRINUSE/);
    });
  });
});

describe('plumbline fake-claude', () => {
  it('serves the scripted answers in order, then repeats the last; prints its URL', async () => {
    const script = join(dir, 'script.json');
    writeFileSync(
      script,
      JSON.stringify({
        usage: { input_tokens: 7, output_tokens: 3 },
        answers: [
          { kind: 'status', status: 529 },
          { kind: 'delay', ms: 10, then: { kind: 'text', text: 'slow hello' } },
          { kind: 'json', value: { label: 'bug' } },
        ],
      }),
    );
    const child = spawn(process.execPath, [BIN, 'fake-claude', '--port', '0', '--script', script], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    try {
      const url = await new Promise<string>((resolve, reject) => {
        let out = '';
        child.stdout.on('data', (d: Buffer) => {
          out += d.toString();
          const line = out.split('\n')[0] ?? '';
          if (out.includes('\n')) resolve(line);
        });
        child.on('close', (code) => reject(new Error(`fake-claude exited ${code}`)));
      });
      expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      const ask = async (): Promise<{ status: number; body: Record<string, unknown> }> => {
        const res = await fetch(`${url}/v1/messages`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ model: 'claude-haiku-4-5', max_tokens: 10, messages: [] }),
        });
        return { status: res.status, body: (await res.json()) as Record<string, unknown> };
      };
      const answers = [];
      for (let i = 0; i < 5; i++) answers.push(await ask());
      expect(answers.map((a) => a.status)).toEqual([529, 200, 200, 200, 200]);
      const texts = answers
        .slice(1)
        .map((a) => (a.body.content as Array<{ text: string }>)[0]?.text);
      expect(texts).toEqual([
        'slow hello',
        '{"label":"bug"}',
        '{"label":"bug"}',
        '{"label":"bug"}',
      ]);
      expect(answers[2]?.body.usage).toMatchObject({ input_tokens: 7, output_tokens: 3 });
    } finally {
      child.kill('SIGTERM');
    }
    const code = await new Promise<number | null>((resolve) => {
      if (child.exitCode !== null) resolve(child.exitCode);
      else child.on('exit', (c) => resolve(c));
    });
    expect(code).toBe(0);
  });

  it('refuses a script with a wrong field, naming its path, exit 2', async () => {
    const script = join(dir, 'bad.json');
    writeFileSync(
      script,
      JSON.stringify({ answers: [{ kind: 'json', value: 1 }, { kind: 'stat' }] }),
    );
    const r = await plumbline(['fake-claude', '--script', script]);
    expect(r.code).toBe(2);
    expect(oneLine(r.stderr)).toHaveLength(1);
    expect(r.stderr).toMatch(/--script .*bad\.json: answers\[1\]\.kind: /);
  });
});
