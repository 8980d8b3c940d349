/**
 * The pipeline definition API: `definePipeline` with `llm`, `effect` and `step` steps.
 * Pure: definitions are data plus user functions; nothing runs here.
 */
import type { z } from 'zod';
import { UsageError } from '../errors.js';
import { resolveRetryPolicy } from '../model/retry.js';
import type { CacheTtl, Price, RetryPolicy, StructuredMode } from '../model/types.js';
import {
  DEFAULT_MAP_CONCURRENCY,
  machineSteps,
  type CallStep,
  type MapStep,
  type ParallelStep,
  type RouteStep,
} from './constructs.js';
import type { SleepStep, WaitStep } from './waits.js';
import { checkAgents, type AgentStep } from './agent.js';
import { checkModels } from './modelList.js';

/** The outputs a step sees when its pipeline does not type them: any name, unknown values. */
export type UntypedOutputs = Record<string, unknown>;

/**
 * What every step function receives. `I` is the run input's type; `Out` the earlier steps'
 * outputs by name (typed precisely by the `pipeline()` builder, a plain record otherwise).
 */
export interface StepContext<I = unknown, Out = UntypedOutputs> {
  runId: string;
  /** The validated run input. */
  input: I;
  /** Earlier steps' outputs by step name (`null` for a skipped step). */
  outputs: Out;
  /** The step's name. */
  step: string;
}

/** An effect's context: the step context plus its idempotency key and an abort signal. */
export interface EffectContext<I = unknown, Out = UntypedOutputs> extends StepContext<I, Out> {
  key: string;
  /**
   * Aborted when the attempt times out (reason: a `TimeoutError`), the run is killed or the
   * process stops driving it. Honour it: an effect still running a grace period (5 s) later is
   * abandoned — reported, never waited for, its late result not recorded.
   */
  signal: AbortSignal;
}

/** Returns a reason to skip the step, or nothing to run it. */
export type SkipFn<I, Out = UntypedOutputs> = (
  ctx: StepContext<I, Out>,
) => string | false | null | undefined;

/** Options of a model-call step. */
export interface LlmStepOptions<I, O extends z.ZodType, Out = UntypedOutputs> {
  name: string;
  /**
   * The model, or models in order of preference: the first is called; on an overload (529), its
   * open breaker, or its retries exhausted, the next is (each priced at its own price).
   */
  model: string | readonly string[];
  system?: string | ((ctx: StepContext<I, Out>) => string);
  prompt: (ctx: StepContext<I, Out>) => string;
  /** The schema the answer must match; invalid answers are re-asked with the errors. */
  output: O;
  /** Output token budget per call (default 1024). */
  maxTokens?: number;
  temperature?: number;
  /** Native structured output (default) or a forced tool for older models. */
  mode?: StructuredMode;
  /** Schema-validation attempts for this step, including the first (default 3). */
  maxValidationAttempts?: number;
  /** Re-ask after a refusal (default false: a refusal fails the step). */
  reaskOnRefusal?: boolean;
  /** When set, an answer cut at `max_tokens` is re-asked with this larger budget. */
  maxTokensOnRetry?: number;
  /** Transport retry policy for this step (merged over the pipeline's). */
  retry?: Partial<RetryPolicy>;
  /**
   * Price of `model` when it is not in the price table (one model only: price fallback models
   * in the pipeline's `prices`).
   */
  price?: Price;
  /** Per-call timeout in ms. */
  timeoutMs?: number;
  /**
   * Prompt caching: marks `system` and the prompt (the first user message) as a cached prefix
   * (`cache_control`, ephemeral) living 5 minutes or 1 hour; default the pipeline's `cache`.
   */
  cache?: CacheTtl;
  /**
   * Send the request through the Message Batches API (half price; the answer may take up to
   * 24 h): the batch id is recorded, the run polls it durably and never submits it twice.
   * Default the pipeline's `batch`.
   */
  batch?: boolean;
  skip?: SkipFn<I, Out>;
}

