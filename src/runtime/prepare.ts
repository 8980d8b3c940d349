/**
 * A pipeline made ready to run: its machine, graph and hash, and every model priced.
 * Compiled once per pipeline object.
 */
import { UsageError } from '../errors.js';
import { compilePipeline, type RunMachine } from '../machines/compile.js';
import { describeMachine, machineHash, type MachineGraph } from '../machines/graph.js';
import type { LlmStep, Pipeline } from '../machines/pipeline.js';
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
  priceOf(step: LlmStep): Price;
  retryOf(step: LlmStep): RetryPolicy;
}

const cache = new WeakMap<Pipeline, Prepared>();

/** Compiles and checks `pipeline`; throws a UsageError naming the fix for an unpriced model. */
export function prepare(pipeline: Pipeline, module: string | null = null): Prepared {
  const hit = cache.get(pipeline);
  if (hit !== undefined && hit.module === module) return hit;
  const prices = new Map<string, Price>();
  for (const s of pipeline.steps) {
    if (s.kind !== 'llm') continue;
    try {
      prices.set(
        s.name,
        s.price !== undefined ? checkPrice(s.model, s.price) : priceFor(s.model, pipeline.prices),
      );
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
    priceOf: (s) => prices.get(s.name) as Price,
    retryOf: (s) => resolveRetryPolicy({ ...pipeline.retry, ...s.retry }),
  };
  cache.set(pipeline, prepared);
  return prepared;
}
