/**
 * Finding the pipeline code of a recorded run: from `--pipelines`, else from the module path
 * recorded in its `run.started` event.
 */
import { existsSync } from 'node:fs';
import { UsageError } from '../errors.js';
import type { RunStarted } from '../machines/events.js';
import { startedOf } from '../machines/replay.js';
import { findPipeline, loadPipeline, loadPipelines } from '../runtime/load.js';
import type { Prepared } from '../runtime/prepare.js';
import type { Store } from '../store/types.js';

/** Loads `--pipelines` if given (empty map otherwise). */
export async function pipelinesFrom(
  paths: readonly string[] | undefined,
): Promise<Map<string, Prepared>> {
  return paths !== undefined && paths.length > 0 ? loadPipelines(paths) : new Map();
}

/** The prepared pipeline for a recorded run. */
export async function pipelineForRun(
  store: Store,
  runId: string,
  given: Map<string, Prepared>,
): Promise<Prepared> {
  const head = await store.log.read(runId, 1);
  return pipelineForStarted(runId, startedOf(runId, head.slice(0, 1)).started, given);
}

/** The prepared pipeline for a run whose `run.started` event is already read. */
export async function pipelineForStarted(
  runId: string,
  started: RunStarted,
  given: Map<string, Prepared>,
): Promise<Prepared> {
  const fromFlag = given.get(started.pipeline);
  if (fromFlag !== undefined) return fromFlag;
  if (started.module === null || !existsSync(started.module)) {
    throw new UsageError(
      `run ${runId} (pipeline '${started.pipeline}') was started from ${started.module ?? 'code with no module path'}, ` +
        'which is not there now: pass --pipelines <file|dir> with the pipeline module',
    );
  }
  const root = await loadPipeline(started.module);
  // A child run names its own pipeline and its root's module.
  const prepared = findPipeline(root, started.pipeline) ?? root;
  if (prepared.pipeline.name !== started.pipeline) {
    throw new UsageError(
      `${started.module} now defines pipeline '${prepared.pipeline.name}', not '${started.pipeline}': pass --pipelines`,
    );
  }
  return prepared;
}
