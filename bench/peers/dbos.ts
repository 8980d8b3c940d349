/**
 * Peer: DBOS Transact (@dbos-inc/dbos-sdk) on this machine's PostgreSQL (127.0.0.1:5432, trust
 * auth), the benchmark workload as one workflow with one `DBOS.runStep` per step. Each run of
 * this script uses a fresh system database, dropped at the end.
 * Usage: node --import tsx bench/peers/dbos.ts [--runs N] [--inflight C] [--latency L]
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DBOS } from '@dbos-inc/dbos-sdk';
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

const RUNS = numArg('runs', 1000);
const INFLIGHT = numArg('inflight', 100);
const LATENCY_RUNS = numArg('latency', 200);
const PG = process.env.BENCH_PG ?? 'postgres://postgres@127.0.0.1:5432';
const DB = `dbos_bench_${process.pid}`;

const dir = mkdtempSync(join(tmpdir(), 'plumbline-bench-dbos-'));
const sink = join(dir, 'sink.jsonl');
const fake = await startFakeProcess('valid');
const model = modelClient(fake.url);

const three = DBOS.registerWorkflow(
  async (input: Ticket & { runId: string }) => {
    const c = await DBOS.runStep(
      () => callModel(model, 'classify', Classification, classifyPrompt(input)),
      { name: 'classify' },
    );
    const s = await DBOS.runStep(
      () => callModel(model, 'summarize', Summary, summarizePrompt(input, c)),
      { name: 'summarize' },
    );
    return DBOS.runStep(() => record(sink, input.runId, s), { name: 'record' });
  },
  { name: 'three' },
);
const one = DBOS.registerWorkflow(
  async (input: Ticket) =>
    DBOS.runStep(() => callModel(model, 'classify', Classification, classifyPrompt(input)), {
      name: 'classify',
    }),
  { name: 'one' },
);

DBOS.setConfig({ name: 'plumbline-bench', systemDatabaseUrl: `${PG}/${DB}`, logLevel: 'error' });
await DBOS.launch();

await pool(warmupRuns(), 50, (i) => three({ ...ticket(i), runId: `w3-${i}` }));
for (let i = 0; i < 20; i++) await one(ticket(i));

const load0 = load1();
const meter = cpuMeter({ names: ['postgres'] });
const res = await pool(RUNS, INFLIGHT, (i) => three({ ...ticket(i), runId: `m3-${i}` }));
const cpu = meter.stop();
const lat = await latencies(LATENCY_RUNS, (i) => one(ticket(i)));
emitResult({
  system: 'dbos',
  runs: RUNS,
  load: [load0, load1()],
  ...runFigures({ runs: RUNS, wallMs: res.wallMs, loaded: res.latencies, cpu, alone: lat }),
});

await DBOS.shutdown();
await fake.close();
execFileSync('psql', [PG + '/postgres', '-qc', `DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`], {
  stdio: 'ignore',
});
rmSync(dir, { recursive: true, force: true });
process.exit(0);
