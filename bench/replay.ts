/**
 * One repetition of figure 4, replay: the time `Runtime.rebuild` takes to fold a 100-event and
 * a 10,000-event run back from the store, without a snapshot and with one (taken 100 events
 * before the end of the 10,000-event run, 50 before the end of the 100-event run), plus the
 * split: reading + parsing the log vs. folding it in memory.
 * The runs are a model step failing with a retryable error and retried at once (ATTEMPT,
 * MODEL_ERROR, TIMER, ...), generated through the machine itself and appended in batches.
 * Usage: node --import tsx bench/replay.ts [--backend sqlite|jetstream] [--big 10000] [--reps 3]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import {
  Runtime,
  definePipeline,
  foldLog,
  llm,
  openSqliteStore,
  prepare,
  type Store,
} from '../src/index.js';
import type { MachineEvent, NewEnvelope } from '../src/machines/events.js';
import { step as foldStep, summarize, type RunSnapshot } from '../src/machines/fold.js';
import { persistable, restore } from '../src/machines/replay.js';
import { openJetStreamStore } from '../src/store/jetstream.js';
import { startNatsServer, type NatsServerHandle } from '../test/helpers/natsServer.js';
import { arg, emitResult, load1, numArg } from './lib/proc.js';
import { MODEL, Ticket, ticket } from './workload.js';

const backend = arg('backend', 'sqlite') as 'sqlite' | 'jetstream';
const BIG = numArg('big', 10_000);
const REPS = numArg('reps', 3);

const dir = mkdtempSync(join(tmpdir(), 'plumbline-bench-replay-'));
let nats: NatsServerHandle | undefined;
let store: Store;
if (backend === 'jetstream') {
  nats = await startNatsServer();
  store = await openJetStreamStore({ servers: nats.url });
} else {
  store = openSqliteStore(join(dir, 'replay.db'));
}
const prepared = prepare(
  definePipeline({
    name: 'replay',
    version: '1',
    input: Ticket,
    retry: { maxAttempts: 100_000, baseMs: 0, maxBackoffMs: 0 },
    steps: [
      llm({
        name: 'classify',
        model: MODEL,
        prompt: ({ input }) => (input as Ticket).text,
        output: z.object({ ok: z.boolean() }),
      }),
    ],
  }),
);
const rt = new Runtime({ store });

/** Writes a run of exactly `n` events (n ≡ 1 mod 3); saves a snapshot after `snapAt` if given. */
async function makeRun(runId: string, n: number, snapAt?: number): Promise<void> {
  await rt.create(prepared, { input: ticket(0), runId, limits: { maxIterations: 100_000 } });
  let { snapshot } = await rt.rebuild(prepared, runId);
  let seq = 1;
  let batch: NewEnvelope[] = [];
  let at = Date.now();
  const push = (event: MachineEvent): void => {
    const next: RunSnapshot = foldStep(prepared.machine, snapshot, event);
    if (next === snapshot)
      throw new Error(`${event.type} not accepted in ${JSON.stringify(snapshot.value)}`);
    snapshot = next;
    batch.push({ v: 1, at, event, state: summarize(snapshot) });
  };
  const flush = async (): Promise<void> => {
    if (batch.length === 0) return;
    seq = await store.log.append(runId, batch, seq);
    batch = [];
  };
  for (let attempt = 1; seq + batch.length < n; attempt++) {
    at += 1;
    push({
      type: 'ATTEMPT',
      step: 'classify',
      attempt,
      at,
      estimate: { inputTokens: 12, maxTokens: 1024, usd: 0.0154 },
      breaker: 'closed',
      model: MODEL,
    });
    push({
      type: 'MODEL_ERROR',
      step: 'classify',
      attempt,
      requestId: `req_${attempt}`,
      model: MODEL,
      status: 529,
      kind: 'overloaded',
      retryable: true,
      message: 'Overloaded',
      delayMs: 0,
      retryAt: at,
      usage: null,
      costUsd: 0,
      durationMs: 1,
    });
    push({ type: 'TIMER', step: 'classify', at });
    if (snapAt !== undefined && seq + batch.length === snapAt) {
      await flush();
      await store.log.saveSnapshot(runId, {
        seq,
        machineHash: prepared.hash,
        snapshot: persistable(snapshot),
      });
    }
    if (batch.length >= 300) await flush();
  }
  await flush();
  if (seq !== n) throw new Error(`run ${runId} has ${seq} events, wanted ${n}`);
}

const SMALL = 100;
await makeRun('small', SMALL);
await makeRun('small-snap', SMALL, SMALL - 51);
await makeRun('big', BIG);
await makeRun('big-snap', BIG, BIG - 99);

async function time(f: () => Promise<unknown>): Promise<number> {
  await f(); // warm
  const xs: number[] = [];
  for (let i = 0; i < REPS; i++) {
    const s = performance.now();
    await f();
    xs.push(performance.now() - s);
  }
  return xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
}

const load0 = load1();
const out: Record<string, { ms: number; eventsPerSec: number }> = {};
for (const [name, n] of [
  ['small', SMALL],
  ['small-snap', SMALL],
  ['big', BIG],
  ['big-snap', BIG],
] as const) {
  const ms = await time(() => rt.rebuild(prepared, name));
  out[name] = { ms, eventsPerSec: n / (ms / 1000) };
}
// The split for the big run: reading + parsing vs. folding in memory.
const events = await store.log.read('big', 1);
const readMs = await time(() => store.log.read('big', 1));
const foldMs = await time(async () => foldLog(prepared.machine, prepared.hash, 'big', events));
// What a rebuild with a snapshot would cost if it read only the tail after the snapshot
// (the fix proposed in BENCHMARKS.md), the run.started event being already at hand.
const head = (await store.log.read('big-snap', 1))[0];
const tailOnlyMs = await time(async () => {
  const saved = await store.log.loadSnapshot('big-snap');
  if (saved === undefined || head === undefined) throw new Error('no snapshot');
  const tail = await store.log.read('big-snap', saved.seq + 1);
  return foldLog(prepared.machine, prepared.hash, 'big-snap', [head, ...tail], {
    from: { seq: saved.seq, snapshot: restore(prepared.machine, saved.snapshot) },
  });
});
const check = await rt.rebuild(prepared, 'big-snap');
const full = await rt.rebuild(prepared, 'big');
const essence = (x: RunSnapshot): string =>
  JSON.stringify([x.value, x.context.attempts, x.context.iterations, x.context.last]);
if (essence(check.snapshot) !== essence(full.snapshot) || check.seq !== full.seq) {
  throw new Error('the fold from a snapshot differs from the full fold');
}
emitResult({
  backend,
  load: [load0, load1()],
  small: out.small,
  smallSnap: out['small-snap'],
  big: out.big,
  bigSnap: out['big-snap'],
  bigReadMs: readMs,
  bigFoldMs: foldMs,
  bigFoldEventsPerSec: BIG / (foldMs / 1000),
  bigReadEventsPerSec: BIG / (readMs / 1000),
  bigSnapTailOnly: { ms: tailOnlyMs, eventsPerSec: BIG / (tailOnlyMs / 1000) },
});
await store.close();
if (nats !== undefined) await nats[Symbol.asyncDispose]();
rmSync(dir, { recursive: true, force: true });
process.exit(0);
