/**
 * Replay fidelity for the constructs of issue 11: fast-check generates pipelines that nest
 * `route` (branches of 0..2 steps, routes inside branches), `parallel` (2..3 branches), `map` and
 * `call` among llm, effect and transform steps, and for each one many event sequences (ROUTE,
 * CHILDREN_STARTED, BRANCH_DONE in any order, CHILDREN_DONE, CHILDREN_PARKED then RESUME, KILL…).
 * A live XState actor receives each sequence; the log goes through a real SQLite store and is
 * folded back (`foldLog`, verifying every recorded state). Live and fold must agree on value and
 * context after every event, and each generated machine's recordable states must all be visited.
 *
 * Recordable = the atomic and final states of `describeMachine(graph)` that its edges reach from
 * the initial state, minus the transient ones. Excluded, and why:
 * - transient states (an llm step's `limits`, `validate`, `retry`, an effect's `retry`): they
 *   have an unguarded `always` edge, so the machine never rests in them after an event;
 * - states no edge leads to, e.g. `parked` in a machine whose steps cannot park (only effect,
 *   transform and route steps: no ATTEMPT, no CHILDREN_PARKED).
 * A parallel region's `done` is recordable because every generated parallel has 2..3 branches
 * (with one branch it would be left at once by the join, in the same macrostep).
 */
import fc from 'fast-check';
import { createActor } from 'xstate';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { call, machineSteps, map, parallel, route } from '../src/machines/constructs.js';
import type { NewEnvelope } from '../src/machines/events.js';
import { summarize, type RunSnapshot } from '../src/machines/fold.js';
import type { MachineGraph } from '../src/machines/graph.js';
import { definePipeline, effect, llm, step, type Step } from '../src/machines/pipeline.js';
import { foldLog } from '../src/machines/replay.js';
import { prepare, type Prepared } from '../src/runtime/prepare.js';
import { openSqliteStore } from '../src/store/sqlite.js';
import type { Store } from '../src/store/types.js';
import { Explorer, nextEvent, type StepInfo } from './helpers/constructEvents.js';

/** The shape of a generated step (names are given when the pipeline is built). */
type Shape =
  | { k: 'llm' | 'effect' | 'step' | 'map' | 'call' }
  | { k: 'parallel'; n: number }
  | { k: 'route'; branches: Shape[][] };

const leafShape: fc.Arbitrary<Shape> = fc.oneof(
  fc.constantFrom<Shape>({ k: 'llm' }, { k: 'effect' }, { k: 'step' }, { k: 'map' }, { k: 'call' }),
  fc.integer({ min: 2, max: 3 }).map((n): Shape => ({ k: 'parallel', n })),
);

function shapeArb(depth: number): fc.Arbitrary<Shape> {
  if (depth === 0) return leafShape;
  const routeShape = fc
    .array(fc.array(shapeArb(depth - 1), { maxLength: 2 }), { minLength: 1, maxLength: 3 })
    .map((branches): Shape => ({ k: 'route', branches }));
  return fc.oneof({ arbitrary: leafShape, weight: 3 }, { arbitrary: routeShape, weight: 2 });
}

const size = (seq: Shape[]): number =>
  seq.reduce((n, s) => n + 1 + (s.k === 'route' ? size(s.branches.flat()) : 0), 0);
const nests = (seq: Shape[]): boolean =>
  seq.some((s) => s.k === 'route' || s.k === 'parallel' || s.k === 'map' || s.k === 'call');

/** Top-level sequences of 1..4 steps, routes nested two deep, at most 10 machine steps. */
const pipelineShape = fc
  .array(shapeArb(2), { minLength: 1, maxLength: 4 })
  .filter((seq) => size(seq) <= 10 && nests(seq));

const Item = z.unknown();
const callee = definePipeline({
  name: 'callee',
  version: '1',
  input: Item,
  steps: [step({ name: 'echo', run: () => 1 })],
});

