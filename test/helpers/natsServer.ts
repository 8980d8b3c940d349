/**
 * Starts a throwaway nats-server with JetStream for integration tests: random free port, its
 * own store directory, kill -9 and restart on the same port and store for crash tests.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect as tcpConnect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Options of {@link startNatsServer}. */
export interface NatsServerOptions {
  /** Client port (default: a free one). */
  port?: number;
  /** JetStream store directory (default: a new temp dir, removed on dispose). */
  storeDir?: string;
  /** Joins a cluster: its name, this server's route port and the routes to its peers. */
  clusterName?: string;
  clusterPort?: number;
  routes?: string[];
  /** Server name (required by JetStream in a cluster; default derived from the port). */
  serverName?: string;
  /** The binary (default `nats-server` on PATH). */
  bin?: string;
}

/** A running test server. */
export interface NatsServerHandle {
  readonly url: string;
  readonly port: number;
  readonly storeDir: string;
  /** The server's output so far (for failure messages). */
  output(): string;
  /** Sends a signal (default SIGKILL) and waits for the process to exit. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Starts the server again on the same port and store dir (after kill or stop). */
  restart(): Promise<void>;
  /** Stops the server gracefully (SIGTERM). */
  stop(): Promise<void>;
  /** Stops the server and removes the store dir if this helper created it. */
  [Symbol.asyncDispose](): Promise<void>;
}

/** Servers still running, killed (and their own dirs removed) if the test process exits. */
const live = new Map<ChildProcess, string | undefined>();
process.once('exit', () => {
  for (const [child, dir] of live) {
    child.kill('SIGKILL');
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  }
});

/**
 * A worker killed by the test runner fires no 'exit' event: on Linux, `setpriv --pdeathsig`
 * makes the kernel kill the server when the process that started it dies.
 */
let setpriv: boolean | undefined;
function withParentDeathSignal(bin: string, args: string[]): [string, string[]] {
  setpriv ??= spawnSync('setpriv', ['--version'], { stdio: 'ignore' }).status === 0;
  return setpriv ? ['setpriv', ['--pdeathsig', 'KILL', bin, ...args]] : [bin, args];
}

/** A TCP port that was free a moment ago. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** Resolves once something on `port` answers with a NATS `INFO` line. */
async function waitForInfo(port: number, deadline: number, exited: () => boolean): Promise<void> {
  for (;;) {
    if (exited()) throw new Error('nats-server exited during start-up');
    const ok = await new Promise<boolean>((resolve) => {
      const sock = tcpConnect({ host: '127.0.0.1', port });
      let buf = '';
      const done = (v: boolean): void => {
        sock.destroy();
        resolve(v);
      };
      sock.setTimeout(500, () => done(false));
      sock.on('data', (d) => {
        buf += d.toString();
        if (buf.startsWith('INFO ')) done(true);
      });
      sock.on('error', () => done(false));
    });
    if (ok) return;
    if (Date.now() > deadline)
      throw new Error(`nats-server did not accept connections on port ${port}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Spawns `nats-server -js` on 127.0.0.1 and waits until it accepts connections. */
export async function startNatsServer(opts: NatsServerOptions = {}): Promise<NatsServerHandle> {
  const port = opts.port ?? (await freePort());
  const ownDir = opts.storeDir === undefined;
  const storeDir = opts.storeDir ?? mkdtempSync(join(tmpdir(), 'plumbline-nats-'));
  const args = ['-js', '-a', '127.0.0.1', '-p', String(port), '-sd', storeDir];
  if (opts.clusterName !== undefined) {
    args.push('--cluster_name', opts.clusterName, '-n', opts.serverName ?? `s${port}`);
    args.push('--cluster', `nats://127.0.0.1:${opts.clusterPort ?? (await freePort())}`);
    if (opts.routes?.length) args.push('--routes', opts.routes.join(','));
  } else if (opts.serverName !== undefined) {
    args.push('-n', opts.serverName);
  }

  let child: ChildProcess | undefined;
  let exited = true;
  let out = '';
  let exitWait: Promise<void> = Promise.resolve();

  const launch = async (): Promise<void> => {
    const [cmd, argv] = withParentDeathSignal(opts.bin ?? 'nats-server', args);
    const c = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    child = c;
    exited = false;
    live.set(c, ownDir ? storeDir : undefined);
    const append = (d: Buffer): void => {
      out = (out + d.toString()).slice(-20_000);
    };
    c.stdout?.on('data', append);
    c.stderr?.on('data', append);
    exitWait = new Promise((resolve) => {
      c.once('exit', () => {
        live.delete(c);
        exited = true;
        resolve();
      });
      c.once('error', (e) => {
        out += `\nspawn error: ${e.message}`;
        exited = true;
        resolve();
      });
    });
    try {
      await waitForInfo(port, Date.now() + 15_000, () => exited);
    } catch (e) {
      c.kill('SIGKILL');
      throw new Error(`${(e as Error).message}\n${out}`);
    }
  };

  const signal = async (sig: NodeJS.Signals): Promise<void> => {
    if (child === undefined || exited) return;
    child.kill(sig);
    const slow = setTimeout(() => child?.kill('SIGKILL'), 5_000);
    await exitWait;
    clearTimeout(slow);
  };

  await launch();
  const handle: NatsServerHandle = {
    url: `nats://127.0.0.1:${port}`,
    port,
    storeDir,
    output: () => out,
    kill: (sig = 'SIGKILL') => signal(sig),
    async restart() {
      await signal('SIGKILL');
      await launch();
    },
    stop: () => signal('SIGTERM'),
    async [Symbol.asyncDispose]() {
      await signal('SIGTERM');
      if (ownDir) rmSync(storeDir, { recursive: true, force: true });
    },
  };
  return handle;
}
