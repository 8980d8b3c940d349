/**
 * Chaos: `plumbline worker` processes drive hundreds of runs of a 3-call, 3-effect pipeline
 * (bench/chaosPipeline.ts, the crashy fixture with traced effects) against an in-process fake
 * Claude while this script SIGKILLs a random worker every 1–2 s (and restarts it) and, on NATS,
 * SIGKILLs the nats-server and restarts it on the same port and store dir. Runs are queued in
 * batches between kills so every kill lands under load. Once every run is terminal (or the
 * deadline passes) it audits: every log folds with contiguous seqs and an unbroken chain; every
 * effect re-execution is traced to a kill of the process that ran it before; every request the
 * fake received is accounted for by the log's calls of that run and step.
 * Usage: node --import tsx bench/chaos.ts --store sqlite|nats [--runs 500] [--worker-kills 30]
 *   [--server-kills 3] [--workers 3] [--concurrency 8] [--deadline-min 15] [--out file.json]
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { openNatsBus } from '../src/bus/nats.js';
import { openSqliteBus } from '../src/bus/sqlite.js';
import type { CommandBus } from '../src/bus/types.js';
import { loadPipeline } from '../src/runtime/load.js';
import { openJetStreamStore } from '../src/store/jetstream.js';
import { openSqliteStore } from '../src/store/sqlite.js';
import type { Store } from '../src/store/types.js';
import { startFakeClaude } from '../src/testing/index.js';
import { startNatsServer, type NatsServerHandle } from '../test/helpers/natsServer.js';
import { spawnWorker, type WorkerProc } from '../test/helpers/worker.js';
import {
  accountCalls,
  auditRun,
  classifyExtras,
  parseExecutions,
  type FakeCall,
  type Kill,
  type RunAudit,
} from './lib/chaosAudit.js';
import { arg, load1, numArg } from './lib/proc.js';

const BACKEND = arg('store', 'sqlite') as string;
if (BACKEND !== 'sqlite' && BACKEND !== 'nats') throw new Error('--store sqlite|nats');
const RUNS = numArg('runs', 500);
const WORKER_KILLS = numArg('worker-kills', 30);
const SERVER_KILLS = BACKEND === 'nats' ? numArg('server-kills', 3) : 0;
const WORKERS = numArg('workers', 3);
const CONCURRENCY = numArg('concurrency', 8);
const DEADLINE_MS = numArg('deadline-min', 15) * 60_000;
const ACK_WAIT_MS = 2_000;
const PIPELINE = 'bench/chaosPipeline.ts';
const TERMINAL = ['completed', 'failed', 'killed'] as const;
const STEPS = new Set(['first', 'second', 'third']);

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const say = (s: string): void => void process.stderr.write(`[chaos ${BACKEND}] ${s}\n`);

const dir = mkdtempSync(join(tmpdir(), `plumbline-chaos-${BACKEND}-`));
const sink = join(dir, 'sink');
const prepared = await loadPipeline(PIPELINE);

// The fake answers after 100–600 ms, so kills land mid-call as well as between calls.
const arrivals: number[] = [];
const fake = await startFakeClaude({
  script: (req) => {
    arrivals.push(Date.now());
    const m = req.body.messages as Array<{ content: string }>;
    const [label = ''] = String(m[0]?.content ?? '').split(' ');
    const then = { kind: 'json' as const, value: { label: `${label}-ok`, score: label.length } };
    return { kind: 'delay', ms: 100 + Math.floor(Math.random() * 500), then };
  },
});

let server: NatsServerHandle | undefined;
let spec: string;
let store: Store;
let bus: CommandBus;
if (BACKEND === 'nats') {
  server = await startNatsServer({ storeDir: join(dir, 'nats') });
  spec = server.url;
  store = await openJetStreamStore({ servers: spec });
  bus = await openNatsBus({ servers: spec, ackWaitMs: ACK_WAIT_MS });
} else {
  spec = join(dir, 'chaos.db');
  store = openSqliteStore(spec);
  bus = openSqliteBus(spec);
}

const all: WorkerProc[] = [];
const live = new Set<WorkerProc>();
let serial = 0;
async function startOne(): Promise<WorkerProc> {
  const w = await spawnWorker({
    name: `w${serial++}`,
    store: spec,
    pipelines: PIPELINE,
    ackWaitMs: ACK_WAIT_MS,
    concurrency: CONCURRENCY,
    env: { ANTHROPIC_BASE_URL: fake.url, CRASHY_SINK: sink },
  });
  all.push(w);
  live.add(w);
  void w.exited.then(() => live.delete(w));
  return w;
}

/** Retries `f` while the server is down (publishes and reads during a NATS outage). */
async function patiently<T>(f: () => Promise<T>): Promise<T> {
  for (let i = 0; ; i++) {
    try {
      return await f();
    } catch (e) {
      if (i >= 120) throw e;
      await sleep(500);
    }
  }
}

