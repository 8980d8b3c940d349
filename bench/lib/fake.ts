/**
 * Starts the fake Claude in a child process (bench/fakeServer.ts) and returns its URL.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const SERVER = fileURLToPath(new URL('../fakeServer.ts', import.meta.url));

/** A fake Claude running in its own process. */
export interface FakeProcess extends AsyncDisposable {
  url: string;
  pid: number;
  close(): Promise<void>;
}

/** Spawns the fake in `mode` (`valid`, `delay:<ms>`, `429:<seconds>`) and waits for its URL. */
export async function startFakeProcess(mode = 'valid'): Promise<FakeProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', SERVER, mode], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const url = await new Promise<string>((resolve, reject) => {
    let buf = '';
    child.stdout.on('data', (d: Buffer) => {
      buf += d.toString();
      const line = buf.split('\n')[0];
      if (buf.includes('\n') && line !== undefined) resolve(line.trim());
    });
    child.once('exit', (code) =>
      reject(new Error(`fake Claude exited with ${code} before printing its URL`)),
    );
  });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const close = async (): Promise<void> => {
    if (child.exitCode === null) child.kill('SIGKILL');
    await exited;
  };
  return { url, pid: child.pid as number, close, [Symbol.asyncDispose]: close };
}
