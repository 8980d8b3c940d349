/**
 * The event that records a model outcome (an answer or a classified error) of an llm step, and
 * what goes with it: the pool settlement, the breaker's report, the overrun warning. Shared by
 * a direct call and a batch item, so both are judged, priced and retried alike.
 */
import { attemptsOf, type RunContext } from '../machines/context.js';
import type { MachineEvent } from '../machines/events.js';
import type { LlmStep } from '../machines/pipeline.js';
import { costUsd, overrunUsd } from '../model/cost.js';
import { retryDelayMs } from '../model/retry.js';
import { judgeOutput } from '../model/structured.js';
import type { ModelOutcome } from '../model/types.js';
import type { DriverEnv } from './env.js';
import { settlePools } from './pools.js';

/**
 * MODEL_RESPONSE (the answer judged against the step's schema) or MODEL_ERROR (with the retry
 * delay chosen), priced at the step's price (the batch price for a batch step).
 */
export async function outcomeEvent(
  env: DriverEnv,
  step: LlmStep,
  ctx: RunContext,
  attempt: number,
  outcome: ModelOutcome,
): Promise<MachineEvent> {
  const runId = ctx.runId;
  const price = env.prepared.priceOf(step);
  // A batch step's attempt took no breaker slot (see execute.ts): it reports nothing to it.
  const breakers = step.batch === true ? undefined : env.breakers;
  const usage = outcome.usage;
  await settlePools(env.store, ctx, usage !== null ? costUsd(usage, price) : 0);
  if (outcome.ok) {
    const judged = judgeOutput({ text: outcome.text, stopReason: outcome.stopReason }, step.output);
    await breakers?.record(step.model, true, 'ok', env.clock.now());
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
  await breakers?.record(step.model, false, err.kind, env.clock.now());
  const failures = attemptsOf(ctx, step.name).transport + 1;
  const delayMs = err.retryable
    ? retryDelayMs(err, failures, env.prepared.retryOf(step), env.random)
    : 0;
  return {
    type: 'MODEL_ERROR',
    step: step.name,
    attempt,
    requestId: err.requestId,
    model: step.model,
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