/** Options of an irreversible side effect, run at most once per key (via the effect ledger). */
export interface EffectStepOptions<I, R, Out = UntypedOutputs> {
  name: string;
  /** The idempotency key: the same key is never run twice once its result is recorded. */
  key: (ctx: StepContext<I, Out>) => string;
  run: (ctx: EffectContext<I, Out>) => Promise<R> | R;
  /** Attempts when `run` throws, including the first (default 3). */
  maxAttempts?: number;
  /**
   * Real milliseconds an attempt may take (default the pipeline's `effectTimeoutMs`, else 5 min):
   * then `signal` is aborted and the attempt counts as failed (retried per `maxAttempts`).
   */
  timeoutMs?: number;
  skip?: SkipFn<I, Out>;
}

/** Options of a plain transform step. */
export interface TransformStepOptions<I, R, Out = UntypedOutputs> {
  name: string;
  run: (ctx: StepContext<I, Out>) => Promise<R> | R;
  skip?: SkipFn<I, Out>;
}

/** A model-call step. */
export interface LlmStep<I = any> extends LlmStepOptions<I, z.ZodType> {
  kind: 'llm';
}
/** An effect step. */
export interface EffectStep<I = any> extends EffectStepOptions<I, unknown> {
  kind: 'effect';
}
/** A transform step. */
export interface TransformStep<I = any> extends TransformStepOptions<I, unknown> {
  kind: 'step';
}
/** A step that does its own work in this run (a model call, an effect, a transform). */
export type LeafStep<I = any> = LlmStep<I> | EffectStep<I> | TransformStep<I>;
/** Any step: a leaf, or a construct (route, parallel, map, call; see constructs.ts). */
export type Step<I = any> =
  | LeafStep<I>
  | RouteStep<I>
  | ParallelStep<I>
  | MapStep<I>
  | CallStep<I>
  | WaitStep<I>
  | SleepStep<I>
  | AgentStep<I>;

/** Per-run limits; each can be overridden per run. */
export interface Limits {
  /** Budget cap in USD: every call reserves its worst case first (default none). */
  budgetUsd?: number;
  /** Model calls per run, all attempts counted (default 50). */
  maxIterations?: number;
  /** Wall-clock time per run in ms (default none). */
  deadlineMs?: number;
  /**
   * Input tokens per run (prompt, cache reads and writes): every call reserves its input bound
   * first, like the USD budget (default none).
   */
  maxInputTokens?: number;
  /** Output tokens per run: every call reserves its `max_tokens` first (default none). */
  maxOutputTokens?: number;
}

/** Options of {@link definePipeline}. */
export interface PipelineOptions<S extends z.ZodType> {
  name: string;
  version: string;
  input: S;
  steps: Step<z.infer<S>>[];
  limits?: Limits;
  /** Prices for models not in the built-in table (USD per million tokens). */
  prices?: Record<string, Price>;
  /** Transport retry policy for every model call. */
  retry?: Partial<RetryPolicy>;
  /** Timeout of every effect attempt in ms, unless the effect sets its own (default 5 min). */
  effectTimeoutMs?: number;
  /** Prompt caching of every llm step that does not set its own `cache` (default none). */
  cache?: CacheTtl;
  /** Send every llm step that does not set its own `batch` through the Message Batches API. */
  batch?: boolean;
}

/** An effect attempt's timeout when neither the effect nor its pipeline sets one: 5 minutes. */
export const DEFAULT_EFFECT_TIMEOUT_MS = 300_000;

/** The largest timeout a Node timer can wait (about 24.8 days); a larger one fires at once. */
const MAX_TIMER_MS = 2_147_483_647;

/** The timeout of one attempt of `s`: its own, else the pipeline's, else 5 minutes. */
export function effectTimeoutOf(
  s: EffectStep,
  pipeline: Pick<PipelineOptions<z.ZodType>, 'effectTimeoutMs'>,
): number {
  return s.timeoutMs ?? pipeline.effectTimeoutMs ?? DEFAULT_EFFECT_TIMEOUT_MS;
}

