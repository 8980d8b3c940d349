/**
 * CPU of the pure part of a run's events, in-process: one 3-step run of the benchmark's pipeline
 * is made against the fake Claude, then its events are folded through the machine (from the
 * initial snapshot) and hashed into a chain (as the run writer does) many times over.
 * Usage: node --import tsx bench/foldCost.ts [--repeat N]   (prints one `RESULT {json}` line)
 */
import { Runtime, openSqliteStore, prepare } from '../src/index.js';
import { chain, GENESIS } from '../src/machines/chain.js';
import type { MachineEvent, RunStarted, StoredEnvelope } from '../src/machines/events.js';
import { initialSnapshot, runInputOf, step } from '../src/machines/fold.js';
import { startFakeProcess } from './lib/fake.js';
import { emitResult, numArg } from './lib/proc.js';
import { modelClient, threeStep, ticket } from './workload.js';

const REPEAT = numArg('repeat', 10_000);
const fake = await startFakeProcess('valid');
const store = openSqliteStore(':memory:');
const envs: StoredEnvelope[] = [];
const rt = new Runtime({ store, model: modelClient(fake.url), onEvent: (e) => envs.push(e) });
const p3 = prepare(threeStep('/dev/null'));
await rt.start(p3, { input: ticket(1), runId: 'f1' });
await fake.close();
await store.close();
const first = envs[0] as StoredEnvelope;
const started = first.event as RunStarted;
const events = envs.slice(1).map((e) => e.event as MachineEvent);

const fold = (): unknown => {
  let s = initialSnapshot(p3.machine, runInputOf('f1', started, first.at));
  for (const ev of events) s = step(p3.machine, s, ev);
  return s;
};
const hash = (): unknown =>
  chain(
    envs.map((e) => ({ v: 1 as const, at: e.at, event: e.event, state: e.state })),
    GENESIS,
    1,
  );

/** CPU microseconds per call of `f` (after a warm-up of a third as many calls). */
function cpuUs(f: () => unknown): number {
  for (let i = 0; i < REPEAT / 3; i++) f();
  const c = process.cpuUsage();
  for (let i = 0; i < REPEAT; i++) f();
  const d = process.cpuUsage(c);
  return (d.user + d.system) / REPEAT;
}

emitResult({
  events: envs.map((e) => e.event.type),
  foldUsPerRun: cpuUs(fold),
  chainUsPerRun: cpuUs(hash),
});
process.exit(0);
