/**
 * The shapes beyond a straight line: `route` (one branch of several, chosen from the context),
 * `parallel` (branches at once, joined), `map` (one child run per item) and `call` (a child run of
 * another pipeline). A route's branches are states of the run's own machine; parallel branches,
 * map items and calls are child runs with their own logs, leases and ledgers, which the parent
 * waits for durably. Pure: definitions only.
 */
import type { Pipeline, SkipFn, Step, StepContext, UntypedOutputs } from './pipeline.js';

/** What to do when a child (a branch, an item) fails: fail the step, or collect the error. */
export type OnChildError = 'fail' | 'collect';

/** A collected child outcome (`onItemError` / `onBranchError: 'collect'`). */
export type Collected<T = unknown> = { ok: true; value: T } | { ok: false; error: string };

/** Options of {@link route}. */
export interface RouteStepOptions<I, Out = UntypedOutputs> {
  name: string;
  /** The key of the branch to take (e.g. from an earlier `llm` step's output). */
  choose: (ctx: StepContext<I, Out>) => string;
  /** Branches by key: each a sequence of steps; all join at the step after the route. */
  branches: Record<string, Step<I>[]>;
  skip?: SkipFn<I, Out>;
}

/** Options of {@link parallel}. */
export interface ParallelStepOptions<I, Out = UntypedOutputs> {
  name: string;
  /** Branches by key, run at once (each a child run that sees the run's input and outputs). */
  branches: Record<string, Step<I>[]>;
  /** `fail` (default): one failing branch fails the join; `collect`: outcomes as `Collected`. */
  onBranchError?: OnChildError;
  skip?: SkipFn<I, Out>;
}

/** Options of {@link map}. */
export interface MapStepOptions<I, Out = UntypedOutputs> {
  name: string;
  /** The items: one child run each (plain JSON; the same items on every evaluation). */
  over: (ctx: StepContext<I, Out>) => unknown[];
  /** Children driven at once (default 5). */
  concurrency?: number;
  /** The pipeline each item runs (its input is the item)… */
  pipeline?: Pipeline<any>;
  /** …or the steps each item runs (`ctx.input` is the item). */
  steps?: Step[];
  /** `fail` (default): one failing item fails the step; `collect`: results as `Collected`. */
  onItemError?: OnChildError;
  skip?: SkipFn<I, Out>;
}

/** Options of {@link call}. */
export interface CallStepOptions<I, Out = UntypedOutputs> {
  name: string;
  pipeline: Pipeline<any>;
  /** The child run's input (validated against the pipeline's input schema). */
  input: (ctx: StepContext<I, Out>) => unknown;
  skip?: SkipFn<I, Out>;
}

/** A route step. */
export interface RouteStep<I = any> extends RouteStepOptions<I> {
  kind: 'route';
}
/** A parallel step; `children` holds each branch's pipeline once the parent is defined. */
export interface ParallelStep<I = any> extends ParallelStepOptions<I> {
  kind: 'parallel';
  children?: Record<string, Pipeline>;
}
/** A map step; `child` is the pipeline each item runs once the parent is defined. */
export interface MapStep<I = any> extends MapStepOptions<I> {
  kind: 'map';
  child?: Pipeline;
}
/** A call step. */
export interface CallStep<I = any> extends CallStepOptions<I> {
  kind: 'call';
}

/** A step whose work is done by child runs. */
export type ChildStep = ParallelStep | MapStep | CallStep;

/** Default number of map items driven at once. */
export const DEFAULT_MAP_CONCURRENCY = 5;

/**
 * Takes one branch of several, chosen by `choose`; the branch's steps run in this run, then the
 * step after the route.
 * @example route({ name: 'by-class', choose: (c) => c.outputs.classify.kind,
 *   branches: { bug: [llm({...})], billing: [effect({...})], other: [] } })
 */
export function route<I = any>(options: RouteStepOptions<I>): RouteStep<I> {
  return { ...options, kind: 'route' };
}

/**
 * Runs branches at once and joins them: `outputs[name][branch]` is each branch's last output.
 * @example parallel({ name: 'both', branches: { facts: [llm({...})], tone: [llm({...})] } })
 */
export function parallel<I = any>(options: ParallelStepOptions<I>): ParallelStep<I> {
  return { ...options, kind: 'parallel' };
}

/**
 * Runs a pipeline (or steps) once per item, `concurrency` at a time, as child runs;
 * `outputs[name]` is their results in input order.
 * @example map({ name: 'summaries', over: (c) => c.outputs.split, concurrency: 5, steps: [llm({...})] })
 */
export function map<I = any>(options: MapStepOptions<I>): MapStep<I> {
  return { ...options, kind: 'map' };
}

/**
 * Runs another pipeline as a child run and waits for it: `outputs[name]` is its result (the
 * output of the last step it ran).
 */
export function call<I = any>(options: CallStepOptions<I>): CallStep<I> {
  return { ...options, kind: 'call' };
}

/** True for steps whose work is done by child runs. */
export function isChildStep(s: Step): s is ChildStep {
  return s.kind === 'parallel' || s.kind === 'map' || s.kind === 'call';
}

/**
 * The steps that are states of this run's machine, in order: the top-level steps and, inside
 * each route, its branches' steps (parallel branches and map items are child runs: not here).
 */
export function machineSteps(steps: readonly Step[]): Step[] {
  const out: Step[] = [];
  const walk = (seq: readonly Step[]): void => {
    for (const s of seq) {
      out.push(s);
      if (s.kind === 'route') for (const b of Object.values(s.branches)) walk(b);
    }
  };
  walk(steps);
  return out;
}

/** The pipelines run as children of `p` (parallel branches, map items, calls), recursively. */
export function childPipelines(p: Pipeline): Pipeline[] {
  const out: Pipeline[] = [];
  for (const s of machineSteps(p.steps)) {
    const direct =
      s.kind === 'parallel'
        ? Object.values(s.children ?? {})
        : s.kind === 'map'
          ? s.child !== undefined
            ? [s.child]
            : []
          : s.kind === 'call'
            ? [s.pipeline]
            : [];
    for (const c of direct) out.push(c, ...childPipelines(c));
  }
  return out;
}