/** A pipeline: a named, versioned list of steps with an input schema. */
export interface Pipeline<S extends z.ZodType = z.ZodType> extends PipelineOptions<S> {
  readonly kind: 'pipeline';
}

const NAME = /^[A-Za-z][A-Za-z0-9_-]{0,63}$/;
const RESERVED = new Set(['completed', 'failed', 'killed', 'parked', 'run']);

/**
 * Defines a pipeline; throws a {@link UsageError} naming the fix when the definition is wrong.
 * Step callbacks here see `outputs` untyped; `pipeline({ … }).llm(…).build()` (pipelineBuilder.ts)
 * makes the same pipeline with each earlier output typed.
 * @example
 * export default definePipeline({ name: 'triage', version: '1', input: z.object({ text: z.string() }),
 *   steps: [llm({ name: 'score', model: 'claude-sonnet-4-6', prompt: (c) => c.input.text, output: Score })] });
 */
export function definePipeline<S extends z.ZodType>(options: PipelineOptions<S>): Pipeline<S> {
  if (!NAME.test(options.name)) {
    throw new UsageError(
      `pipeline name '${options.name}' is invalid: use letters, digits, '-' or '_' (start with a letter)`,
    );
  }
  return defineChecked(options);
}

/** The checks and normalisation of {@link definePipeline}, past the name (children get long names). */
function defineChecked<S extends z.ZodType>(options: PipelineOptions<S>): Pipeline<S> {
  if (!options.version) throw new UsageError(`pipeline '${options.name}' needs a version string`);
  if (options.steps.length === 0) {
    throw new UsageError(
      `pipeline '${options.name}' has no steps: add at least one llm(), effect() or step()`,
    );
  }
  const seen = new Set<string>();
  const all = machineSteps(options.steps);
  for (const s of all) {
    if (!NAME.test(s.name) || RESERVED.has(s.name)) {
      throw new UsageError(
        `step name '${s.name}' in pipeline '${options.name}' is invalid: use letters, digits, '-' or '_', not one of ${[...RESERVED].join(', ')}`,
      );
    }
    if (seen.has(s.name)) {
      throw new UsageError(
        `pipeline '${options.name}' has two steps named '${s.name}': rename one (names are unique across route branches too)`,
      );
    }
    seen.add(s.name);
  }
  checkConstructs(options);
  // Models first: the agent checks price the agent's model, which must be one id.
  checkModels(options, all);
  checkAgents(options, all);
  checkRetries(options);
  checkEffectTimeouts(options);
  checkCache(options);
  const cache = options.cache;
  const batch = options.batch;
  // The pipeline's default cache is copied onto its llm steps, where the request is built;
  // parallel branches and map steps become child pipelines that inherit the pipeline's settings.
  const withCache = (seq: readonly Step[]): Step[] =>
    seq.map((s) => {
      if (s.kind === 'llm') {
        const withDefaults = cache !== undefined && s.cache === undefined ? { ...s, cache } : s;
        // Only an explicit `true` is copied: a step without `batch` keeps its machine (and hash).
        return batch === true && s.batch === undefined
          ? { ...withDefaults, batch: true }
          : withDefaults;
      }
      if (s.kind === 'route')
        return {
          ...s,
          branches: Object.fromEntries(
            Object.entries(s.branches).map(([k, b]) => [k, withCache(b)]),
          ),
        };
      if (s.kind === 'parallel')
        return {
          ...s,
          children: Object.fromEntries(
            Object.entries(s.branches).map(([k, b]) => [
              k,
              childOf(options, `${options.name}-${s.name}-${k}`, b),
            ]),
          ),
        };
      if (s.kind === 'map' && s.steps !== undefined)
        return { ...s, child: childOf(options, `${options.name}-${s.name}`, s.steps) };
      if (s.kind === 'map') return s.pipeline !== undefined ? { ...s, child: s.pipeline } : s;
      return s;
    });
  return { ...options, steps: withCache(options.steps), kind: 'pipeline' };
}

