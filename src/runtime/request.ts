/**
 * Builds the model request of an `llm` step from the run's context: the prompt, and on a re-ask
 * the validation errors of the last answer. Deterministic, so a resumed call asks the same.
 */
import type { RunContext } from '../machines/context.js';
import type { LlmStep, StepContext } from '../machines/pipeline.js';
import { feedbackMessage, toJsonSchema } from '../model/structured.js';
import type { ModelRequest } from '../model/types.js';

const schemas = new WeakMap<object, Record<string, unknown>>();

/** The context a step function sees. */
export function stepContext(ctx: RunContext, stepName: string): StepContext {
  return { runId: ctx.runId, input: ctx.input, outputs: ctx.outputs, step: stepName };
}

/** The request for `step` in the run's current context, to `model` (see `currentModel`). */
export function buildRequest(step: LlmStep, ctx: RunContext, model: string): ModelRequest {
  const sc = stepContext(ctx, step.name);
  let schema = schemas.get(step.output);
  if (schema === undefined) {
    schema = toJsonSchema(step.output);
    schemas.set(step.output, schema);
  }
  const prompt = step.prompt(sc);
  const content = ctx.feedback !== null ? `${prompt}\n\n${feedbackMessage(ctx.feedback)}` : prompt;
  const system = typeof step.system === 'function' ? step.system(sc) : step.system;
  return {
    model,
    ...(system !== undefined ? { system } : {}),
    messages: [{ role: 'user', content }],
    maxTokens: ctx.maxTokensOverride ?? step.maxTokens ?? 1024,
    ...(step.temperature !== undefined ? { temperature: step.temperature } : {}),
    schema,
    schemaName: step.name,
    mode: step.mode ?? 'native',
    ...(step.timeoutMs !== undefined ? { timeoutMs: step.timeoutMs } : {}),
    ...(step.cache !== undefined ? { cache: step.cache } : {}),
  };
}
