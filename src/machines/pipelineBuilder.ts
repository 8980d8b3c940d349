/**
 * The typed pipeline builder: `pipeline({ name, version, input }).llm(…).effect(…).step(…).build()`.
 * Each call's callbacks see the run input as the input schema's type and the outputs of the
 * steps added BEFORE it, each with its own type; a later step's output is not there (a type
 * error). `build()` makes exactly what `definePipeline({ …, steps: [...] })` makes, so machines
 * and hashes are the same. Types only: nothing here changes what runs.
 */
import type { z } from 'zod';
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

/** A step name not used before: a repeated name is a type error naming it. */
type NewName<N extends string, Out> = N extends keyof Out
  ? `step '${N}' is already in this pipeline: rename one`
  : N;

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
 * depth limit at about 45 steps; this chain holds about 95). Immutable: each call returns a new
 * builder.
 */
export interface PipelineBuilder<S extends z.ZodType, Out extends object = Record<never, never>> {
  /** Adds a model call; later steps see its output as `z.infer` of `output`. */
  llm<N extends string, O extends z.ZodType, K extends SkipFn<z.infer<S>, Out> | undefined>(
    options: BuilderLlmOptions<z.infer<S>, O, Out, N, K>,
  ): PipelineBuilder<S, Out & { [P in N]: Skippable<z.infer<O>, K> }>;
  /** Adds an effect; later steps see its output as what `run` returns. */
  effect<N extends string, R, K extends SkipFn<z.infer<S>, Out> | undefined>(
    options: BuilderEffectOptions<z.infer<S>, R, Out, N, K>,
  ): PipelineBuilder<S, Out & { [P in N]: Skippable<Stored<R>, K> }>;
  /** Adds a transform; later steps see its output as what `run` returns. */
  step<N extends string, R, K extends SkipFn<z.infer<S>, Out> | undefined>(
    options: BuilderStepOptions<z.infer<S>, R, Out, N, K>,
  ): PipelineBuilder<S, Out & { [P in N]: Skippable<Stored<R>, K> }>;
  /** The pipeline, checked as by `definePipeline` (throws a `UsageError` naming the fix). */
  build(): Pipeline<S>;
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
  return builder(header, []);
}

function builder<S extends z.ZodType, Out extends object>(
  header: PipelineHeader<S>,
  steps: readonly Step<z.infer<S>>[],
): PipelineBuilder<S, Out> {
  type I = z.infer<S>;
  // The typed context narrows what the runtime passes (each earlier step's output, or null, by
  // name), so the steps are kept as the untyped steps `definePipeline` takes.
  return {
    llm: (options) =>
      builder(header, [...steps, llm(options as unknown as LlmStepOptions<I, z.ZodType>)]),
    effect: (options) =>
      builder(header, [...steps, effect(options as unknown as EffectStepOptions<I, unknown>)]),
    step: (options) =>
      builder(header, [...steps, step(options as unknown as TransformStepOptions<I, unknown>)]),
    build: () => definePipeline<S>({ ...header, steps: [...steps] }),
  };
}