/** The pipeline a parallel branch or a map's steps run as: the parent's settings, any input. */
function childOf(parent: PipelineOptions<z.ZodType>, name: string, steps: Step[]): Pipeline {
  return defineChecked({
    name,
    version: parent.version,
    input: ANY_INPUT,
    steps,
    ...(parent.prices !== undefined ? { prices: parent.prices } : {}),
    ...(parent.retry !== undefined ? { retry: parent.retry } : {}),
    ...(parent.effectTimeoutMs !== undefined ? { effectTimeoutMs: parent.effectTimeoutMs } : {}),
    ...(parent.cache !== undefined ? { cache: parent.cache } : {}),
    ...(parent.batch !== undefined ? { batch: parent.batch } : {}),
  });
}

/** Accepts any input: a child's input was checked where its parent made it. */
const ANY_INPUT = {
  safeParse: (data: unknown) => ({ success: true as const, data }),
  parse: (data: unknown) => data,
} as unknown as z.ZodType;

/** Checks the constructs' own options: branches, items, concurrency, the called pipeline. */
function checkConstructs(options: PipelineOptions<z.ZodType>): void {
  const all = machineSteps(options.steps);
  for (const s of all) {
    const where = `pipeline '${options.name}' step '${s.name}'`;
    if (s.kind === 'route' || s.kind === 'parallel') {
      const keys = Object.keys(s.branches ?? {});
      if (keys.length === 0)
        throw new UsageError(`${where}: ${s.kind} needs at least one branch in \`branches\``);
      for (const k of keys)
        if (!NAME.test(k))
          throw new UsageError(
            `${where}: branch '${k}' is invalid: use letters, digits, '-' or '_' (start with a letter)`,
          );
      if (s.kind === 'parallel')
        for (const [k, b] of Object.entries(s.branches))
          if (b.length === 0)
            throw new UsageError(`${where}: branch '${k}' has no steps: add one or remove it`);
    }
    if (s.kind === 'map') {
      if ((s.pipeline === undefined) === (s.steps === undefined))
        throw new UsageError(
          `${where}: give a map either \`pipeline\` (each item its input) or \`steps\`, not both or neither`,
        );
      if (typeof s.over !== 'function')
        throw new UsageError(`${where}: \`over\` must be a function returning the items`);
      const c = s.concurrency ?? DEFAULT_MAP_CONCURRENCY;
      if (!Number.isInteger(c) || c < 1 || c > 1000)
        throw new UsageError(
          `${where}: concurrency must be an integer from 1 to 1000 (got ${String(c)})`,
        );
    }
    if (s.kind === 'wait') {
      if (typeof s.signal !== 'string' || !NAME.test(s.signal))
        throw new UsageError(
          `${where}: signal '${String(s.signal)}' is invalid: use letters, digits, '-' or '_' (start with a letter)`,
        );
      if (typeof (s.schema as { safeParse?: unknown } | undefined)?.safeParse !== 'function')
        throw new UsageError(`${where}: \`schema\` must be a zod schema of the signal's payload`);
      if (s.timeoutMs !== undefined && (!Number.isInteger(s.timeoutMs) || s.timeoutMs < 1))
        throw new UsageError(`${where}: timeoutMs must be a positive integer of milliseconds`);
      const go = s.onTimeout;
      if (typeof go === 'object' && !all.some((x) => x.name === go.goto))
        throw new UsageError(
          `${where}: onTimeout goes to '${go.goto}', which is not a step of this pipeline`,
        );
    }
    if (s.kind === 'sleep') {
      if ((s.forMs === undefined) === (s.until === undefined))
        throw new UsageError(`${where}: give a sleep either \`forMs\` or \`until\``);
      if (s.forMs !== undefined && (!Number.isFinite(s.forMs) || s.forMs < 0))
        throw new UsageError(`${where}: forMs must be a number of milliseconds >= 0`);
    }
    if (s.kind === 'call' && (s.pipeline as { kind?: unknown } | undefined)?.kind !== 'pipeline')
      throw new UsageError(
        `${where}: \`pipeline\` must be a pipeline made by definePipeline() or pipeline().build()`,
      );
  }
}