function build(shapes: Shape[]): Prepared {
  let n = 0;
  const seq = (list: Shape[]): Step[] =>
    list.map((s): Step => {
      const name = `s${n++}`;
      switch (s.k) {
        case 'llm':
          return llm({
            name,
            model: 'claude-haiku-4-5',
            prompt: () => 'q',
            output: z.object({ a: z.string() }),
            maxValidationAttempts: 2,
            maxTokensOnRetry: 2048,
          });
        case 'effect':
          return effect({ name, key: () => 'k', run: () => null, maxAttempts: 2 });
        case 'step':
          return step({ name, run: () => 1 });
        case 'map':
          return map({ name, over: () => [], steps: [step({ name: 'item', run: () => 1 })] });
        case 'call':
          return call({ name, pipeline: callee, input: () => ({}) });
        case 'parallel': {
          const branches = Array.from({ length: s.n }, (_, i) => [
            `p${i}`,
            [step({ name: 'work', run: () => i })],
          ]);
          return parallel({ name, branches: Object.fromEntries(branches) });
        }
        case 'route':
          return route({
            name,
            choose: () => 'b0',
            branches: Object.fromEntries(s.branches.map((b, i) => [`b${i}`, seq(b)])),
          });
      }
    });
  const pipeline = definePipeline({
    name: 'nested',
    version: '1',
    input: z.object({ q: z.string() }),
    retry: { maxAttempts: 3 },
    steps: seq(shapes),
  });
  return prepare(pipeline);
}

/** What the event generator needs to know of a step. */
function infoOf(s: Step): StepInfo {
  if (s.kind !== 'route' && s.kind !== 'parallel')
    return { kind: s.kind, keys: [], branchSteps: {} };
  const keys = Object.keys(s.branches);
  const branchSteps = Object.fromEntries(
    Object.entries(s.branches).map(([k, b]) => [k, machineSteps(b).map((x) => x.name)]),
  );
  return { kind: s.kind, keys, branchSteps: s.kind === 'route' ? branchSteps : {} };
}

/** The recordable states of a machine's graph (see the file comment), as node ids. */
function recordableStates(graph: MachineGraph): Set<string> {
  const byId = new Map(graph.nodes.map((x) => [x.id, x]));
  const kids = (id: string) => graph.nodes.filter((x) => x.parent === id);
  const from = (id: string) => graph.edges.filter((e) => e.source === id);
  const reached = new Set<string>();
  const queue: string[] = [];
  const enter = (id: string): void => {
    const node = byId.get(id);
    if (node === undefined) return;
    if (node.type === 'compound') return enter(`${id}.${node.initial ?? ''}`);
    if (node.type === 'parallel') return kids(id).forEach((k) => enter(k.id));
    if (reached.has(id)) return;
    reached.add(id);
    queue.push(id);
  };
  enter(graph.id);
  for (let id = queue.shift(); id !== undefined; id = queue.shift())
    for (let at: string | null = id; at !== null; at = byId.get(at)?.parent ?? null)
      for (const e of from(at)) e.targets.forEach(enter);
  const transient = (id: string) =>
    graph.edges.some((e) => e.source === id && e.event === 'always' && e.guard === null);
  return new Set([...reached].filter((id) => !transient(id)));
}

/** The active leaf states of a state value, as node ids (`run.s2.branches.p0.done`). */
function leaves(value: unknown, prefix = 'run'): string[] {
  if (typeof value === 'string') return [`${prefix}.${value}`];
  return Object.entries(value as Record<string, unknown>).flatMap(([k, v]) =>
    leaves(v, `${prefix}.${k}`),
  );
}

/** A small deterministic PRNG (mulberry32): a run's draws from the seed fast-check gave it. */
function rng(seed: number): (n: number) => number {
  let a = seed >>> 0;
  return (n) => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) % 2 ** 31) % n;
  };
}

const json = (x: unknown): unknown => JSON.parse(JSON.stringify(x));
const MAX_RUNS = 400;
let runCount = 0;

