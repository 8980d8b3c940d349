/**
 * Peer: LangGraph.js (@langchain/langgraph) with the SQLite checkpointer
 * (@langchain/langgraph-checkpoint-sqlite): the benchmark workload as a 3-node graph, one
 * thread per run, checkpointed after every node (the library's default durability).
 * Usage: node --import tsx bench/peers/langgraph.ts [--runs N] [--inflight C] [--latency L]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Annotation, END, START, StateGraph } from '@langchain/langgraph';
import { SqliteSaver } from '@langchain/langgraph-checkpoint-sqlite';
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

const dir = mkdtempSync(join(tmpdir(), 'plumbline-bench-langgraph-'));
const sink = join(dir, 'sink.jsonl');
const fake = await startFakeProcess('valid');
const model = modelClient(fake.url);
const checkpointer = SqliteSaver.fromConnString(join(dir, 'checkpoints.db'));

const State = Annotation.Root({
  input: Annotation<Ticket & { runId: string }>,
  classification: Annotation<unknown>,
  summary: Annotation<unknown>,
  recorded: Annotation<unknown>,
});
const three = new StateGraph(State)
  .addNode('classify', async (s) => ({
    classification: await callModel(model, 'classify', Classification, classifyPrompt(s.input)),
  }))
  .addNode('summarize', async (s) => ({
    summary: await callModel(
      model,
      'summarize',
      Summary,
      summarizePrompt(s.input, s.classification),
    ),
  }))
  .addNode('record', async (s) => ({ recorded: await record(sink, s.input.runId, s.summary) }))
  .addEdge(START, 'classify')
  .addEdge('classify', 'summarize')
  .addEdge('summarize', 'record')
  .addEdge('record', END)
  .compile({ checkpointer });
const one = new StateGraph(State)
  .addNode('classify', async (s) => ({
    classification: await callModel(model, 'classify', Classification, classifyPrompt(s.input)),
  }))
  .addEdge(START, 'classify')
  .addEdge('classify', END)
  .compile({ checkpointer });

const run3 = (runId: string, t: Ticket): Promise<unknown> =>
  three.invoke({ input: { ...t, runId } }, { configurable: { thread_id: runId } });
const run1 = (runId: string, t: Ticket): Promise<unknown> =>
  one.invoke({ input: { ...t, runId } }, { configurable: { thread_id: runId } });

await pool(warmupRuns(), 50, (i) => run3(`w3-${i}`, ticket(i)));
for (let i = 0; i < 20; i++) await run1(`w1-${i}`, ticket(i));

const load0 = load1();
const meter = cpuMeter();
const res = await pool(RUNS, INFLIGHT, (i) => run3(`m3-${i}`, ticket(i)));
const cpu = meter.stop();
const lat = await latencies(LATENCY_RUNS, (i) => run1(`m1-${i}`, ticket(i)));
emitResult({
  system: 'langgraph',
  runs: RUNS,
  load: [load0, load1()],
  ...runFigures({ runs: RUNS, wallMs: res.wallMs, loaded: res.latencies, cpu, alone: lat }),
  serverCpuPerRunMs: 0,
});

await fake.close();
rmSync(dir, { recursive: true, force: true });
process.exit(0);
