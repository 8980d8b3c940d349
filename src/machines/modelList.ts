/**
 * Checks the `model` option of the steps when a pipeline is defined: one model id, or (llm steps
 * only) a list of fallback models, every one priced. Pure: throws a UsageError naming the fix.
 */
import type { z } from 'zod';
import { UsageError } from '../errors.js';
import { priceFor } from '../model/prices.js';
import type { PipelineOptions, Step } from './pipeline.js';

const EXAMPLE = "model: ['claude-opus-4-8', 'claude-sonnet-4-6']";

/**
 * Checks every llm and agent step's `model`: a non-empty string, or for an llm step a non-empty
 * list of distinct ids each with a price (the built-in table or the pipeline's `prices`).
 * An agent step takes one model: fallback is not supported there.
 */
export function checkModels(options: PipelineOptions<z.ZodType>, steps: readonly Step[]): void {
  for (const s of steps) {
    if (s.kind !== 'llm' && s.kind !== 'agent') continue;
    const where = `pipeline '${options.name}' ${s.kind === 'agent' ? 'agent' : 'step'} '${s.name}'`;
    const model: unknown = s.model;
    if (typeof model === 'string') {
      if (model === '')
        throw new UsageError(`${where}: model is empty: name a model id, e.g. 'claude-sonnet-4-6'`);
      continue;
    }
    if (s.kind === 'agent')
      throw new UsageError(
        `${where}: an agent step takes one model id (a string); model fallback lists are supported on llm() steps only`,
      );
    if (!Array.isArray(model))
      throw new UsageError(`${where}: model must be a model id or a list of them (${EXAMPLE})`);
    if (model.length === 0)
      throw new UsageError(
        `${where}: model is an empty list: give at least one model id, in order of preference (${EXAMPLE})`,
      );
    const seen = new Set<string>();
    for (const m of model as unknown[]) {
      if (typeof m !== 'string' || m === '')
        throw new UsageError(
          `${where}: model list holds ${JSON.stringify(m) ?? String(m)}: every entry must be a model id string`,
        );
      if (seen.has(m))
        throw new UsageError(
          `${where}: model list names '${m}' twice: list each fallback model once, in order of preference`,
        );
      seen.add(m);
    }
    if (model.length > 1 && s.price !== undefined)
      throw new UsageError(
        `${where}: \`price\` is ambiguous with several models: remove it and price each unlisted model in the pipeline's \`prices: { '<model>': {...} }\``,
      );
    if (model.length > 1)
      for (const m of model as string[]) {
        try {
          priceFor(m, options.prices);
        } catch (e) {
          if (e instanceof UsageError)
            throw new UsageError(
              `${where}: fallback model '${m}' has no price: add it to the pipeline's prices (definePipeline({ prices: { '${m}': {...} } })) or remove it from the list`,
            );
          throw e;
        }
      }
  }
}
