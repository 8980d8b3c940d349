/**
 * Figure 5, recovery: two `plumbline worker` processes (ack wait 2 s) drive runs from a NATS
 * JetStream store and work queue that this script starts. Each round queues a few runs, waits
 * until they are running, SIGKILLs the worker that holds the most of them, and times, for every
 * run that worker held, how long until the run appends again (on the other worker). The killed
 * worker is then replaced. Which worker holds a run is read from the workers' own log lines.
 * `--max-deliver 50` keeps the dead-letter limit (default 5) out of the way of runs that live
 * through several kills.
 * Usage: node --import tsx bench/recovery.ts [--kills 20] [--per-round 8] [--ack-wait 2s]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { connect } from '@nats-io/transport-node';
import { openNatsBusFromUrl } from '../src/cli/natsStore.js';
import { startNatsServer } from '../test/helpers/natsServer.js';
import { startFakeProcess } from './lib/fake.js';
import { arg, emitResult, load1, numArg } from './lib/proc.js';
import { percentile } from './lib/stats.js';

const KILLS = numArg('kills', 20);
const PER_ROUND = numArg('per-round', 8);
const ACK_WAIT = arg('ack-wait', '2s') as string;
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
      '--ack-wait',
      ACK_WAIT,
      '--concurrency',
      '32',
      '--max-deliver',
      '50',
    ],
    {
      env: { ...process.env, ANTHROPIC_BASE_URL: fake.url, ANTHROPIC_API_KEY: 'bench' },
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  const ready = new Promise<void>((resolve, reject) => {
    const lines = createInterface({ input: child.stderr as NodeJS.ReadableStream });
    lines.on('line', (line) => {
      let rec: { runId?: string; msg?: string };
      try {
        rec = JSON.parse(line) as typeof rec;
      } catch {
        return;
      }
      if (rec.msg === 'worker started') resolve();
      if (typeof rec.runId === 'string') owner.set(rec.runId, id);
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
  ackWait: ACK_WAIT,
  load: [load0, load1()],
  runs: perRun.length,
  timeouts: timeouts.length,
  runP50: percentile(perRun, 0.5),
  runP99: percentile(perRun, 0.99),
  runMax: Math.max(...perRun),
  killP50: percentile(perKill, 0.5),
  killP99: percentile(perKill, 0.99),
  samples: perRun.map((x) => Math.round(x)),
});

for (const w of workers) w.child.kill('SIGKILL');
await bus.close();
await nc.close();
await fake.close();
await nats[Symbol.asyncDispose]();
process.exit(0);
