/**
 * The visualizer's JSON answers: the run list, one run (envelopes, laid-out chart from the
 * recorded definition, derived path) and the loaded pipelines' charts.
 */
import { z } from 'zod';
import { isUsageError } from '../errors.js';
import { RunStatus, type StoredEnvelope } from '../machines/events.js';
import { machineHash, type MachineGraph } from '../machines/graph.js';
import type { RunMachine } from '../machines/compile.js';
import type { Prepared } from '../runtime/prepare.js';
import { definitionOf } from '../store/definitions.js';
import type { DefinitionStore, EventLog, RunSummary } from '../store/types.js';
import { HttpError, intParam } from './http.js';
import { layoutGraph, type ChartLayout } from './layout.js';
import { pathSteps, summarizePath, type PathStep } from './path.js';
import { childCounts, waitForms } from './runSteps.js';
import { layoutStepChart, type StepChart } from './stepChart.js';
import { traceEdges } from './trace.js';

const GraphSchema = z.object({
  id: z.string(),
  nodes: z.array(
    z.object({
      id: z.string(),
      key: z.string(),
      parent: z.string().nullable(),
      type: z.enum(['atomic', 'compound', 'parallel', 'final', 'history']),
      initial: z.string().nullable(),
      tags: z.array(z.string()),
    }),
  ),
  edges: z.array(
    z.object({
      id: z.string(),
      source: z.string(),
      targets: z.array(z.string()),
      event: z.string(),
      guard: z.string().nullable(),
      actions: z.array(z.string()),
    }),
  ),
});

/** A recorded definition as a graph, or null when it is missing or not a graph. */
export function asGraph(definition: unknown): MachineGraph | null {
  const r = GraphSchema.safeParse(definition);
  return r.success ? r.data : null;
}

/** A run of the list. */
export interface RunRow {
  runId: string;
  pipeline: string;
  version: string;
  status: RunSummary['status'];
  step: string | null;
  costUsd: number;
  startedAt: number;
  updatedAt: number;
  endedAt: number | null;
  /** Until the end, or until now for a running run, or until the last event for a parked one. */
  durationMs: number;
  lastSeq: number;
  /** A child run's parent run, step and part (map item index, branch key), else null. */
  parent: RunSummary['parent'] | null;
}

function rowOf(r: RunSummary, now: number): RunRow {
  const end = r.endedAt ?? (r.status === 'running' ? Math.max(now, r.updatedAt) : r.updatedAt);
  return {
    runId: r.runId,
    pipeline: r.pipeline,
    version: r.version,
    status: r.status,
    step: r.step,
    costUsd: r.costUsd,
    startedAt: r.startedAt,
    updatedAt: r.updatedAt,
    endedAt: r.endedAt,
    durationMs: Math.max(0, end - r.startedAt),
    lastSeq: r.lastSeq,
    parent: r.parent ?? null,
  };
}

const RUN_ID = /^[A-Za-z0-9_-]{1,128}$/;

/** Checks a run id from a URL; 400 when it cannot be one. */
export function checkRunId(id: string): string {
  if (!RUN_ID.test(id))
    throw new HttpError(400, `'${id}' is not a run id: use 1-128 letters, digits, '-' or '_'`);
  return id;
}

/**
 * `GET /api/runs?status=&pipeline=&limit=&after=&top=`: one page of the run index, newest first
 * (500 by default); `next` is the `after` of the following page when there is one; `top=1`
 * leaves child runs out (the page opens them from their parent's step).
 */
