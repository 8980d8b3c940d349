/**
 * The run machine's guards. Pure: they read the context and the event only (times come from
 * event payloads, never from a clock), so a fold of the log always takes the same path.
 */
import { attemptsOf, type RunContext } from './context.js';
import type { MachineEvent } from './events.js';
import { agentGuards } from './agentMachine.js';
import { fallbackGuards } from './fallback.js';

type Args = { context: RunContext; event: MachineEvent };

/** The breaker was open when the run asked to call. */
export function breakerOpen({ context }: Args): boolean {
  return context.pending?.breaker === 'open';
}

/** Another call would exceed the run's model-call cap. */
export function overIterations({ context }: Args): boolean {
  if (context.pending?.pool?.refused === 'iterations') return true;
  const max = context.limits.maxIterations;
  return max !== null && context.iterations >= max;
}

/** The attempt was asked for at or after the run's deadline. */
export function pastDeadline({ context }: Args): boolean {
  const at = context.pending?.at;
  return context.limits.deadlineAt !== null && at !== undefined && at >= context.limits.deadlineAt;
}

/** Which budget a call would cross: dollars, input tokens or output tokens. */
export type BudgetLimit = 'usd' | 'inputTokens' | 'outputTokens';

/**
 * The first budget the pending call's reservation would cross (used so far + reserved + this
 * call's worst case > cap), or null when it fits in all of them. Pure.
 */
export function budgetCrossed(context: RunContext): BudgetLimit | null {
  const p = context.pending;
  if (p === null) return null;
  const { budgetUsd, maxInputTokens, maxOutputTokens } = context.limits;
  if (
    budgetUsd !== null &&
    context.costUsd + context.reservedUsd + p.estimateUsd > budgetUsd + 1e-12
  )
    return 'usd';
  const reserved = context.reservedTokens ?? { input: 0, output: 0 };
  if (
    maxInputTokens != null &&
    (context.inputTokens ?? 0) + reserved.input + (p.inputTokens ?? 0) > maxInputTokens
  )
    return 'inputTokens';
  if (
    maxOutputTokens != null &&
    (context.outputTokens ?? 0) + reserved.output + (p.maxTokens ?? 0) > maxOutputTokens
  )
    return 'outputTokens';
  return null;
}

/**
 * The call's worst case does not fit in what is left of the budget: the USD cap or a token cap
 * (one guard, so the compiled machine is the same with or without token caps).
 */
export function overBudget({ context }: Args): boolean {
  return context.pending?.pool?.refused === 'budget' || budgetCrossed(context) !== null;
}

/** The route's choice (or the reported branch) is this branch. */
export function branchIs({ event }: Args, p: { branch: string }): boolean {
  return (event.type === 'ROUTE' || event.type === 'BRANCH_DONE') && event.branch === p.branch;
}

/** The children's outcome does not fail the step. */
export function childrenOk({ event }: Args): boolean {
  return event.type === 'CHILDREN_DONE' && !event.failed;
}

/** Every parallel branch succeeded, or their errors are collected. */
export function branchesOk({ context }: Args, p: { step: string; collect: boolean }): boolean {
  if (p.collect) return true;
  const out = context.outputs[p.step] as Record<string, unknown> | undefined;
  return !Object.values(out ?? {}).some((o) => (o as { ok?: unknown } | null)?.ok === false);
}

/** The last answer passed the schema. */
export function outputValid({ context }: Args): boolean {
  return context.last?.verdict === 'valid';
}

/** Params of {@link canReask}. */
export interface ReaskParams {
  step: string;
  maxValidationAttempts: number;
  reaskOnRefusal: boolean;
  reaskOnMaxTokens: boolean;
}

/** The answer was invalid and the step may ask again. */
export function canReask({ context }: Args, p: ReaskParams): boolean {
  const verdict = context.last?.verdict;
  if (verdict === 'refusal' && !p.reaskOnRefusal) return false;
  if (verdict === 'max_tokens' && !p.reaskOnMaxTokens) return false;
  return attemptsOf(context, p.step).validation < p.maxValidationAttempts;
}

/** Params of {@link canRetry}. */
export interface RetryParams {
  step: string;
  maxAttempts: number;
  counter: 'transport' | 'failures';
}

/** The last failure was retryable and attempts remain. */
export function canRetry({ context }: Args, p: RetryParams): boolean {
  return context.last?.retryable === true && attemptsOf(context, p.step)[p.counter] < p.maxAttempts;
}

/** The run parked in this step (RESUME goes back there). */
export function parkedIn({ context }: Args, p: { step: string }): boolean {
  return context.parked?.step === p.step;
}

/** Every guard by name, for `setup({ guards })`. */
export const guards = {
  breakerOpen,
  overIterations,
  pastDeadline,
  overBudget,
  outputValid,
  canReask,
  canRetry,
  parkedIn,
  branchIs,
  childrenOk,
  branchesOk,
  ...agentGuards,
  ...fallbackGuards,
};
