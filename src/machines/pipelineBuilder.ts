/**
 * The typed pipeline builder: `pipeline({ name, version, input }).llm(…).effect(…).step(…).build()`,
 * with `.route`, `.parallel`, `.map` and `.call` for the shapes beyond a line (builderConstructs.ts).
 * Each call's callbacks see the run input as the input schema's type and the outputs of the
 * steps added BEFORE it, each with its own type; a later step's output is not there (a type
 * error). `build()` makes exactly what `definePipeline({ …, steps: [...] })` makes, so machines
 * and hashes are the same. Types only: nothing here changes what runs.
 */
import type { z } from 'zod';
import { UsageError } from '../errors.js';
import {
  branchSteps,
  chainSteps,
  stepsOfChain,
  type Branches,
  type BuilderCallOptions,
  type BuilderMapOptions,
  type BuilderParallelOptions,
  type BuilderRouteOptions,
  type ChildValue,
  type NewName,
  type ParallelOutput,
  type RouteOutputs,
} from './builderConstructs.js';
import { call, map, parallel, route, type OnChildError } from './constructs.js';
import {
  definePipeline,
  effect,
  llm,
  step,
  type EffectStepOptions,
  type LlmStepOptions,
  type Pipeline,
  type PipelineOptions,
  type SkipFn,
  type Step,
  type TransformStepOptions,
} from './pipeline.js';

/**
 * What a transform or an effect returned, as later steps see it: the stored plain-JSON copy
 * (`undefined` or no return value is `null`, a `Date` its ISO string).
 */
export type Stored<T> = [T] extends [void] ? null : T extends undefined ? null : PlainJson<T>;
type PlainJson<T> = T extends Date
  ? string
  : T extends (...args: never[]) => unknown
    ? never
    : T extends object
      ? { [K in keyof T]: PlainJson<T[K]> }
      : T;

/** A step's output as later steps see it: `null` too when the step has a `skip`. */
type Skippable<T, K> = undefined extends K ? T : T | null;

/** Options of {@link pipeline}: those of `definePipeline` without the steps. */
export type PipelineHeader<S extends z.ZodType> = Omit<PipelineOptions<S>, 'steps'>;

/** Options of the builder's `llm` call: `llm()`'s, with typed input and earlier outputs. */
export type BuilderLlmOptions<I, O extends z.ZodType, Out, N extends string, K> = Omit<
  LlmStepOptions<I, O, Out>,
  'name' | 'skip'
> & { name: NewName<N, Out>; skip?: K };

/** Options of the builder's `effect` call. */
export type BuilderEffectOptions<I, R, Out, N extends string, K> = Omit<
  EffectStepOptions<I, R, Out>,
  'name' | 'skip'
> & { name: NewName<N, Out>; skip?: K };

/** Options of the builder's `step` call. */
export type BuilderStepOptions<I, R, Out, N extends string, K> = Omit<
  TransformStepOptions<I, R, Out>,
  'name' | 'skip'
> & { name: NewName<N, Out>; skip?: K };

/**
 * A pipeline under construction. `S` is the input schema, `Out` the outputs of the steps so far:
 * an intersection with one member per step, not one merged object, so it stays flat however long
 * the chain (a merged mapped type nests a level per step and hits TypeScript's instantiation
 * depth limit at about 45 steps; this chain holds about 95). `Last` is the last step's output:
 * what the chain returns when it runs as a child (a map item, a parallel branch). Immutable: each
 * call returns a new builder.
 */
export interface PipelineBuilder<
  S extends z.ZodType,
  Out extends object = Record<never, never>,
  Last = never,
