/**
 * The event that records a model outcome (an answer or a classified error) of an llm step, and
 * what goes with it: the pool settlement, the breaker's report, the overrun warning. Shared by
 * a direct call and a batch item, so both are judged, priced and retried alike.
 */
import { attemptsOf, type RunContext } from '../machines/context.js';
import type { BreakerView, MachineEvent } from '../machines/events.js';
import type { LlmStep } from '../machines/pipeline.js';
import { costUsd, overrunUsd } from '../model/cost.js';
import { retryDelayMs } from '../model/retry.js';
import { judgeOutput } from '../model/structured.js';
import type { ClassifiedError, ModelOutcome, ModelRequest, Price } from '../model/types.js';
import {
  currentModel,
  decideAfterError,
  fallbackOf,
  hasFallback,
  modelsOf,
  type FallbackDecision,
} from '../machines/fallback.js';
import type { DriverEnv } from './env.js';
import { reservePools, settlePools } from './pools.js';
import type { RateTicket } from './rateGate.js';

/**
 * MODEL_RESPONSE (the answer judged against the step's schema) or MODEL_ERROR (with the retry
 * delay chosen), priced at the price of the model the attempt used (`modelId`, by default the
 * one the fold of the log says; the batch price for a batch step).
 */
export async function outcomeEvent(
  env: DriverEnv,
  step: LlmStep,
  ctx: RunContext,
  attempt: number,
  outcome: ModelOutcome,
  modelId: string = currentModel(step, ctx),
): Promise<MachineEvent> {
  const runId = ctx.runId;
  const price = env.prepared.priceOf(step, modelId);
  // A batch step's attempt took no breaker slot (see execute.ts): it reports nothing to it.
  const breakers = step.batch === true ? undefined : env.breakers;
  const usage = outcome.usage;
  await settlePools(env.store, ctx, usage !== null ? costUsd(usage, price) : 0);
  if (outcome.ok) {
    const judged = judgeOutput({ text: outcome.text, stopReason: outcome.stopReason }, step.output);
    await breakers?.record(modelId, true, 'ok', env.clock.now());
    const usd = costUsd(outcome.usage, price);
    const over = overrunUsd(ctx.reservedUsd, usd);
    if (over > 0)
      env.logger.warn(
        { runId, step: step.name, reservedUsd: ctx.reservedUsd, actualUsd: usd, overUsd: over },
        'model call cost more than it reserved',
      );
    return {
      type: 'MODEL_RESPONSE',
      step: step.name,
      attempt,
      requestId: outcome.requestId,
      model: outcome.model,
      stopReason: outcome.stopReason,
      usage: outcome.usage,
      costUsd: usd,
      verdict: judged.verdict,
      ...(judged.verdict === 'valid' ? { output: judged.output } : {}),
      issues: judged.issues,
      text: judged.verdict === 'valid' ? null : (outcome.text ?? '').slice(0, env.logMaxChars),
      durationMs: outcome.durationMs,
    };
  }
  const err = outcome.error;
  await breakers?.record(modelId, false, err.kind, env.clock.now());
  const policy = env.prepared.retryOf(step);
  const next = hasFallback(step) ? fallbackAfter(ctx, step, err, policy.maxAttempts) : null;
  const failures = next?.failures ?? attemptsOf(ctx, step.name).transport + 1;
  // Falling to the next model calls it at once: no backoff is waited.
  const delayMs =
    err.retryable && next?.decision !== 'next'
      ? retryDelayMs(err, failures, policy, env.random)
      : 0;
  return modelErrorEvent(env, step.name, attempt, modelId, outcome, price, delayMs);
}

/**
 * The MODEL_ERROR recording a failed call (of an llm step or an agent turn): its classification,
 * the chosen retry delay as an absolute deadline, and whatever usage the failure reported.
 */
export function modelErrorEvent(
  env: DriverEnv,
  step: string,
  attempt: number,
  model: string,
  outcome: Extract<ModelOutcome, { ok: false }>,
  price: Price,
  delayMs: number,
): MachineEvent {
  const err = outcome.error;
  return {
    type: 'MODEL_ERROR',
    step,
    attempt,
    requestId: err.requestId,
    model,
    status: err.status,
    kind: err.kind,
    retryable: err.retryable,
    message: err.message,
    delayMs,
    retryAt: env.clock.now() + delayMs,
    usage: outcome.usage,
    costUsd: outcome.usage !== null ? costUsd(outcome.usage, price) : 0,
    durationMs: outcome.durationMs,
  };
}

/**
 * What the machine will decide after this failure of a fallback step (so the event records no
 * backoff when the next model is called at once), and the failures of the model that failed.
 */
function fallbackAfter(
  ctx: RunContext,
  step: LlmStep,
  err: ClassifiedError,
  maxAttempts: number,
): { decision: FallbackDecision; failures: number } {
  const s = fallbackOf(ctx, step.name);
  const failures = [...s.failures];
  failures[s.used] = (failures[s.used] ?? 0) + 1;
  const decision = decideAfterError(
    { ...s, failures },
    { retryable: err.retryable, kind: err.kind },
    modelsOf(step).length,
    maxAttempts,
  );
  return { decision, failures: failures[s.used] ?? 1 };
}

/**
 * The ATTEMPT asking to call the model (an llm step's call or an agent's turn), once its room
 * under the rate limits is taken: the worst case reserved in the ancestors' pools (a child run),
 * the breaker's view read after that, and the request held for the call phase to send as built.
 */
export async function attemptEvent(
  env: DriverEnv,
  ctx: RunContext,
  o: {
    step: string;
    attempt: number;
    model: string;
    request: ModelRequest;
    inputTokens: number;
    usd: number;
    rate: RateTicket | null;
    breaker: () => Promise<BreakerView>;
  },
): Promise<MachineEvent> {
  const at = env.clock.now();
  const key = `${ctx.runId}:${o.step}:${o.attempt}:${at}`;
  const pool = await reservePools(env.store, ctx, key, o.usd);
  const breaker = await o.breaker();
  env.request = {
    step: o.step,
    attempt: o.attempt,
    request: o.request,
    ...(o.rate !== null ? { rate: o.rate } : {}),
  };
  return {
    type: 'ATTEMPT',
    step: o.step,
    attempt: o.attempt,
    at,
    estimate: { inputTokens: o.inputTokens, maxTokens: o.request.maxTokens, usd: o.usd },
    breaker,
    model: o.model,
    ...(pool !== null ? { pool } : {}),
  };
}