const ids = Array.from({ length: RUNS }, (_, i) => `c-${i}`);
let queued = 0;
async function enqueue(n: number): Promise<void> {
  const batch = ids.slice(queued, queued + n);
  queued += batch.length;
  for (const id of batch)
    await patiently(() => bus.publishStart({ runId: id, pipeline: 'chaos', input: { id } }));
}

async function terminalIds(): Promise<Set<string>> {
  const runs = await patiently(() => store.log.listRuns({ status: [...TERMINAL] }));
  return new Set(runs.map((r) => r.runId));
}

const kills: Kill[] = [];
const t0 = Date.now();
const loads: number[] = [load1()];
await Promise.all(Array.from({ length: WORKERS }, () => startOne()));
say(
  `${WORKERS} workers up; ${RUNS} runs, ${WORKER_KILLS} worker kills, ${SERVER_KILLS} server kills`,
);

// Server kills fall evenly among the worker kills.
const serverKillAfter = new Set(
  Array.from({ length: SERVER_KILLS }, (_, j) =>
    Math.floor(((j + 0.5) * WORKER_KILLS) / SERVER_KILLS),
  ),
);
const perKill = Math.ceil(RUNS / (WORKER_KILLS + 1));
await enqueue(perKill);
while (kills.filter((k) => k.what === 'worker').length < WORKER_KILLS) {
  await sleep(1_000 + Math.random() * 1_000);
  // A random worker among those driving unfinished runs (a kill of an idle one proves little).
  const before = await terminalIds();
  const unfinished = (w: WorkerProc): number =>
    new Set(
      w.lines.flatMap((l) => (l.runId !== undefined && !before.has(l.runId) ? [l.runId] : [])),
    ).size;
  const pool = [...live].filter((w) => unfinished(w) > 0);
  const from = pool.length > 0 ? pool : [...live];
  const victim = from[Math.floor(Math.random() * from.length)];
  if (victim === undefined) throw new Error('no live worker');
  const orphaned = unfinished(victim);
  kills.push({
    what: 'worker',
    name: victim.name,
    pid: victim.child.pid ?? 0,
    at: Date.now(),
    orphaned,
  });
  await victim.kill('SIGKILL');
  const n = kills.filter((k) => k.what === 'worker').length;
  if (server !== undefined && serverKillAfter.has(n)) {
    kills.push({ what: 'server', name: 'nats-server', pid: 0, at: Date.now() });
    await server.kill('SIGKILL');
    await sleep(1_000);
    await server.restart();
    say(`server kill ${kills.filter((k) => k.what === 'server').length} done`);
  }
  await startOne();
  await enqueue(perKill);
  loads.push(load1());
  const done = (await terminalIds()).size;
  say(
    `worker kill ${n} (${victim.name}, ${orphaned} runs unfinished); queued ${queued}, terminal ${done}`,
  );
}
await enqueue(RUNS - queued);
const killsEndedAt = Date.now();

// Wait until every run is terminal, or the deadline.
let terminal = await terminalIds();
let lastSaid = 0;
while (ids.some((id) => !terminal.has(id)) && Date.now() - t0 < DEADLINE_MS) {
  await sleep(500);
  terminal = await terminalIds();
  if (Date.now() - lastSaid > 10_000) {
    lastSaid = Date.now();
    say(`terminal ${ids.filter((id) => terminal.has(id)).length}/${RUNS}`);
    loads.push(load1());
  }
}
const wallMs = Date.now() - t0;
say(`audit after ${(wallMs / 1000).toFixed(1)} s`);
// Let in-flight writes of any straggler settle before reading the sink.
await sleep(3_000);

// ---------------------------------------------------------------------------------------------
// Audit

const audits: RunAudit[] = [];
for (const id of ids)
  audits.push(auditRun(prepared, id, await patiently(() => store.log.read(id))));
const byStatus: Record<string, number> = {};
for (const a of audits) byStatus[a.status] = (byStatus[a.status] ?? 0) + 1;

