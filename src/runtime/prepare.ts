/**
 * A pipeline made ready to run: its machine, graph and hash, and every model priced.
 * Compiled once per pipeline object.
 */
import { UsageError } from '../errors.js';
import { compilePipeline, type RunMachine } from '../machines/compile.js';
import { machineSteps } from '../machines/constructs.js';
import { modelsOf } from '../machines/fallback.js';
import { describeMachine, machineHash, type MachineGraph } from '../machines/graph.js';
import type { LlmStep, Pipeline } from '../machines/pipeline.js';
import { batchPrice } from '../model/batch.js';
import { checkPrice, priceFor } from '../model/prices.js';
import { resolveRetryPolicy } from '../model/retry.js';
import type { Price, RetryPolicy } from '../model/types.js';

/** A compiled pipeline. */
export interface Prepared {
  pipeline: Pipeline;
  machine: RunMachine;
  graph: MachineGraph;
  hash: string;
  /** The module the pipeline came from (absolute path), when loaded from a file. */
  module: string | null;
  /** The price of `model` (default the step's first model) for `step`. */
  priceOf(step: LlmStep, model?: string): Price;
  retryOf(step: LlmStep): RetryPolicy;
}

const cache = new WeakMap<Pipeline, Prepared>();

/**
 * Validates a run input against the pipeline's schema and returns the parsed value, or throws a
 * UsageError listing every issue (`label` names where the input came from, e.g. `--input`).
 */
export function parseRunInput(pipeline: Pipeline, input: unknown, label = 'input'): unknown {
  const parsed = pipeline.input.safeParse(input);
  if (parsed.success) return parsed.data;
  const issues = parsed.error.issues
    .map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`)
    .join('; ');
  throw new UsageError(
    `${label} does not match pipeline '${pipeline.name}' input schema: ${issues}`,
  );
}

/**
 * Compiles and checks `pipeline`; throws a UsageError naming the step and the fix for an unpriced
 * model or an invalid retry policy.
 */
export function prepare(pipeline: Pipeline, module: string | null = null): Prepared {
  const hit = cache.get(pipeline);
  if (hit !== undefined && hit.module === module) return hit;
  // By step, then by model: a step with fallback models prices each of them.
  const prices = new Map<string, Map<string, Price>>();
  const retries = new Map<string, RetryPolicy>();
  // Every llm step this run's machine drives: a route's branch steps too (priced and checked here).
  for (const s of machineSteps(pipeline.steps)) {
    if (s.kind !== 'llm') continue;
    try {
      const models = modelsOf(s);
      const own = (m: string): Price =>
        s.price !== undefined && models.length === 1
          ? checkPrice(m, s.price)
          : priceFor(m, pipeline.prices);
      // A batch step is reserved and costed at the batch price (half of every field).
      const priced = (m: string): Price => (s.batch === true ? batchPrice(own(m)) : own(m));
      prices.set(s.name, new Map(models.map((m) => [m, priced(m)])));
      // Resolved now, so a bad policy (in a pipeline not made by definePipeline) fails here.
      retries.set(s.name, resolveRetryPolicy({ ...pipeline.retry, ...s.retry }));
    } catch (e) {
      if (e instanceof UsageError)
        throw new UsageError(`pipeline '${pipeline.name}' step '${s.name}': ${e.message}`);
      throw e;
    }
  }
  const machine = compilePipeline(pipeline);
  const graph = describeMachine(machine);
  const prepared: Prepared = {
    pipeline,
    machine,
    graph,
    hash: machineHash(graph),
    module,
    priceOf: (s, model) => prices.get(s.name)?.get(model ?? (modelsOf(s)[0] as string)) as Price,
    retryOf: (s) => retries.get(s.name) ?? resolveRetryPolicy({ ...pipeline.retry, ...s.retry }),
  };
  cache.set(pipeline, prepared);
  return prepared;
}
