/**
 * Where a JetStream-backed run's NATS requests go: runs N 3-step runs (C in flight) against a
 * fresh nats-server and counts every request the store's connection makes, by kind, per run.
 * Usage: node --import tsx bench/jsRequests.ts [--runs N] [--inflight C]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Runtime, prepare } from '../src/index.js';
import { Breakers } from '../src/runtime/breakers.js';
import { openJetStreamStore } from '../src/store/jetstream.js';
import { startNatsServer } from '../test/helpers/natsServer.js';
import { startFakeProcess } from './lib/fake.js';
import { numArg } from './lib/proc.js';
import { modelClient, pool, threeStep, ticket } from './workload.js';

const RUNS = numArg('runs', 300);
const INFLIGHT = numArg('inflight', 100);
const dir = mkdtempSync(join(tmpdir(), 'plumbline-jsreq-'));
const fake = await startFakeProcess('valid');
const nats = await startNatsServer();
const store = await openJetStreamStore({ servers: nats.url });
const rt = new Runtime({
  store,
  model: modelClient(fake.url),
  breakers: new Breakers(store.control, {}),
});
const p3 = prepare(threeStep(join(dir, 'sink.jsonl')));

/** A request's kind: the JetStream API verb, or the KV bucket / stream subject it publishes to. */
function kindOf(subject: string): string {
  if (subject.startsWith('$JS.API.DIRECT.GET.')) return `direct.get ${subject.split('.')[4]}`;
  if (subject.startsWith('$JS.API.')) return subject.split('.').slice(2, 4).join('.');
  if (subject.startsWith('$KV.')) return `kv.put ${subject.split('.')[1]}`;
  if (subject.startsWith('$O.')) return 'objectstore';
  return `publish ${subject.split('.').slice(0, 2).join('.')}`;
}
const counts = new Map<string, number>();
let counting = false;
const nc = store.connection as unknown as {
  request: (s: string, ...rest: unknown[]) => Promise<unknown>;
};
const orig = nc.request.bind(nc);
nc.request = (s: string, ...rest: unknown[]) => {
  if (counting) counts.set(kindOf(s), (counts.get(kindOf(s)) ?? 0) + 1);
  return orig(s, ...rest);
};

await pool(50, 50, (i) => rt.start(p3, { input: ticket(i), runId: `w-${i}` }));
counting = true;
const t0 = performance.now();
await pool(RUNS, INFLIGHT, (i) => rt.start(p3, { input: ticket(i), runId: `m-${i}` }));
const wallMs = performance.now() - t0;
counting = false;
await store.close();
let total = 0;
for (const [k, n] of [...counts.entries()].sort((a, b) => b[1] - a[1])) {
  total += n;
  process.stdout.write(`${(n / RUNS).toFixed(2).padStart(6)}  ${k}\n`);
}
process.stdout.write(
  `${(total / RUNS).toFixed(2).padStart(6)}  total per run; ${((RUNS * 3) / (wallMs / 1000)).toFixed(0)} steps/s\n`,
);
await fake.close();
await nats[Symbol.asyncDispose]();
rmSync(dir, { recursive: true, force: true });
process.exit(0);