const execs = parseExecutions(readFileSync(join(sink, 'executions.log'), 'utf8'));
const keys = new Set(execs.map((e) => e.key));
const extras = classifyExtras(execs, kills);
const liveDup = extras.filter((x) => x.cause === 'live-duplicate');
const calls: FakeCall[] = [];
let countTokens = 0;
let i = 0;
for (const r of fake.requests) {
  if (r.path !== '/v1/messages') {
    countTokens++;
    continue;
  }
  const m = r.body.messages as Array<{ content: unknown }>;
  const c = m[0]?.content;
  const text = typeof c === 'string' ? c : JSON.stringify(c);
  const [step = '?', runId = '?'] = text.split(' ');
  calls.push({ runId, step: STEPS.has(step) ? step : `?${step}`, at: arrivals[i++] ?? 0 });
}
const acc = accountCalls(audits, calls);

/** Every worker line about a run, in time order, named by worker and pid. */
function linesAbout(runId: string): string[] {
  return all
    .flatMap((w) =>
      w.lines
        .filter((l) => l.runId === runId)
        .map((l) => ({
          t: l.time,
          s: `${l.time} ${w.name}/${w.child.pid} ${l.msg} ${l.decision ?? ''} ${l.reason ?? ''}`,
        })),
    )
    .sort((a, b) => a.t - b.t)
    .map((x) => x.s);
}
async function eventsOf(runId: string): Promise<string[]> {
  const log = await patiently(() => store.log.read(runId));
  return log.map((e) => {
    const ev = e.event as Record<string, unknown>;
    const extra = ['step', 'attempt', 'key', 'kind', 'unconfirmed'].filter(
      (k) => ev[k] !== undefined,
    );
    return `${e.seq} ${e.at} ${String(ev.type)} ${extra.map((k) => `${k}=${String(ev[k])}`).join(' ')}`;
  });
}

const notTerminal = audits.filter((a) => !(TERMINAL as readonly string[]).includes(a.status));
const badLogs = audits.filter((a) => a.problems.length > 0);
const details: Record<string, unknown>[] = [];
const investigate = new Set([
  ...notTerminal.slice(0, 5).map((a) => a.runId),
  ...badLogs.slice(0, 5).map((a) => a.runId),
  ...liveDup.slice(0, 5).map((x) => x.key.replace(/-(first|second|notify)$/, '')),
  ...acc.mismatches.slice(0, 5).map((m) => m.runId),
]);
for (const runId of investigate)
  details.push({
    runId,
    status: audits.find((a) => a.runId === runId)?.status,
    problems: audits.find((a) => a.runId === runId)?.problems,
    executions: execs.filter((e) => e.key.startsWith(`${runId}-`)),
    requests: calls.filter((c) => c.runId === runId),
    events: await eventsOf(runId),
    workerLines: linesAbout(runId),
  });
const dlq = await patiently(() => bus.deadLetters());
const workerErrors = all.flatMap((w) =>
  w.lines.filter((l) => l.level >= 50).map((l) => `${w.name} ${l.msg} ${l.reason ?? ''}`),
);

