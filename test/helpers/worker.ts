/**
 * `plumbline worker` as a child process for fleet tests: its pino lines parsed, its output
 * tail kept for failure messages, started when it logs "worker started".
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { ROOT } from './cli.js';
import { withParentDeathSignal } from './natsServer.js';

/** A pino line of the worker. */
export interface LogLine {
  time: number;
  level: number;
  msg: string;
  runId?: string;
  decision?: string;
  reason?: string;
}

/** A running worker process. */
export interface WorkerProc {
  readonly name: string;
  readonly child: ChildProcess;
  /** Parsed log lines (pino JSON on stderr). */
  readonly lines: LogLine[];
  readonly exited: Promise<void>;
  /** Raw output tail, for failure messages. */
  output(): string;
  /** Sends `signal` (SIGKILL by default; SIGKILL after 5 s for anything else) and waits. */
  kill(signal?: NodeJS.Signals): Promise<void>;
}

/** Options of {@link spawnWorker}. */
export interface SpawnWorkerOptions {
  name: string;
  store: string;
  pipelines: string;
  /** `--ack-wait` in ms; omitted: the worker's default. */
  ackWaitMs?: number;
  concurrency: number;
  env: Record<string, string>;
  /** More `plumbline worker` arguments. */
  args?: string[];
}

/** Spawns `plumbline worker` and resolves once it serves (30 s at most). */
export async function spawnWorker(o: SpawnWorkerOptions): Promise<WorkerProc> {
  const args = ['bin/plumbline.mjs', 'worker', '--store', o.store, '--pipelines', o.pipelines];
  if (o.ackWaitMs !== undefined) args.push('--ack-wait', `${o.ackWaitMs}ms`);
  args.push('--concurrency', String(o.concurrency));
  args.push(...(o.args ?? []));
  const [cmd, argv] = withParentDeathSignal(process.execPath, args);
  const child = spawn(cmd, argv, {
    cwd: ROOT,
    env: { ...process.env, PLUMBLINE_LOG_LEVEL: 'info', ...o.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: LogLine[] = [];
  let tail = '';
  let partial = '';
  let onLine: ((l: LogLine) => void) | undefined;
  child.stderr?.on('data', (d: Buffer) => {
    const text = partial + d.toString();
    tail = (tail + d.toString()).slice(-20_000);
    const parts = text.split('\n');
    partial = parts.pop() ?? '';
    for (const p of parts) {
      if (!p.startsWith('{')) continue;
      try {
        const l = JSON.parse(p) as LogLine;
        lines.push(l);
        onLine?.(l);
      } catch {
        // Not a log line.
      }
    }
  });
  child.stdout?.on('data', (d: Buffer) => (tail = (tail + d.toString()).slice(-20_000)));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const w: WorkerProc = {
    name: o.name,
    child,
    lines,
    exited,
    output: () => tail,
    async kill(signal = 'SIGKILL') {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill(signal);
      const hard = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(hard);
    },
  };
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`worker ${o.name} did not start in 30 s:\n${tail}`)),
      30_000,
    );
    const done = (e?: Error): void => {
      clearTimeout(timer);
      onLine = undefined;
      if (e) reject(e);
      else resolve();
    };
    if (lines.some((l) => l.msg === 'worker started')) done();
    onLine = (l) => {
      if (l.msg === 'worker started') done();
    };
    void exited.then(() => done(new Error(`worker ${o.name} exited at start-up:\n${tail}`)));
  });
  return w;
}
