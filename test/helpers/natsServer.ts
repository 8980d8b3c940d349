/**
 * Starts a throwaway nats-server with JetStream for integration tests: random free port, its
 * own store directory, kill -9 and restart on the same port and store for crash tests.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect as tcpConnect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstreamManager, StorageType } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';

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
/** `[command, args]` that run `bin` so that it dies with the process that spawned it. */
export function withParentDeathSignal(bin: string, args: string[]): [string, string[]] {
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

/** A running test cluster. */
export interface NatsClusterHandle {
  readonly nodes: NatsServerHandle[];
  /** Every node's client URL, comma-separated (a `--store` spec the CLI accepts). */
  readonly url: string;
  readonly servers: string[];
  /** Each node's server name, in the order of `nodes` (JetStream reports leaders by name). */
  readonly names: string[];
  /** Stops every node and removes their store dirs. */
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * Starts `size` JetStream servers on loopback ports, routed to each other, and waits until
 * the cluster can place a stream with `size` replicas (the meta leader is elected and every
 * peer has joined).
 */
export async function startNatsCluster(size = 3, timeoutMs = 30_000): Promise<NatsClusterHandle> {
  const ports = await Promise.all(Array.from({ length: size }, () => freePort()));
  const clusterPorts = await Promise.all(Array.from({ length: size }, () => freePort()));
  const routes = clusterPorts.map((p) => `nats://127.0.0.1:${p}`);
  const name = `c${Math.random().toString(36).slice(2, 8)}`;
  const names = ports.map((_, i) => `${name}-n${i + 1}`);
  const started = await Promise.allSettled(
    ports.map((port, i) =>
      startNatsServer({
        port,
        clusterName: name,
        clusterPort: clusterPorts[i] as number,
        routes: routes.filter((_, j) => j !== i),
        serverName: names[i] as string,
      }),
    ),
  );
  const nodes = started.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  const dispose = async (): Promise<void> => {
    await Promise.all(nodes.map((n) => n[Symbol.asyncDispose]()));
  };
  const failed = started.find((r) => r.status === 'rejected');
  if (failed !== undefined) {
    await dispose();
    throw (failed as PromiseRejectedResult).reason;
  }
  const servers = ports.map((p) => `nats://127.0.0.1:${p}`);
  const nc = await connect({ servers, maxReconnectAttempts: -1 });
  try {
    const deadline = Date.now() + timeoutMs;
    for (let attempt = 0; ; attempt++) {
      try {
        const jsm = await jetstreamManager(nc, { timeout: 2_000 });
        const probe = `READY_${attempt}`;
        await jsm.streams.add({
          name: probe,
          subjects: [`ready.${attempt}`],
          num_replicas: size,
          storage: StorageType.Memory,
        });
        await jsm.streams.delete(probe);
        break;
      } catch (e) {
        if (Date.now() > deadline) {
          await dispose();
          throw new Error(
            `the ${size}-node cluster did not get ready within ${timeoutMs} ms: ${(e as Error).message}\n${nodes.map((n) => n.output().slice(-2_000)).join('\n---\n')}`,
          );
        }
        await new Promise((r) => setTimeout(r, 250));
      }
    }
  } finally {
    await nc.close();
  }
  return { nodes, servers, names, url: servers.join(','), [Symbol.asyncDispose]: dispose };
}
