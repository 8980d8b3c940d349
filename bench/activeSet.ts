/**
 * The active set after many ended runs (issue 14): a `max_msgs_per_subject: 1` stream with one
 * subject per run, `--runs` messages published (default 1,000,000) and every one deleted but 1 in
 * 10,000 — the layout `<PREFIX>_ACTIVE` has after that many runs started and ended. Then, on a
 * restarted server (cold) and again (warm), lists the live subjects two ways:
 * - a short-lived consumer (`readRange`, how the store read the active set before), and
 * - `STREAM.INFO` with `subjects_filter` (how it reads it now).
 *
 * Usage: node --import tsx bench/activeSet.ts [--runs 1000000]
 */
import {
  DiscardPolicy,
  jetstream,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
} from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { readRange } from '../src/store/natsRead.js';
import { startNatsServer } from '../test/helpers/natsServer.js';
import { emitResult, load1, numArg } from './lib/proc.js';

const RUNS = numArg('runs', 1_000_000);
const STREAM = 'B_ACTIVE';

/** Runs `op(i)` for i < n with at most 512 in flight. */
async function pipelined(n: number, op: (i: number) => Promise<unknown>): Promise<void> {
  const inflight = new Set<Promise<unknown>>();
  for (let i = 0; i < n; i++) {
    const p = op(i);
    inflight.add(p);
    void p.finally(() => inflight.delete(p));
    if (inflight.size >= 512) await Promise.race(inflight);
  }
  await Promise.all(inflight);
}

await using server = await startNatsServer();
let nc = await connect({ servers: server.url, noAsyncTraces: true });
let jsm = await jetstreamManager(nc);
await jsm.streams.add({
  name: STREAM,
  subjects: ['b.active.*'],
  storage: StorageType.File,
  retention: RetentionPolicy.Limits,
  discard: DiscardPolicy.Old,
  max_msgs_per_subject: 1,
  allow_direct: true,
});
const js = jetstream(nc);
let t = performance.now();
const seqs: number[] = [];
await pipelined(RUNS, async (i) => {
  seqs[i] = (await js.publish(`b.active.r${String(i).padStart(8, '0')}`, 'x')).seq;
});
// Deleting by sequence leaves the same layout as purging each ended run's subject, faster.
await pipelined(RUNS, async (i) => {
  if (i % 10_000 !== 7) await jsm.streams.deleteMessage(STREAM, seqs[i] as number, false);
});
const fillSeconds = (performance.now() - t) / 1000;
const state = (await jsm.streams.info(STREAM)).state;

const viaConsumer = async (): Promise<number> =>
  (await readRange(jetstream(nc), jsm, { stream: STREAM })).length;
const viaSubjects = async (): Promise<number> =>
  Object.keys(
    (await jsm.streams.info(STREAM, { subjects_filter: 'b.active.*' })).state.subjects ?? {},
  ).length;

const out: Record<string, unknown> = {
  runs: RUNS,
  fillSeconds,
  state: { messages: state.messages, first_seq: state.first_seq, num_deleted: state.num_deleted },
};
for (const [name, f] of [
  ['consumer (before)', viaConsumer],
  ['stream info subjects (now)', viaSubjects],
] as const) {
  // Cold: a restarted server.
  await nc.close();
  await server.stop();
  await server.restart();
  nc = await connect({ servers: server.url, noAsyncTraces: true });
  jsm = await jetstreamManager(nc);
  const ms: number[] = [];
  let found = 0;
  for (let k = 0; k < 4; k++) {
    t = performance.now();
    found = await f();
    ms.push(Math.round(performance.now() - t));
  }
  out[name] = { found, coldMs: ms[0], warmMs: ms.slice(1), load1: load1() };
}
await nc.close();
emitResult(out);
