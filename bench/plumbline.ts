/**
 * One repetition of figures 1 and 2 on one backend, in a fresh process:
 *   - plumbline: N 3-step runs with C in flight (steps/s, run latency under load, CPU per run),
 *     then 1-step runs one at a time (latency);
 *   - the raw limit: the same workload written by hand (same model calls, same effect) with
 *     one raw append of the very same bytes wherever plumbline appended an event;
 *   - the floor: the same hand-written workload with no append at all (no durability);
 *   - append-only: the same appends with the same concurrency and no model or effect.
 * Usage: node --import tsx bench/plumbline.ts --backend sqlite|sqlite-full|jetstream [--runs N]
 *        [--inflight C] [--latency L] [--breakers on|off] [--log-file PATH|none] [--profile]
 *        (prints one `RESULT {json}` line)
 * The runtime is configured as users run it (issue 14): circuit breakers on and info logging to a
 * file (by default `plumbline.log` in the bench's temporary directory) the way `plumbline worker`
 * logs — pino writing each line synchronously to a file descriptor (the worker's stderr,
 * redirected to a file); `--breakers off` and `--log-file none` measure the bare engine.
 */
import { execFileSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { jetstream, jetstreamManager, RetentionPolicy, StorageType } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { Runtime, createLogger, openSqliteStore, prepare, type Store } from '../src/index.js';
import { Breakers } from '../src/runtime/breakers.js';
import { openJetStreamStore } from '../src/store/jetstream.js';
import type { ModelClient } from '../src/model/types.js';
import { startNatsServer, type NatsServerHandle } from '../test/helpers/natsServer.js';
import { startFakeProcess } from './lib/fake.js';
import { arg, cpuMeter, emitResult, load1, numArg } from './lib/proc.js';
import { percentile } from './lib/stats.js';
import {
  Classification,
  Summary,
  callModel,
  classifyPrompt,
  modelClient,
  oneStep,
  pool,
  record,
  summarizePrompt,
  threeStep,
  ticket,
  type Ticket,
  warmupRuns,
} from './workload.js';

const backend = arg('backend', 'sqlite') as 'sqlite' | 'sqlite-full' | 'jetstream';
const RUNS = numArg('runs', 1000);
const INFLIGHT = numArg('inflight', 100);
const LATENCY_RUNS = numArg('latency', 200);
const WARMUP = warmupRuns();
const BREAKERS = arg('breakers', 'on') !== 'off';

const dir = mkdtempSync(join(tmpdir(), 'plumbline-bench-'));
const logArg = arg('log-file', join(dir, 'plumbline.log')) as string;
const logFile = logArg === 'none' ? undefined : logArg;
// An fd, as the worker's stderr: createLogger writes to it as `plumbline worker` writes to fd 2.
const logFd = logFile !== undefined ? openSync(logFile, 'a') : undefined;
const fake = await startFakeProcess('valid');
let nats: NatsServerHandle | undefined;
let store: Store;
if (backend === 'jetstream') {
  nats = await startNatsServer();
  store = await openJetStreamStore({ servers: nats.url });
} else {
  store = openSqliteStore(join(dir, 'plumbline.db'), {
    synchronous: backend === 'sqlite-full' ? 'FULL' : 'NORMAL',
  });
}
const serverPids = nats !== undefined ? [serverPid(nats)] : [];
const model = modelClient(fake.url);
const logger =
  logFd !== undefined
    ? createLogger({ level: 'info', destination: logFd, pretty: false })
    : undefined;
const rt = new Runtime({
  store,
  model,
  ...(logger !== undefined ? { logger } : {}),
  ...(BREAKERS ? { breakers: new Breakers(store.control, {}, logger) } : {}),
});
/** The configuration measured, printed with every result. */
const config = { breakers: BREAKERS, log: logFile !== undefined ? 'info-file' : 'silent' };
/** Closes the log file (after the runtime's last line) and reports its size. */
async function closeLog(): Promise<number> {
  if (logFd === undefined || logFile === undefined) return 0;
  logger?.flush();
  closeSync(logFd);
  return statSync(logFile).size;
}
const sink = join(dir, 'sink.jsonl');
const p3 = prepare(threeStep(sink));
const p1 = prepare(oneStep());

function serverPid(h: NatsServerHandle): number {
  // The helper does not expose the pid: find the nats-server that owns our store dir.
  const out = execFileSync('pgrep', ['-f', `nats-server.*${h.storeDir}`])
    .toString()
    .trim()
    .split('\n');
  return Number(out[out.length - 1]);
}

// Warm-up (JIT, HTTP keep-alive, SQLite pages): not measured.
await pool(WARMUP, Math.min(INFLIGHT, 50), (i) =>
  rt.start(p3, { input: ticket(i), runId: `w3-${i}` }),
);
for (let i = 0; i < 20; i++) await rt.start(p1, { input: ticket(i), runId: `w1-${i}` });

// 1. plumbline, 3-step runs, C in flight.
const load0 = load1();
let meter = cpuMeter({ pids: serverPids });
const plumb = await pool(RUNS, INFLIGHT, async (i) => {
  const r = await rt.start(p3, { input: ticket(i), runId: `m3-${i}` });
  if (r.status !== 'completed')
    throw new Error(`run m3-${i} ended ${r.status}: ${JSON.stringify(r.error)}`);
});
const plumbCpu = meter.stop();
if (process.argv.includes('--profile')) {
  // Profiling the hot path only: stop before the baselines.
  emitResult({
    backend,
    config,
    load: load0,
    stepsPerSec: (RUNS * 3) / (plumb.wallMs / 1000),
    cpuPerRunMs: (plumbCpu.selfMs + plumbCpu.othersMs) / RUNS,
  });
  await store.close();
  await closeLog();
  await fake.close();
  if (nats !== undefined) await nats[Symbol.asyncDispose]();
  rmSync(dir, { recursive: true, force: true });
  process.exit(0);
}

// 1b. plumbline, 1-step runs one at a time.
const plumbLat: number[] = [];
for (let i = 0; i < LATENCY_RUNS; i++) {
  const s = performance.now();
  await rt.start(p1, { input: ticket(i), runId: `m1-${i}` });
  plumbLat.push(performance.now() - s);
}

// What plumbline wrote, per run, in order: the bytes the raw baselines append.
type Captured = Map<string, string[]>;
const captured: Captured = new Map();
let bytes = 0;
for (let pos = 0; ;) {
  const page = await store.log.readAll(pos, 1000);
  if (page.length === 0) break;
  for (const e of page) {
    pos = e.pos;
    if (!e.runId.startsWith('m')) continue;
    const { v, at, event, state } = e;
    const body =
      backend === 'jetstream'
        ? JSON.stringify({ v, at, event, state, runId: e.runId, seq: e.seq })
        : JSON.stringify({ v, at, event, state });
    const list = captured.get(e.runId) ?? [];
    list.push(body);
    captured.set(e.runId, list);
    if (e.runId.startsWith('m3-')) bytes += Buffer.byteLength(body);
  }
}
const events3 = [...captured.entries()]
  .filter(([k]) => k.startsWith('m3-'))
  .reduce((n, [, v]) => n + v.length, 0);
await store.close();
const logBytes = await closeLog();

// The raw log: one append per event, nothing else.
type RawAppend = (runId: string, seq: number, body: string) => Promise<void>;
let rawAppend: RawAppend;
let rawClose: () => Promise<void>;
if (backend === 'jetstream') {
  const nc = await connect({ servers: (nats as NatsServerHandle).url, noAsyncTraces: true });
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({
    name: 'RAW',
    subjects: ['raw.run.*.ev'],
    storage: StorageType.File,
    retention: RetentionPolicy.Limits,
  });
  const js = jetstream(nc);
  rawAppend = async (runId, _seq, body) => {
    await js.publish(`raw.run.${runId}.ev`, body);
  };
  rawClose = () => nc.close();
} else {
  const db = new Database(join(dir, 'raw.db'));
  db.pragma('journal_mode = WAL');
  db.pragma(`synchronous = ${backend === 'sqlite-full' ? 'FULL' : 'NORMAL'}`);
  db.exec(
    'CREATE TABLE events (pos INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, seq INTEGER NOT NULL, body TEXT NOT NULL, UNIQUE (run_id, seq))',
  );
  const insert = db.prepare('INSERT INTO events (run_id, seq, body) VALUES (?, ?, ?)');
  rawAppend = async (runId, seq, body) => {
    insert.run(runId, seq, body);
  };
  rawClose = async () => {
    db.close();
  };
}

/**
 * The workload by hand: the captured events appended in order, doing the I/O each one announces.
 * Without `append` (the floor) nothing is written: the same calls, checks and effect, no durability.
 */
async function rawRun(
  client: ModelClient,
  runId: string,
  bodies: string[],
  input: Ticket,
  tag: string,
  append: RawAppend | null = rawAppend,
): Promise<void> {
  let classification: unknown;
  let summary: unknown;
  for (const [k, body] of bodies.entries()) {
    if (append !== null) await append(`${tag}${runId}`, k + 1, body);
    const type = (JSON.parse(body) as { event: { type: string; step?: string } }).event;
    if (type.type === 'ATTEMPT' && type.step === 'classify')
      classification = await callModel(client, 'classify', Classification, classifyPrompt(input));
    if (type.type === 'ATTEMPT' && type.step === 'summarize')
      summary = await callModel(
        client,
        'summarize',
        Summary,
        summarizePrompt(input, classification),
      );
    if (type.type === 'EFFECT_STARTED') await record(join(dir, 'raw-sink.jsonl'), runId, summary);
  }
}

// 2. Raw: same workload, same concurrency, same bytes.
meter = cpuMeter({ pids: serverPids });
const raw = await pool(RUNS, INFLIGHT, (i) =>
  rawRun(model, `m3-${i}`, captured.get(`m3-${i}`) as string[], ticket(i), 'r-'),
);
const rawCpu = meter.stop();
const rawLat: number[] = [];
for (let i = 0; i < LATENCY_RUNS; i++) {
  const s = performance.now();
  await rawRun(model, `m1-${i}`, captured.get(`m1-${i}`) as string[], ticket(i), 'r-');
  rawLat.push(performance.now() - s);
}

// 2a. The floor: the same workload with no append at all (no durability), same SDK calls.
meter = cpuMeter({ pids: serverPids });
const floor = await pool(RUNS, INFLIGHT, (i) =>
  rawRun(model, `m3-${i}`, captured.get(`m3-${i}`) as string[], ticket(i), 'f-', null),
);
const floorCpu = meter.stop();

// 2b. Append-only: the same appends, same concurrency, no model and no effect.
meter = cpuMeter({ pids: serverPids });
const appendOnly = await pool(RUNS, INFLIGHT, async (i) => {
  const bodies = captured.get(`m3-${i}`) as string[];
  for (const [k, body] of bodies.entries()) await rawAppend(`a-m3-${i}`, k + 1, body);
});
const appendCpu = meter.stop();
const load2 = load1();
await rawClose();

const steps = RUNS * 3;
emitResult({
  backend,
  runs: RUNS,
  inflight: INFLIGHT,
  config,
  logBytes,
  events: events3,
  bytes,
  load: [load0, load2],
  plumbline: {
    stepsPerSec: steps / (plumb.wallMs / 1000),
    p50: percentile(plumb.latencies, 0.5),
    p99: percentile(plumb.latencies, 0.99),
    cpuPerRunMs: (plumbCpu.selfMs + plumbCpu.othersMs) / RUNS,
    serverCpuPerRunMs: plumbCpu.othersMs / RUNS,
    latP50: percentile(plumbLat, 0.5),
    latP99: percentile(plumbLat, 0.99),
  },
  raw: {
    stepsPerSec: steps / (raw.wallMs / 1000),
    p50: percentile(raw.latencies, 0.5),
    p99: percentile(raw.latencies, 0.99),
    cpuPerRunMs: (rawCpu.selfMs + rawCpu.othersMs) / RUNS,
    latP50: percentile(rawLat, 0.5),
    latP99: percentile(rawLat, 0.99),
  },
  floor: {
    stepsPerSec: steps / (floor.wallMs / 1000),
    cpuPerRunMs: (floorCpu.selfMs + floorCpu.othersMs) / RUNS,
  },
  appendOnly: {
    appendsPerSec: events3 / (appendOnly.wallMs / 1000),
    cpuPerAppendUs: ((appendCpu.selfMs + appendCpu.othersMs) * 1000) / events3,
  },
  overhead: raw.wallMs > 0 ? plumb.wallMs / raw.wallMs : Number.NaN,
  cpuOverhead: (plumbCpu.selfMs + plumbCpu.othersMs) / (rawCpu.selfMs + rawCpu.othersMs),
});

await fake.close();
if (nats !== undefined) await nats[Symbol.asyncDispose]();
rmSync(dir, { recursive: true, force: true });
process.exit(0);
