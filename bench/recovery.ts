/**
 * Figure 5, recovery: two `plumbline worker` processes with the default settings (ack wait,
 * heartbeats, max deliver, lease TTL; only `--concurrency 32`) drive runs from a NATS JetStream
 * store and work queue that this script starts. Each round queues a few runs, waits until they
 * are running, SIGKILLs the worker that holds the most of them, and times, for every run that
 * worker held, how long until the run appends again (on the other worker). The killed worker is
 * then replaced. Which worker holds a run is read from the workers' own log lines.
 * `--ack-wait` / `--max-deliver` are passed to the workers only when given (to compare settings).
 * Usage: node --import tsx bench/recovery.ts [--kills 20] [--per-round 8] [--ack-wait 2s]
 *   [--max-deliver 50]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { connect } from '@nats-io/transport-node';
import { DEFAULT_ACK_WAIT_MS } from '../src/bus/types.js';
import { openNatsBusFromUrl } from '../src/cli/natsStore.js';
import { startNatsServer } from '../test/helpers/natsServer.js';
import { startFakeProcess } from './lib/fake.js';
import { arg, emitResult, load1, numArg } from './lib/proc.js';
import { percentile } from './lib/stats.js';

const KILLS = numArg('kills', 20);
const PER_ROUND = numArg('per-round', 8);
const ACK_WAIT = arg('ack-wait');
const MAX_DELIVER = arg('max-deliver');
const BIN = fileURLToPath(new URL('../bin/plumbline.mjs', import.meta.url));
const PIPELINES = fileURLToPath(new URL('./recoveryPipeline.ts', import.meta.url));

const nats = await startNatsServer();
const fake = await startFakeProcess('delay:20');
const spec = nats.url;

// The observer: every event every worker appends, as it is stored.
const nc = await connect({ servers: nats.url, noAsyncTraces: true });
const lastEvent = new Map<string, { at: number; status: string; seq: number }>();
const waiting = new Map<string, { after: number; resolve: (t: number) => void }>();
void (async () => {
  for await (const m of nc.subscribe('plumbline.run.*.ev')) {
    const now = Date.now();
    const e = m.json<{ runId: string; seq: number; at: number; state: { status: string } }>();
    lastEvent.set(e.runId, { at: e.at, status: e.state.status, seq: e.seq });
    const w = waiting.get(e.runId);
    if (w !== undefined && e.at > w.after) {
      waiting.delete(e.runId);
      w.resolve(now);
    }
  }
})();

interface Worker {
  id: number;
  child: ChildProcess;
  ready: Promise<void>;
}
const owner = new Map<string, number>(); // runId -> worker id that last logged about it
const takenOver = new Map<string, number>(); // runId -> time of its last "take over" log line
let nextId = 0;

function startWorker(): Worker {
  const id = nextId++;
  const child = spawn(
    process.execPath,
    [
      BIN,
      'worker',
      '--store',
      spec,
      '--pipelines',
      PIPELINES,
      '--concurrency',
      '32',
      ...(ACK_WAIT !== undefined ? ['--ack-wait', ACK_WAIT] : []),
      ...(MAX_DELIVER !== undefined ? ['--max-deliver', MAX_DELIVER] : []),
    ],
    {
      env: { ...process.env, ANTHROPIC_BASE_URL: fake.url, ANTHROPIC_API_KEY: 'bench' },
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  const ready = new Promise<void>((resolve, reject) => {
    const lines = createInterface({ input: child.stderr as NodeJS.ReadableStream });
    lines.on('line', (line) => {
      let rec: { runId?: string; msg?: string; time?: number };
      try {
        rec = JSON.parse(line) as typeof rec;
      } catch {
        return;
      }
      if (rec.msg === 'worker started') resolve();
      if (typeof rec.runId === 'string') owner.set(rec.runId, id);
      if (rec.msg === 'take over' && typeof rec.runId === 'string' && typeof rec.time === 'number')
        takenOver.set(rec.runId, rec.time);
    });
    child.once('exit', (code) =>
      reject(new Error(`worker ${id} exited with ${code} before it was ready`)),
    );
  });
  ready.catch(() => undefined);
  return { id, child, ready };
}

const bus = await openNatsBusFromUrl(spec);
const workers: Worker[] = [startWorker(), startWorker()];
await Promise.all(workers.map((w) => w.ready));

const perRun: number[] = [];
/** Kill → the other worker's "take over" line: the queue's redelivery alone, before the rebuild. */
const pickups: number[] = [];
const perKill: number[] = [];
const timeouts: string[] = [];
let runNo = 0;
const load0 = load1();
for (let k = 0; k < KILLS; k++) {
  const ids: string[] = [];
  for (let i = 0; i < PER_ROUND; i++) {
    const runId = `rec-${k}-${runNo++}`;
    ids.push(runId);
    await bus.publishStart({ runId, pipeline: 'recovery', input: { i: runNo } });
  }
  // Wait until every new run is under way.
  const deadline = Date.now() + 20_000;
  while (ids.some((id) => (lastEvent.get(id)?.seq ?? 0) < 3 || !owner.has(id))) {
    if (Date.now() > deadline) throw new Error(`round ${k}: runs did not start within 20 s`);
    await new Promise((r) => setTimeout(r, 20));
  }
  const held = (w: Worker): string[] =>
    [...owner.entries()]
      .filter(([id, o]) => o === w.id && lastEvent.get(id)?.status === 'running')
      .map(([id]) => id);
  const victim = workers.reduce((a, b) => (held(b).length > held(a).length ? b : a));
  const runs = held(victim);
  const tKill = Date.now();
  victim.child.kill('SIGKILL');
  const back = await Promise.all(
    runs.map(
      (id) =>
        new Promise<number | null>((resolve) => {
          const timer = setTimeout(() => {
            waiting.delete(id);
            resolve(null);
          }, 30_000);
          waiting.set(id, {
            after: tKill,
            resolve: (t) => {
              clearTimeout(timer);
              resolve(t - tKill);
            },
          });
        }),
    ),
  );
  for (const [i, ms] of back.entries()) {
    if (ms === null) timeouts.push(runs[i] as string);
    else perRun.push(ms);
  }
  const done = back.filter((x): x is number => x !== null);
  if (done.length > 0) perKill.push(Math.max(...done));
  await new Promise((r) => setTimeout(r, 200)); // the last log lines
  for (const id of runs) {
    const t = takenOver.get(id);
    if (t !== undefined && t >= tKill) pickups.push(t - tKill);
  }
  process.stderr.write(
    `kill ${k + 1}/${KILLS}: ${runs.length} runs held, back after ${done.map((x) => Math.round(x)).join(', ')} ms\n`,
  );
  // Replace the killed worker before the next round.
  const i = workers.indexOf(victim);
  const fresh = startWorker();
  workers[i] = fresh;
  await fresh.ready;
}

emitResult({
  kills: KILLS,
  ackWait: ACK_WAIT ?? `default (${DEFAULT_ACK_WAIT_MS / 1000}s)`,
  maxDeliver: MAX_DELIVER ?? 'default',
  load: [load0, load1()],
  runs: perRun.length,
  timeouts: timeouts.length,
  runP50: percentile(perRun, 0.5),
  runP99: percentile(perRun, 0.99),
  runMax: Math.max(...perRun),
  killP50: percentile(perKill, 0.5),
  killP99: percentile(perKill, 0.99),
  pickups: pickups.length,
  pickupP50: percentile(pickups, 0.5),
  pickupP99: percentile(pickups, 0.99),
  samples: perRun.map((x) => Math.round(x)),
});

for (const w of workers) w.child.kill('SIGKILL');
await bus.close();
await nc.close();
await fake.close();
await nats[Symbol.asyncDispose]();
process.exit(0);