> {
  /** Adds a model call; later steps see its output as `z.infer` of `output`. */
  llm<N extends string, O extends z.ZodType, K extends SkipFn<z.infer<S>, Out> | undefined>(
    options: BuilderLlmOptions<z.infer<S>, O, Out, N, K>,
  ): PipelineBuilder<S, Out & { [P in N]: Skippable<z.infer<O>, K> }, Skippable<z.infer<O>, K>>;
  /** Adds an effect; later steps see its output as what `run` returns. */
  effect<N extends string, R, K extends SkipFn<z.infer<S>, Out> | undefined>(
    options: BuilderEffectOptions<z.infer<S>, R, Out, N, K>,
  ): PipelineBuilder<S, Out & { [P in N]: Skippable<Stored<R>, K> }, Skippable<Stored<R>, K>>;
  /** Adds a transform; later steps see its output as what `run` returns. */
  step<N extends string, R, K extends SkipFn<z.infer<S>, Out> | undefined>(
    options: BuilderStepOptions<z.infer<S>, R, Out, N, K>,
  ): PipelineBuilder<S, Out & { [P in N]: Skippable<Stored<R>, K> }, Skippable<Stored<R>, K>>;
  /**
   * Adds a route: one branch runs, chosen by key; later steps see the key as its output and each
   * branch step's output as optional (absent unless its branch ran).
   */
  route<
    N extends string,
    B extends Branches<S, Out>,
    K extends SkipFn<z.infer<S>, Out> | undefined,
  >(
    options: BuilderRouteOptions<S, Out, N, B, K>,
  ): PipelineBuilder<
    S,
    Out & { [P in N]: Skippable<keyof B & string, K> } & RouteOutputs<B, Out>,
    unknown
  >;
  /** Adds parallel branches (child runs); its output is each branch's last output, by key. */
  parallel<
    N extends string,
    B extends Branches<S, Out>,
    K extends SkipFn<z.infer<S>, Out> | undefined,
    E extends OnChildError = 'fail',
  >(
    options: BuilderParallelOptions<S, Out, N, B, E, K>,
  ): PipelineBuilder<
    S,
    Out & { [P in N]: Skippable<ParallelOutput<B, E>, K> },
    Skippable<ParallelOutput<B, E>, K>
  >;
  /** Adds a map (a child run per item); its output is each item's last output, in item order. */
  map<
    N extends string,
    T,
    K extends SkipFn<z.infer<S>, Out> | undefined,
    L = unknown,
    E extends OnChildError = 'fail',
  >(
    options: BuilderMapOptions<z.infer<S>, Out, N, T, L, E, K>,
  ): PipelineBuilder<
    S,
    Out & { [P in N]: Skippable<ChildValue<L, E>[], K> },
    Skippable<ChildValue<L, E>[], K>
  >;
  /** Adds a call of another pipeline (a child run); its output is that run's, `unknown` here. */
  call<N extends string, C extends z.ZodType, K extends SkipFn<z.infer<S>, Out> | undefined>(
    options: BuilderCallOptions<z.infer<S>, Out, N, C, K>,
  ): PipelineBuilder<S, Out & { [P in N]: unknown }, unknown>;
  /** The pipeline, checked as by `definePipeline` (throws a `UsageError` naming the fix). */
  build(): Pipeline<S>;
  /** Types only, never set: the last step's output, what this chain returns as a child run. */
  readonly lastOutput?: Last;
}

/**
 * Starts a typed pipeline: add steps in order with `.llm`, `.effect` and `.step`, then `.build()`.
 * @example
 * export default pipeline({ name: 'triage', version: '1', input: z.object({ text: z.string() }) })
 *   .llm({ name: 'score', model: 'claude-sonnet-4-6', prompt: (c) => c.input.text, output: Score })
 *   .step({ name: 'route', run: ({ outputs }) => ({ high: outputs.score.value > 3 }) })
 *   .build();
 */
export function pipeline<S extends z.ZodType>(header: PipelineHeader<S>): PipelineBuilder<S> {
  // No step yet, so no last output (`never`); the implementation types it loosely.
  return builder(header, []) as PipelineBuilder<S>;
}

function builder<S extends z.ZodType, Out extends object>(
  header: PipelineHeader<S> | null,
  steps: readonly Step<z.infer<S>>[],
): PipelineBuilder<S, Out, any> {
  type I = z.infer<S>;
  // The typed context narrows what the runtime passes (each earlier step's output, or null, by
  // name), so the steps are kept as the untyped steps `definePipeline` takes.
  const add = (s: Step<I>): PipelineBuilder<S, any, any> => builder(header, [...steps, s]);
  // A branch or a map's steps start from an empty chain; only its steps are used.
  const fresh = (): object => builder(null, []);
  const skipOf = (o: { skip?: unknown }): { skip?: SkipFn<I> } =>
    o.skip !== undefined ? { skip: o.skip as SkipFn<I> } : {};
  const self: PipelineBuilder<S, Out, any> = {
    llm: (options) => add(llm(options as unknown as LlmStepOptions<I, z.ZodType>)),
    effect: (options) => add(effect(options as unknown as EffectStepOptions<I, unknown>)),
    step: (options) => add(step(options as unknown as TransformStepOptions<I, unknown>)),
    route: (o) =>
      add(
        route<I>({
          name: o.name,
          choose: o.choose as (ctx: unknown) => string,
          branches: branchSteps(o.branches, fresh),
          ...skipOf(o),
        }),
      ),
    parallel: (o) =>
      add(
        parallel<I>({
          name: o.name,
          branches: branchSteps(o.branches, fresh),
          ...(o.onBranchError !== undefined ? { onBranchError: o.onBranchError } : {}),
          ...skipOf(o),
        }),
      ),
    map: (o) =>
      add(
        map<I>({
          name: o.name,
          over: o.over as (ctx: unknown) => unknown[],
          ...(o.concurrency !== undefined ? { concurrency: o.concurrency } : {}),
          ...(o.steps !== undefined
            ? { steps: stepsOfChain(o.steps(fresh() as never), `map '${o.name}' steps`) }
            : {}),
          ...(o.pipeline !== undefined ? { pipeline: o.pipeline } : {}),
          ...(o.onItemError !== undefined ? { onItemError: o.onItemError as OnChildError } : {}),
          ...skipOf(o),
        }),
      ),
    call: (o) =>
      add(
        call<I>({
          name: o.name,
          pipeline: o.pipeline,
          input: o.input as (ctx: unknown) => unknown,
          ...skipOf(o),
        }),
      ),
    build: () => {
      if (header === null)
        throw new UsageError(
          'a branch or a map item is a chain of steps, not a pipeline: return the chain without .build()',
        );
      return definePipeline<S>({ ...header, steps: [...steps] });
    },
  };
  chainSteps.set(self, steps);
  return self;
}