const result = {
  store: BACKEND === 'nats' ? 'NATS JetStream (nats-server 2.9, 1 node, file storage)' : 'SQLite',
  date: new Date().toISOString(),
  machine: { cores: cpus().length, node: process.version, load1: loads },
  command: `node --import tsx bench/chaos.ts ${process.argv.slice(2).join(' ')}`,
  workers: WORKERS,
  concurrency: CONCURRENCY,
  ackWaitMs: ACK_WAIT_MS,
  runs: RUNS,
  terminal: RUNS - notTerminal.length,
  byStatus,
  workerKills: kills.filter((k) => k.what === 'worker').length,
  serverKills: kills.filter((k) => k.what === 'server').length,
  wallSeconds: Math.round(wallMs / 100) / 10,
  runsUnfinishedInKilledWorkers: kills.reduce((n, k) => n + (k.orphaned ?? 0), 0),
  killPhaseSeconds: Math.round((killsEndedAt - t0) / 100) / 10,
  events: audits.reduce((n, a) => n + a.events, 0),
  logsBad: badLogs.length,
  effects: {
    executions: execs.length,
    distinctKeys: keys.size,
    expectedKeys: RUNS * 3,
    effectDoneEvents: audits.reduce((n, a) => n + a.effectsDone, 0),
    effectDoneReplayed: audits.reduce((n, a) => n + a.replayedDone, 0),
    effectStartedEvents: audits.reduce((n, a) => n + a.effectsStarted, 0),
    effectFailedEvents: audits.reduce((n, a) => n + a.effectsFailed, 0),
    extras: execs.length - keys.size,
    extrasAfterWorkerKill: extras.filter((x) => x.cause === 'worker-killed').length,
    extrasAcrossServerKill: extras.filter((x) => x.cause === 'across-server-kill').length,
    duplicatesBetweenLiveProcesses: liveDup.length,
    allowedExtrasUpperBound: kills.filter((k) => k.what === 'worker').length,
  },
  requests: {
    received: acc.requests,
    countTokensRequests: countTokens,
    attempts: acc.attempts,
    modelResponses: acc.responses,
    modelErrorsRecorded: acc.errors,
    lostCalls: acc.lost,
    lostCallsNeverSent: acc.lostUnsent,
    unaccounted: acc.mismatches.reduce((n, m) => n + m.unaccounted, 0),
    recordedWithoutRequest: acc.mismatches.reduce((n, m) => n + m.phantom, 0),
  },
  deadLetters: dlq.length,
  workerErrorLines: workerErrors.length,
  problems: {
    notTerminal: notTerminal.map((a) => `${a.runId} ${a.status}`),
    badLogs: badLogs.map((a) => `${a.runId}: ${a.problems.join('; ')}`),
    liveDuplicates: liveDup,
    acrossServerKill: extras.filter((x) => x.cause === 'across-server-kill'),
    // Each allowed extra with the kill that excuses it (the earlier executor's SIGKILL).
    afterWorkerKill: extras
      .filter((x) => x.cause === 'worker-killed')
      .map((x) => ({
        ...x,
        kill: kills.find(
          (k) => k.what === 'worker' && k.pid === x.previous.pid && k.at >= x.previous.at,
        ),
      })),
    callMismatches: acc.mismatches,
    deadLetters: dlq.map((d) => d.reason),
    workerErrors: workerErrors.slice(0, 50),
    details,
  },
  kills,
};

const out = arg('out', `bench/results/chaos-${BACKEND}.json`) as string;
writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);
const e = result.effects;
const q = result.requests;
const table = [
  `| store | runs | terminal (by status) | worker kill -9s | server kill -9s | wall time | events | logs that fail replay / seqs / chain | effect executions / distinct keys / EFFECT_DONE | extras (after a worker kill / across a server kill / between live processes) | allowed extras ≤ worker kills | requests at the fake | recorded outcomes + lost calls | unaccounted requests | dead letters |`,
  `|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|`,
  `| ${result.store} | ${RUNS} | ${result.terminal} (${Object.entries(byStatus)
    .map(([k, v]) => `${k} ${v}`)
    .join(
      ', ',
    )}) | ${result.workerKills} | ${result.serverKills} | ${result.wallSeconds} s | ${result.events} | ${result.logsBad} | ${e.executions} / ${e.distinctKeys} / ${e.effectDoneEvents} | ${e.extras} (${e.extrasAfterWorkerKill} / ${e.extrasAcrossServerKill} / **${e.duplicatesBetweenLiveProcesses}**) | ${e.allowedExtrasUpperBound} | ${q.received} | ${q.modelResponses + q.modelErrorsRecorded} + ${q.lostCalls} (${q.lostCallsNeverSent} never sent) | **${q.unaccounted}** | ${result.deadLetters} |`,
].join('\n');
process.stdout.write(
  `${JSON.stringify({ ...result, problems: undefined, kills: undefined }, null, 2)}\n\n${table}\n`,
);
say(`full report in ${out}`);

await Promise.all([...live].map((w) => w.kill('SIGTERM')));
await bus.close();
await store.close();
await fake.close();
await server?.[Symbol.asyncDispose]();
const clean =
  notTerminal.length + badLogs.length + liveDup.length + acc.mismatches.length + dlq.length === 0;
if (clean) rmSync(dir, { recursive: true, force: true });
else {
  // Kept for a post-mortem: the store, the sink and every worker's log lines.
  const lines = all.flatMap((w) =>
    w.lines.map((l) => JSON.stringify({ w: w.name, pid: w.child.pid, ...l })),
  );
  writeFileSync(join(dir, 'workers.ndjson'), `${lines.join('\n')}\n`);
  say(`problems found: store, sink and worker logs kept in ${dir}`);
}
