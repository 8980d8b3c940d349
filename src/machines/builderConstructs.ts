/**
 * The typed builder's routes, parallel branches, maps and calls: their option types and what each
 * adds to the outputs later steps see. A branch (or a map's per-item steps) is written as a chain
 * of the same builder, `(b) => b.llm(…).effect(…)`, so its steps are typed like top-level ones
 * and its outputs flow back: a route's branch steps (optional: only one branch runs), a parallel
 * step's last output per branch, a map's last output per item. Types only, plus the conversion
 * of those chains into the plain steps `route`, `parallel` and `map` take.
 */
import type { z } from 'zod';
import { UsageError } from '../errors.js';
import type { Collected, OnChildError } from './constructs.js';
import type { Pipeline, Step, StepContext } from './pipeline.js';
import type { PipelineBuilder } from './pipelineBuilder.js';

/** A step name not used before: a repeated name is a type error naming it. */
export type NewName<N extends string, Out> = N extends keyof Out
  ? `step '${N}' is already in this pipeline: rename one`
  : N;

/** A branch: the steps it runs, added to the chain it is given (`(b) => b.llm(…)`). */
export type Branch<S extends z.ZodType, Out extends object> = (
  chain: PipelineBuilder<S, Out>,
) => PipelineBuilder<S, any, any>;

/** Branches by key. */
export type Branches<S extends z.ZodType, Out extends object> = Record<string, Branch<S, Out>>;

/** The outputs a chain ends with / the output of its last step. */
type OutputsOf<R> = R extends PipelineBuilder<any, infer O, any> ? O : never;
type LastOf<R> = R extends PipelineBuilder<any, any, infer L> ? L : never;
type Ran<F> = F extends (...args: any[]) => infer R ? R : never;

/** The names the branches add (besides the outputs they started with). */
type BranchNames<B, Out> = {
  [Q in keyof B]: Exclude<keyof OutputsOf<Ran<B[Q]>>, keyof Out>;
}[keyof B];

/** A branch step's output type, from whichever branch defines it. */
type BranchValue<B, P> = {
  [Q in keyof B]: P extends keyof OutputsOf<Ran<B[Q]>> ? OutputsOf<Ran<B[Q]>>[P] : never;
}[keyof B];

/** What a route adds beside its own output: every branch step's, absent unless its branch ran. */
export type RouteOutputs<B, Out> = { [P in BranchNames<B, Out> & string]?: BranchValue<B, P> };

/** A child's outcome as the parent stores it: its result, or `Collected` under `collect`. */
export type ChildValue<T, E> = E extends 'collect' ? Collected<T> : T;

/** A parallel step's output: each branch's last output (or its `Collected` outcome). */
export type ParallelOutput<B, E> = { [Q in keyof B]: ChildValue<LastOf<Ran<B[Q]>>, E> };

/** Options of the builder's `route` call. */
export interface BuilderRouteOptions<
  S extends z.ZodType,
  Out extends object,
  N extends string,
  B extends Branches<S, Out>,
  K,
> {
  name: NewName<N, Out>;
  /** The key of the branch to take; a key with no branch (say an enum value) does not compile. */
  choose: (ctx: StepContext<z.infer<S>, Out>) => NoInfer<keyof B & string>;
  /** Branches by key, each a chain of steps (`(b) => b`: none); all join at the next step. */
  branches: B;
  skip?: K;
}

/** Options of the builder's `parallel` call. */
export interface BuilderParallelOptions<
  S extends z.ZodType,
  Out extends object,
  N extends string,
  B extends Branches<S, Out>,
  E extends OnChildError,
  K,
> {
  name: NewName<N, Out>;
  /** Branches by key, run at once as child runs that see the run's input and outputs. */
  branches: B;
  onBranchError?: E;
  skip?: K;
}

/** Options of the builder's `map` call: per-item steps as a chain whose input is the item. */
export interface BuilderMapOptions<I, Out extends object, N extends string, T, L, E, K> {
  name: NewName<N, Out>;
  /** The items: one child run each (plain JSON; the same items on every evaluation). */
  over: (ctx: StepContext<I, Out>) => readonly T[];
  /** Children driven at once (default 5). */
  concurrency?: number;
  /** The steps each item runs: `ctx.input` is the item; the result is the last step's output… */
  steps?: (chain: PipelineBuilder<z.ZodType<T>>) => PipelineBuilder<z.ZodType<T>, any, L>;
  /** …or a pipeline each item runs as its input (results typed `unknown`). */
  pipeline?: Pipeline<any>;
  onItemError?: E;
  skip?: K;
}

/** Options of the builder's `call` call: the input is checked against the called pipeline's. */
export interface BuilderCallOptions<
  I,
  Out extends object,
  N extends string,
  C extends z.ZodType,
  K,
> {
  name: NewName<N, Out>;
  pipeline: Pipeline<C>;
  input: (ctx: StepContext<I, Out>) => z.input<C>;
  skip?: K;
}

/** The steps a chain holds (filled by the builder; a chain not made by it holds none). */
export const chainSteps = new WeakMap<object, readonly Step[]>();

/** The plain steps of each branch chain, given a fresh chain to add them to. */
export function branchSteps(
  branches: Record<string, (chain: any) => unknown>,
  fresh: () => object,
): Record<string, Step[]> {
  return Object.fromEntries(
    Object.entries(branches).map(([k, f]) => [k, stepsOfChain(f(fresh()), `branch '${k}'`)]),
  );
}

/** The plain steps of a chain a branch or a map's `steps` returned. */
export function stepsOfChain(chain: unknown, where: string): Step[] {
  const steps = typeof chain === 'object' && chain !== null ? chainSteps.get(chain) : undefined;
  if (steps === undefined)
    throw new UsageError(
      `${where} must return the chain it was given with its steps added, e.g. (b) => b.llm({ … })`,
    );
  return [...steps];
}