/** One generated run: live actor, then the log through the store and folded; returns states. */
async function oneRun(
  store: Store,
  p: Prepared,
  info: Map<string, StepInfo>,
  explorer: Explorer,
  maxIterations: number,
): Promise<string[]> {
  const runId = `c${runCount++}`;
  // Half the runs start with a calm stretch (no failure, skip, park or kill): deep states.
  explorer.calm = explorer.pick(2) === 0 ? explorer.pick(40) : 0;
  const input = {
    runId,
    input: { q: 'x' },
    limits: { budgetUsd: 1, maxIterations, deadlineAt: null },
    startedAt: 0,
  };
  const actor = createActor(p.machine, { input }).start();
  const first = actor.getSnapshot() as RunSnapshot;
  const live = [json({ value: first.value, context: first.context })];
  const visited = leaves(first.value);
  const log: NewEnvelope[] = [
    {
      v: 1,
      at: 0,
      event: {
        type: 'run.started',
        pipeline: 'nested',
        version: '1',
        machineHash: p.hash,
        definition: null,
        module: null,
        input: input.input,
        limits: input.limits,
        forkedFrom: null,
      },
      state: summarize(first),
    },
  ];
  for (let at = 1; at < 80; at++) {
    const before = actor.getSnapshot() as RunSnapshot;
    const ev = nextEvent(before, info, explorer, at);
    if (ev === null) break;
    actor.send(ev);
    const after = actor.getSnapshot() as RunSnapshot;
    // Every generated event is one the machine accepts in that state.
    if (after === before) throw new Error(`${ev.type} refused in ${JSON.stringify(before.value)}`);
    live.push(json({ value: after.value, context: after.context }));
    visited.push(...leaves(after.value));
    log.push({ v: 1, at, event: ev, state: summarize(after) });
  }
  actor.stop();
  await store.log.append(runId, log, 'no_stream');
  const folded: unknown[] = [];
  foldLog(p.machine, p.hash, runId, await store.log.read(runId), {
    onStep: (s) => folded.push(json({ value: s.snapshot.value, context: s.snapshot.context })),
  });
  expect(folded).toEqual(live);
  return visited;
}

describe('replay fidelity with routes, parallel branches, maps and calls', () => {
  it('live actor and fold agree after every event; every recordable state is visited', async () => {
    const store = openSqliteStore(':memory:');
    const stats = { machines: 0, runs: 0, states: 0, maxRuns: 0 };
    await fc.assert(
      fc.asyncProperty(
        pipelineShape,
        fc.integer(),
        fc.integer({ min: 1, max: 8 }),
        async (shapes, seed, maxIterations) => {
          const p = build(shapes);
          const info = new Map(
            machineSteps(p.pipeline.steps).map((s): [string, StepInfo] => [s.name, infoOf(s)]),
          );
          const recordable = recordableStates(p.graph);
          const seen = new Set<string>();
          const fresh = (prefix: string): boolean =>
            [...recordable].some((id) => id.startsWith(prefix) && !seen.has(id));
          const explorer = new Explorer(rng(seed), fresh);
          let runs = 0;
          // Runs of this machine until each recordable state was visited (or MAX_RUNS).
          while (runs < MAX_RUNS && [...recordable].some((s) => !seen.has(s))) {
            for (const s of await oneRun(store, p, info, explorer, maxIterations)) seen.add(s);
            runs += 1;
          }
          stats.machines += 1;
          stats.runs += runs;
          stats.maxRuns = Math.max(stats.maxRuns, runs);
          stats.states += recordable.size;
          const missing = [...recordable].filter((s) => !seen.has(s));
          expect(missing, `shape ${JSON.stringify(shapes)}`).toEqual([]);
        },
      ),
      { numRuns: 30, seed: 11 },
    );
    await store.close();
    expect(stats.machines).toBe(30);
    // Logged so a tuning of numRuns / MAX_RUNS can see the work done.
    process.stdout.write(`fidelity/constructs: ${JSON.stringify(stats)}\n`);
  }, 120_000);
});
