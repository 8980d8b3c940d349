/**
 * Peer: Restate (server binary from @restatedev/restate-server, TypeScript SDK), the benchmark
 * workload with one durable `ctx.run` per step. Starts its own restate-server on 127.0.0.1
 * (ports 8080 ingress, 9070 admin, 5122 fabric) with a fresh base dir, serves the handlers on an
 * HTTP/2 endpoint in this process and registers it, then invokes through the ingress.
 * Usage: node --import tsx bench/peers/restate.ts [--runs N] [--inflight C] [--latency L]
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startFakeProcess } from '../lib/fake.js';
import { cpuMeter, emitResult, latencies, load1, numArg, runFigures } from '../lib/proc.js';
import {
  Classification,
  Summary,
  callModel,
  classifyPrompt,
  modelClient,
  pool,
  record,
  summarizePrompt,
  ticket,
  type Ticket,
  warmupRuns,
} from '../workload.js';

// The SDK 1.17 calls Promise.withResolvers (Node 22+) without saying so: on Node 20 every
// invocation fails and the server retries forever.
const P = Promise as unknown as { withResolvers?: () => unknown };
P.withResolvers ??= function withResolvers<T>() {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
};
process.env.RESTATE_LOGGING ??= 'ERROR';
const restate = await import('@restatedev/restate-sdk');

const RUNS = numArg('runs', 1000);
const INFLIGHT = numArg('inflight', 100);
const LATENCY_RUNS = numArg('latency', 200);
const ENDPOINT_PORT = 9081;
const INGRESS = 'http://127.0.0.1:8080';
const ADMIN = 'http://127.0.0.1:9070';

const dir = mkdtempSync(join(tmpdir(), 'plumbline-bench-restate-'));
const sink = join(dir, 'sink.jsonl');
const fake = await startFakeProcess('valid');
const model = modelClient(fake.url);

const BIN = fileURLToPath(
  new URL(
    './node_modules/@restatedev/restate-server-linux-x64/bin/restate-server',
    import.meta.url,
  ),
);
const server = spawn(
  BIN,
  [
    '--base-dir',
    join(dir, 'restate'),
    '--bind-ip',
    '127.0.0.1',
    '--no-logo',
    '--log-format',
    'compact',
  ],
  {
    env: { ...process.env, RESTATE_DISABLE_TELEMETRY: 'true', RESTATE_LOG_FILTER: 'error' },
    stdio: ['ignore', 'ignore', 'pipe'],
  },
);
let serverErr = '';
server.stderr.on('data', (d: Buffer) => (serverErr = (serverErr + d.toString()).slice(-5000)));

async function waitFor(url: string, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      const r = await fetch(url);
      if (r.ok) return;
    } catch {
      // not yet
    }
    if (server.exitCode !== null)
      throw new Error(`restate-server exited (${server.exitCode}): ${serverErr}`);
    if (Date.now() > deadline)
      throw new Error(`restate-server did not answer ${url}: ${serverErr}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const bench = restate.service({
  name: 'bench',
  handlers: {
    three: async (
      ctx: import('@restatedev/restate-sdk').Context,
      input: Ticket & { runId: string },
    ) => {
      const c = await ctx.run('classify', () =>
        callModel(model, 'classify', Classification, classifyPrompt(input)),
      );
      const s = await ctx.run('summarize', () =>
        callModel(model, 'summarize', Summary, summarizePrompt(input, c)),
      );
      return ctx.run('record', () => record(sink, input.runId, s));
    },
    one: async (ctx: import('@restatedev/restate-sdk').Context, input: Ticket) => {
      return ctx.run('classify', () =>
        callModel(model, 'classify', Classification, classifyPrompt(input)),
      );
    },
  },
});
await restate.endpoint().bind(bench).listen(ENDPOINT_PORT);
await waitFor(`${ADMIN}/health`, 30_000);
const reg = await fetch(`${ADMIN}/deployments`, {
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify({ uri: `http://127.0.0.1:${ENDPOINT_PORT}`, force: true }),
});
if (!reg.ok) throw new Error(`registering the endpoint failed: ${reg.status} ${await reg.text()}`);

async function invoke(handler: string, body: unknown): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    const r = await fetch(`${INGRESS}/bench/${handler}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    const text = await r.text();
    if (r.ok) return;
    // Right after registration the ingress may not know the service yet.
    if (r.status === 404 && attempt < 50) {
      await new Promise((res) => setTimeout(res, 100));
      continue;
    }
    throw new Error(`invocation failed: ${r.status} ${text}`);
  }
}

// Warm-up.
await pool(warmupRuns(), 50, (i) => invoke('three', { ...ticket(i), runId: `w3-${i}` }));
for (let i = 0; i < 20; i++) await invoke('one', ticket(i));

const load0 = load1();
const meter = cpuMeter({ pids: [server.pid as number] });
const res = await pool(RUNS, INFLIGHT, (i) => invoke('three', { ...ticket(i), runId: `m3-${i}` }));
const cpu = meter.stop();
const lat = await latencies(LATENCY_RUNS, (i) => invoke('one', ticket(i)));
emitResult({
  system: 'restate',
  runs: RUNS,
  load: [load0, load1()],
  ...runFigures({ runs: RUNS, wallMs: res.wallMs, loaded: res.latencies, cpu, alone: lat }),
});

server.kill('SIGKILL');
await new Promise((r) => server.once('exit', r));
await fake.close();
rmSync(dir, { recursive: true, force: true });
process.exit(0);
