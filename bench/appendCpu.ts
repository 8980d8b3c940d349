/**
 * The store's own CPU per 3-step run (issue 14): records the appends a real runtime makes for
 * 100 runs, then replays them into fresh SQLite stores and times only `log.append`, with
 * validation at the port on and off, and with `run.started` carrying its graph or not.
 * Usage: node --import tsx bench/appendCpu.ts [--repeat 20] [--synchronous NORMAL|FULL]
 * Prints `RESULT {json}`: CPU µs per run for each variant, and bytes per run.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Runtime, openSqliteStore, prepare } from '../src/index.js';
import type { NewEnvelope } from '../src/machines/events.js';
import type { ExpectedVersion, Store } from '../src/store/types.js';
import { startFakeProcess } from './lib/fake.js';
import { arg, emitResult, load1, numArg } from './lib/proc.js';
import { modelClient, pool, threeStep, ticket } from './workload.js';

type Append = [runId: string, events: NewEnvelope[], expected: ExpectedVersion];

const REPEAT = numArg('repeat', 20);
const synchronous = arg('synchronous', 'NORMAL') as 'NORMAL' | 'FULL';
const dir = mkdtempSync(join(tmpdir(), 'plumbline-append-'));
const fake = await startFakeProcess('valid');

// 1. Record what the runtime appends for 100 runs.
const captured: Append[] = [];
const source = openSqliteStore(join(dir, 'source.db'));
const recording: Store = {
  ...source,
  log: {
    ...source.log,
    append: async (...a) => {
      captured.push(structuredClone(a));
      return source.log.append(...a);
    },
  },
};
const rt = new Runtime({ store: recording, model: modelClient(fake.url) });
const p3 = prepare(threeStep(join(dir, 'sink.jsonl')));
await pool(100, 20, (i) => rt.start(p3, { input: ticket(i), runId: `r${i}` }));
await source.close();
await fake.close();
const runs = new Set(captured.map((a) => a[0])).size;

/** `run.started` without its graph, as the driver writes it once definitions are stored apart. */
const lean = (events: NewEnvelope[]): NewEnvelope[] =>
  events.map((e) =>
    e.event.type === 'run.started' ? { ...e, event: { ...e.event, definition: null } } : e,
  );

/** CPU µs per run of replaying every captured append `REPEAT` times into a fresh store. */
async function measure(name: string, validateAppends: boolean, strip: boolean): Promise<number> {
  const store = openSqliteStore(join(dir, `${name}.db`), { synchronous, validateAppends });
  const batches = captured.map(([id, ev, x]): Append => [id, strip ? lean(ev) : ev, x]);
  const start = process.cpuUsage();
  for (let r = 0; r < REPEAT; r++)
    for (const [id, ev, x] of batches) await store.log.append(`${id}-${r}`, ev, x);
  const used = process.cpuUsage(start);
  await store.close();
  return (used.user + used.system) / (runs * REPEAT);
}

const bytesPerRun = (strip: boolean): number =>
  captured.reduce(
    (n, [, ev]) =>
      n + (strip ? lean(ev) : ev).reduce((m, e) => m + Buffer.byteLength(JSON.stringify(e)), 0),
    0,
  ) / runs;

const load0 = load1();
// Warm up both paths (JIT), then measure, interleaved so load drifts hit both.
await measure('warm-a', true, false);
await measure('warm-b', false, true);
const out: Record<string, number[]> = { validated: [], unvalidated: [], unvalidatedLean: [] };
for (let i = 0; i < 3; i++) {
  out.validated?.push(await measure(`v${i}`, true, false));
  out.unvalidated?.push(await measure(`u${i}`, false, false));
  out.unvalidatedLean?.push(await measure(`l${i}`, false, true));
}
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[1] ?? NaN;
emitResult({
  synchronous,
  runs,
  appendsPerRun: captured.length / runs,
  repeat: REPEAT,
  load: [load0, load1()],
  cpuUsPerRun: Object.fromEntries(Object.entries(out).map(([k, v]) => [k, median(v)])),
  samples: out,
  bytesPerRun: { withGraph: bytesPerRun(false), lean: bytesPerRun(true) },
});
rmSync(dir, { recursive: true, force: true });
