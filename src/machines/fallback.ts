/**
 * Model fallback of an `llm` step (`model: ['claude-opus-4-8', 'claude-sonnet-4-6']`): which model
 * the step calls, derived from the run's log alone. Pure: the ATTEMPT events record the model
 * each call used and the MODEL_ERROR events its failures, so a fold after a crash lands on the
 * same model as the live run did.
 *
 * The rules: the step starts on the first model (its `floor`). The driver calls the first model at
 * or after the floor whose breaker is not open (all open: the run parks, as with one model). An
 * overload (529) moves the floor past the model that answered it at once; a retryable failure is
 * retried on the same model until the retry policy's `maxAttempts` failures of that model, then
 * the floor moves on. Past the last model the step fails as it does with one model.
 */
import { assign } from 'xstate';
import type { FallbackState, RunContext } from './context.js';
import type { MachineEvent } from './events.js';

type Args = { context: RunContext; event: MachineEvent };

/** What happens after a failed call of a fallback step. */
export type FallbackDecision = 'retry' | 'next' | 'fail';

/** The models a step may call, in order: one model is a list of one. */
export function modelsOf(step: { model: string | readonly string[] }): readonly string[] {
  return typeof step.model === 'string' ? [step.model] : step.model;
}

/** True when the step names more than one model (it compiles to the fallback machine). */
export function hasFallback(step: { model: string | readonly string[] }): boolean {
  return typeof step.model !== 'string' && step.model.length > 1;
}

/** The step's fallback state in `ctx` (the first model, no failures, before its first attempt). */
export function fallbackOf(ctx: RunContext, step: string): FallbackState {
  return ctx.fallback?.[step] ?? { floor: 0, used: 0, failures: [] };
}

/** The model the step's current (or last) attempt uses: by the log's ATTEMPTs, else the first. */
export function currentModel(
  step: { name: string; model: string | readonly string[] },
  ctx: RunContext,
): string {
  const models = modelsOf(step);
  return models[hasFallback(step) ? fallbackOf(ctx, step.name).used : 0] ?? (models[0] as string);
}

/**
 * After a failed call on model `used` of `count`: fall to the next model on an overload or when
 * this model's failures reached `maxAttempts`; else retry it; a non-retryable error, or no model
 * left, fails the step.
 */
export function decideAfterError(
  state: FallbackState,
  last: { retryable?: boolean | undefined; kind?: string | undefined } | null,
  count: number,
  maxAttempts: number,
): FallbackDecision {
  if (last?.retryable !== true) return 'fail';
  const hasNext = state.used + 1 < count;
  if (last.kind === 'overloaded' && hasNext) return 'next';
  if ((state.failures[state.used] ?? 0) < maxAttempts) return 'retry';
  return hasNext ? 'next' : 'fail';
}

/** Params of the fallback guards and actions (model names are part of the machine's hash). */
export interface FallbackParams {
  step: string;
  models: readonly string[];
  maxAttempts: number;
}

function update(ctx: RunContext, step: string, s: FallbackState): Partial<RunContext> {
  return { fallback: { ...ctx.fallback, [step]: s } };
}

/** The fallback guards, for `setup({ guards })`. */
export const fallbackGuards = {
  /** Retry the same model after a backoff. */
  fallbackRetry: ({ context }: Args, p: FallbackParams): boolean =>
    decideAfterError(fallbackOf(context, p.step), context.last, p.models.length, p.maxAttempts) ===
    'retry',
  /** Give up on the model just used and call the next one. */
  fallbackNext: ({ context }: Args, p: FallbackParams): boolean =>
    decideAfterError(fallbackOf(context, p.step), context.last, p.models.length, p.maxAttempts) ===
    'next',
};

/** The fallback actions, for `setup({ actions })`. */
export const fallbackActions = {
  /** Records which model the ATTEMPT chose (a model before the floor is never chosen). */
  useModel: assign(({ context, event }: Args, p: FallbackParams) => {
    if (event.type !== 'ATTEMPT') return {};
    const s = fallbackOf(context, p.step);
    const i = p.models.indexOf(event.model);
    return update(context, p.step, { ...s, used: i < s.floor ? s.floor : i });
  }),
  /** Counts a failed call against the model that made it. */
  countModelFailure: assign(({ context, event }: Args, p: FallbackParams) => {
    if (event.type !== 'MODEL_ERROR') return {};
    const s = fallbackOf(context, p.step);
    const failures = [...s.failures];
    while (failures.length <= s.used) failures.push(0);
    failures[s.used] = (failures[s.used] ?? 0) + 1;
    return update(context, p.step, { ...s, failures });
  }),
  /** Moves the floor past the model just used: the next attempt calls a later model, at once. */
  fallBack: assign(({ context }: Args, p: FallbackParams) => {
    const s = fallbackOf(context, p.step);
    const next = Math.min(s.used + 1, p.models.length - 1);
    return { ...update(context, p.step, { ...s, floor: next, used: next }), waitUntil: null };
  }),
};