export async function listRuns(
  log: EventLog,
  params: URLSearchParams,
  now: number,
): Promise<{ runs: RunRow[]; next?: string }> {
  const statusRaw = params.get('status');
  const statuses = statusRaw === null || statusRaw === '' ? [] : statusRaw.split(',');
  for (const s of statuses) {
    if (!RunStatus.safeParse(s).success) {
      throw new HttpError(
        400,
        `unknown status '${s}': use one of ${RunStatus.options.join(', ')} (comma-separated)`,
      );
    }
  }
  const pipeline = params.get('pipeline');
  const limit = intParam(params, 'limit', 500) ?? 500;
  const afterRaw = params.get('after');
  const after = afterRaw === null || afterRaw === '' ? undefined : checkRunId(afterRaw);
  let found: RunSummary[];
  try {
    found = await log.listRuns({
      ...(statuses.length > 0 ? { status: statuses as RunSummary['status'][] } : {}),
      ...(pipeline !== null && pipeline !== '' ? { pipeline } : {}),
      ...(after !== undefined ? { after } : {}),
      ...(params.get('top') === '1' ? { parent: null } : {}),
      // One more than the page says whether another follows.
      limit: limit + 1,
    });
  } catch (e) {
    if (isUsageError(e)) throw new HttpError(400, e.message);
    throw e;
  }
  const runs = found.slice(0, limit);
  const last = runs[runs.length - 1];
  return {
    runs: runs.map((r) => rowOf(r, now)),
    ...(found.length > limit && last !== undefined ? { next: last.runId } : {}),
  };
}

/** Charts laid out once per machine hash (the full statechart and the step view). */
export class ChartCache {
  private readonly charts = new Map<string, Promise<ChartLayout>>();
  private readonly stepCharts = new Map<string, Promise<StepChart>>();
  constructor(private readonly max = 64) {}

  private cached<T>(map: Map<string, Promise<T>>, key: string, make: () => Promise<T>): Promise<T> {
    let hit = map.get(key);
    if (hit === undefined) {
      hit = make();
      hit.catch(() => map.delete(key));
      if (map.size >= this.max) map.delete(map.keys().next().value as string);
      map.set(key, hit);
    }
    return hit;
  }

  get(graph: MachineGraph): Promise<ChartLayout> {
    return this.cached(this.charts, machineHash(graph), () => layoutGraph(graph));
  }

  /** The step-level chart (see `steps.ts`). */
  steps(graph: MachineGraph): Promise<StepChart> {
    return this.cached(this.stepCharts, machineHash(graph), () => layoutStepChart(graph));
  }
}

/** The path as JSON: per-event steps plus the totals. */
export interface PathJson {
  /** `machine`: edges read from XState replaying the log; `graph`: searched in the graph. */
  source: 'machine' | 'graph';
  steps: PathStep[];
  visited: Record<string, number>;
  taken: Record<string, number>;
  maybe: Record<string, number>;
  current: string[];
}

/** Derives the path of `envelopes` as JSON (exact edges when the machine is given). */
export function pathJson(
  graph: MachineGraph,
  envelopes: readonly StoredEnvelope[],
  machine: RunMachine | null,
): PathJson {
  const exact = machine === null ? null : traceEdges(machine, envelopes);
  const steps = pathSteps(
    graph,
    envelopes,
    exact === null ? {} : { edgesOf: (e) => exact.get(e.seq) },
  );
  const sum = summarizePath(steps);
  return {
    source: exact !== null && exact.size === envelopes.length - 1 ? 'machine' : 'graph',
    steps,
    visited: Object.fromEntries(sum.visited),
    taken: Object.fromEntries(sum.taken),
    maybe: Object.fromEntries(sum.maybe),
    current: sum.current,
  };
}

/** How a run is drawn. */
export interface RunChartSource {
  /** Its recorded definition, else the graph of a loaded pipeline with the same hash. */
  graph: MachineGraph | null;
  source: 'recorded' | 'loaded' | null;
  /** The machine of a loaded pipeline with the recorded hash: exact edges (see `trace.ts`). */
  machine: RunMachine | null;
}

/**
 * The graph (and, when loaded, the machine) of a run, from its first envelope: the graph it
 * carries, else the one `definitions` holds for its machine hash (written once per machine).
 */
