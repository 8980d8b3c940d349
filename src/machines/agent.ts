/**
 * The agent step: Claude calls tools in a loop until it gives an answer that matches `output`.
 * Each turn is a model call under the run's limits; each tool call is journaled, and a tool
 * marked `effect` runs under the effect ledger keyed by its `tool_use` id. Pure: definitions
 * and their checks only.
 */
import type { z } from 'zod';
import { UsageError } from '../errors.js';
import { checkPrice, priceFor } from '../model/prices.js';
import { resolveRetryPolicy } from '../model/retry.js';
import type { CacheTtl, Price, RetryPolicy } from '../model/types.js';
import type {
  EffectContext,
  PipelineOptions,
  SkipFn,
  Step,
  StepContext,
  UntypedOutputs,
} from './pipeline.js';

/** What a tool's `run` receives beside its input: the step context, the call's id and key. */
export interface ToolContext<I = unknown, Out = UntypedOutputs> extends EffectContext<I, Out> {
  /** The model's `tool_use` id of this call (the effect ledger's key is `tool:<id>`). */
  toolUseId: string;
}

/** A tool an agent may call. */
export interface ToolOptions<S extends z.ZodType, R> {
  /** What the tool does, for the model: when to call it and what it returns. */
  description: string;
  /** The input schema (a `z.object`): an input that does not match goes back as an error. */
  input: S;
  /** Runs the call; its plain-JSON result goes back to the model. A throw goes back as an error. */
  run: (input: z.infer<S>, ctx: ToolContext) => Promise<R> | R;
  /**
   * An irreversible side effect: run at most once per call once recorded (the effect ledger,
   * key `tool:<tool_use id>`). A read-only tool (the default) is simply run again after a crash.
   */
  effect?: boolean;
  /** Real milliseconds a call may take (default the pipeline's `effectTimeoutMs`, else 5 min). */
  timeoutMs?: number;
}

/** A tool, as made by {@link tool}. */
export interface ToolDef extends ToolOptions<z.ZodType, unknown> {
  readonly kind: 'tool';
}

/** Options of {@link agent}. */
export interface AgentStepOptions<I, O extends z.ZodType, Out = UntypedOutputs> {
  name: string;
  model: string;
  system?: string | ((ctx: StepContext<I, Out>) => string);
  /** The first user message. */
  prompt: (ctx: StepContext<I, Out>) => string;
  /** Tools by name (letters, digits, `_` or `-`). */
  tools: Record<string, ToolDef>;
  /** The schema of the final answer; an invalid answer is re-asked with the errors. */
  output: O;
  /** Model calls (turns) the step may make, re-asks included (default 10). */
  maxTurns?: number;
  /** Output token budget per turn (default 1024). */
  maxTokens?: number;
  temperature?: number;
  /** Invalid final answers re-asked, including the first (default 3). */
  maxValidationAttempts?: number;
  /** Transport retry policy of each turn (merged over the pipeline's). */
  retry?: Partial<RetryPolicy>;
  /** Price of `model` when it is not in the price table. */
  price?: Price;
  /** Per-call timeout in ms. */
  timeoutMs?: number;
  /** Marks `system` and the prompt as a cached prefix (default the pipeline's `cache`). */
  cache?: CacheTtl;
  skip?: SkipFn<I, Out>;
}

/** An agent step. */
export interface AgentStep<I = any> extends AgentStepOptions<I, z.ZodType> {
  kind: 'agent';
}

/** Turns an agent step may take when it does not say. */
export const DEFAULT_MAX_TURNS = 10;

const TOOL_NAME = /^[a-zA-Z0-9_-]{1,64}$/;

/**
 * A tool for an agent step.
 * @example tool({ description: 'Look up an order', input: z.object({ id: z.string() }),
 *   run: ({ id }) => orders.get(id) })
 */
export function tool<S extends z.ZodType, R = unknown>(options: ToolOptions<S, R>): ToolDef {
  return { ...(options as unknown as ToolOptions<z.ZodType, unknown>), kind: 'tool' };
}

/**
 * A step where Claude calls `tools` in a loop until its answer matches `output`.
 * @example agent({ name: 'support', model: 'claude-sonnet-4-6', prompt: (c) => c.input.text,
 *   tools: { lookup, refund }, output: z.object({ reply: z.string() }), maxTurns: 8 })
 */
export function agent<I = any, O extends z.ZodType = z.ZodType>(
  options: AgentStepOptions<I, O>,
): AgentStep<I> {
  return { ...(options as AgentStepOptions<I, z.ZodType>), kind: 'agent' };
}

/** The price of an agent's model: its own `price`, else the pipeline's table, else the built-in one. */
export function agentPrice(s: AgentStep, prices?: Readonly<Record<string, Price>>): Price {
  return s.price !== undefined ? checkPrice(s.model, s.price) : priceFor(s.model, prices);
}

/**
 * Checks the agent steps of a pipeline when it is defined: tools, turns, the model's price and
 * the retry policy; throws a UsageError naming the step and the fix.
 */
export function checkAgents(options: PipelineOptions<z.ZodType>, steps: readonly Step[]): void {
  for (const s of steps) {
    if (s.kind !== 'agent') continue;
    const where = `pipeline '${options.name}' agent '${s.name}'`;
    const names = Object.keys(s.tools ?? {});
    if (names.length === 0)
      throw new UsageError(`${where}: give it at least one tool in \`tools\`, or use llm()`);
    for (const n of names) {
      if (!TOOL_NAME.test(n))
        throw new UsageError(
          `${where}: tool name '${n}' is invalid: use 1 to 64 letters, digits, '_' or '-'`,
        );
      const t = s.tools[n] as Partial<ToolDef> | undefined;
      if (t?.kind !== 'tool' || typeof t.run !== 'function')
        throw new UsageError(
          `${where}: tool '${n}' must be made by tool({ description, input, run })`,
        );
    }
    const max = s.maxTurns ?? DEFAULT_MAX_TURNS;
    if (!Number.isInteger(max) || max < 1)
      throw new UsageError(`${where}: maxTurns must be an integer >= 1 (got ${String(max)})`);
    try {
      agentPrice(s, options.prices);
      resolveRetryPolicy({ ...options.retry, ...s.retry });
    } catch (e) {
      if (e instanceof UsageError) throw new UsageError(`${where}: ${e.message}`);
      throw e;
    }
  }
}