const CACHE_TTLS: readonly unknown[] = ['5m', '1h'];

/** Checks the pipeline's `cache` and each llm step's: `'5m'` or `'1h'`. */
function checkCache(options: PipelineOptions<z.ZodType>): void {
  const check = (where: string, v: unknown): void => {
    if (v !== undefined && !CACHE_TTLS.includes(v))
      throw new UsageError(
        `${where}: cache must be '5m' or '1h' (got ${JSON.stringify(v) ?? String(v)}): the lifetime of the cached prompt prefix`,
      );
  };
  check(`pipeline '${options.name}'`, options.cache);
  for (const s of machineSteps(options.steps))
    if (s.kind === 'llm') check(`pipeline '${options.name}' step '${s.name}'`, s.cache);
}

/** Checks `effectTimeoutMs` and each effect's `timeoutMs`: whole milliseconds a timer can wait. */
function checkEffectTimeouts(options: PipelineOptions<z.ZodType>): void {
  const check = (where: string, field: string, v: number | undefined): void => {
    if (v === undefined) return;
    if (!Number.isInteger(v) || v < 1 || v > MAX_TIMER_MS)
      throw new UsageError(
        `${where}: ${field} must be an integer of milliseconds from 1 to ${MAX_TIMER_MS} (got ${String(v)}): e.g. 30000 for 30 s`,
      );
  };
  check(`pipeline '${options.name}'`, 'effectTimeoutMs', options.effectTimeoutMs);
  for (const s of machineSteps(options.steps))
    if (s.kind === 'effect')
      check(`pipeline '${options.name}' step '${s.name}'`, 'timeoutMs', s.timeoutMs);
}

/**
 * Checks every retry policy when the pipeline is defined, not when a call first fails: the
 * pipeline's own, each llm step's (merged over it) and each effect's `maxAttempts`.
 */
function checkRetries(options: PipelineOptions<z.ZodType>): void {
  const where = (step?: string): string =>
    `pipeline '${options.name}'${step !== undefined ? ` step '${step}'` : ''}`;
  const check = (step: string | undefined, policy: Partial<RetryPolicy> | undefined): void => {
    try {
      resolveRetryPolicy(policy);
    } catch (e) {
      if (e instanceof UsageError) throw new UsageError(`${where(step)}: ${e.message}`);
      throw e;
    }
  };
  check(undefined, options.retry);
  for (const s of machineSteps(options.steps)) {
    if (s.kind === 'llm') check(s.name, { ...options.retry, ...s.retry });
    if (s.kind === 'effect' && s.maxAttempts !== undefined) {
      if (!Number.isInteger(s.maxAttempts) || s.maxAttempts < 1)
        throw new UsageError(
          `${where(s.name)}: maxAttempts must be an integer >= 1 (got ${String(s.maxAttempts)}): use 1 to run the effect once`,
        );
    }
  }
}

/** A model call whose answer must match `output`. */
export function llm<I = any, O extends z.ZodType = z.ZodType>(
  options: LlmStepOptions<I, O>,
): LlmStep<I> {
  return { ...options, kind: 'llm' };
}

/** An irreversible side effect, guarded by the effect ledger under `key`. */
export function effect<I = any, R = unknown>(options: EffectStepOptions<I, R>): EffectStep<I> {
  return { ...(options as EffectStepOptions<I, unknown>), kind: 'effect' };
}

/** A plain transform of earlier outputs. */
export function step<I = any, R = unknown>(options: TransformStepOptions<I, R>): TransformStep<I> {
  return { ...(options as TransformStepOptions<I, unknown>), kind: 'step' };
}

/** True when `value` looks like a pipeline (what a pipeline module must default-export). */
export function isPipeline(value: unknown): value is Pipeline {
  return (
    typeof value === 'object' &&
    value !== null &&
    (value as { kind?: unknown }).kind === 'pipeline' &&
    Array.isArray((value as { steps?: unknown }).steps)
  );
}