export async function graphOfRun(
  first: StoredEnvelope | undefined,
  pipelines: ReadonlyMap<string, Prepared>,
  definitions: DefinitionStore | undefined,
): Promise<RunChartSource> {
  if (first?.event.type !== 'run.started') return { graph: null, source: null, machine: null };
  const started = first.event;
  const loaded = [...pipelines.values()].find(
    (p) => p.pipeline.name === started.pipeline && p.hash === started.machineHash,
  );
  const machine = loaded?.machine ?? null;
  const recorded = asGraph(
    definitions === undefined ? started.definition : await definitionOf({ definitions }, started),
  );
  if (recorded !== null) return { graph: recorded, source: 'recorded', machine };
  return loaded === undefined
    ? { graph: null, source: null, machine }
    : { graph: loaded.graph, source: 'loaded', machine };
}

/** `GET /api/runs/:id`: the run, its envelopes, chart and path. */
export async function getRun(
  log: EventLog,
  charts: ChartCache,
  pipelines: ReadonlyMap<string, Prepared>,
  runId: string,
  now: number,
  definitions?: DefinitionStore,
): Promise<unknown> {
  const summary = await log.getRun(checkRunId(runId));
  if (summary === undefined)
    throw new HttpError(
      404,
      `unknown run id '${runId}': see GET /api/runs for the runs in this store`,
    );
  const envelopes = await log.read(runId, 1);
  const { graph, source, machine } = await graphOfRun(envelopes[0], pipelines, definitions);
  const first = envelopes[0]?.event;
  const steps = graph === null ? null : await charts.steps(graph);
  const loaded =
    first?.type === 'run.started'
      ? [...pipelines.values()].find(
          (p) => p.pipeline.name === first.pipeline && p.hash === first.machineHash,
        )
      : undefined;
  return {
    run: rowOf(summary, now),
    started: first?.type === 'run.started' ? { ...first, definition: undefined } : null,
    envelopes,
    graph,
    chart: graph === null ? null : await charts.get(graph),
    steps,
    children: steps === null ? {} : await childCounts(log, runId, steps.steps),
    waits: waitForms(loaded),
    chartSource: source,
    warning:
      graph === null
        ? 'this run recorded no drawable definition and no loaded pipeline has its machine hash: start the viz with --pipelines'
        : null,
    path: graph === null ? null : pathJson(graph, envelopes, machine),
  };
}

/** `GET /api/pipelines`: loaded pipelines and pipelines seen in the run index. */
export async function listPipelines(
  log: EventLog,
  pipelines: ReadonlyMap<string, Prepared>,
): Promise<unknown> {
  const seen = new Map<string, number>();
  for (const r of await log.listRuns({ limit: 2000 }))
    seen.set(r.pipeline, (seen.get(r.pipeline) ?? 0) + 1);
  const names = [...new Set([...pipelines.keys(), ...seen.keys()])].sort();
  return {
    pipelines: names.map((name) => {
      const p = pipelines.get(name);
      return {
        name,
        loaded: p !== undefined,
        version: p?.pipeline.version ?? null,
        hash: p?.hash ?? null,
        steps: p?.pipeline.steps.map((s) => ({ name: s.name, kind: s.kind })) ?? null,
        recentRuns: seen.get(name) ?? 0,
      };
    }),
  };
}

/** `GET /api/pipelines/:name/chart`: a loaded pipeline's chart (runs or not). */
export async function pipelineChart(
  charts: ChartCache,
  pipelines: ReadonlyMap<string, Prepared>,
  name: string,
): Promise<unknown> {
  const p = pipelines.get(name);
  if (p === undefined) {
    const known = [...pipelines.keys()];
    throw new HttpError(
      404,
      known.length === 0
        ? `pipeline '${name}' is not loaded: start the viz with --pipelines <file or directory>`
        : `pipeline '${name}' is not loaded (loaded: ${known.join(', ')})`,
    );
  }
  return {
    name,
    version: p.pipeline.version,
    hash: p.hash,
    graph: p.graph,
    chart: await charts.get(p.graph),
    steps: await charts.steps(p.graph),
    waits: waitForms(p),
  };
}
