import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** The repository root. */
export const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** The result of a child process. */
export interface ChildResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs a node script (TypeScript via tsx) and collects its output. */
export function runNode(
  args: string[],
  env: Record<string, string | undefined> = {},
  timeoutMs = 60_000,
): Promise<ChildResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, {
      cwd: ROOT,
      env: { ...process.env, PLUMBLINE_LOG_LEVEL: 'warn', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** Runs the `plumbline` CLI. */
export function plumbline(
  args: string[],
  env: Record<string, string | undefined> = {},
  timeoutMs?: number,
): Promise<ChildResult> {
  return runNode(['bin/plumbline.mjs', ...args], env, timeoutMs);
}

/** Runs a TypeScript file with tsx. */
export function tsNode(
  file: string,
  args: string[],
  env: Record<string, string | undefined> = {},
): Promise<ChildResult> {
  return runNode(['--import', 'tsx', file, ...args], env);
}

/** Parses NDJSON output. */
export function ndjson(text: string): unknown[] {
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as unknown);
}
