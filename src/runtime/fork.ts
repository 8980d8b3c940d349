/**
 * Forking a run: a new run whose log begins with the source run's events up to a seq, so the
 * recorded model results and effects before that point are reused (no model call for them),
 * and which is then driven live from the folded state at that seq.
 */
import { ulid } from 'ulid';
import { UsageError } from '../errors.js';
import type { NewEnvelope, RunStarted } from '../machines/events.js';
import { foldLog } from '../machines/replay.js';
import type { LimitOverrides, Runtime } from './driver.js';
import type { Prepared } from './prepare.js';

/** Options of {@link forkRun}. */
export interface ForkOptions {
  /** Copy the source's events up to and including this seq. */
  at: number;
  runId?: string;
  limits?: LimitOverrides;
  /** A different input (validated against the pipeline's schema). */
  input?: unknown;
  now: number;
}

/**
 * Creates the fork's log (verifying that the prefix replays against today's pipeline) and
 * returns its run id; drive it with `runtime.drive`.
 */
export async function forkRun(
  runtime: Runtime,
  prepared: Prepared,
  sourceId: string,
  o: ForkOptions,
): Promise<string> {
  const events = await runtime.store.log.read(sourceId);
  if (events.length === 0)
    throw new UsageError(`unknown run id '${sourceId}': list runs with \`plumbline runs\``);
  const last = events[events.length - 1]?.seq ?? 0;
  if (!Number.isInteger(o.at) || o.at < 1 || o.at > last)
    throw new UsageError(
      `--at ${o.at} is outside run ${sourceId}'s log: pick a seq from 1 to ${last}`,
    );
  const prefix = events.filter((e) => e.seq <= o.at);
  // The prefix must still replay on today's code (a changed prompt is fine; a renamed step is not).
  foldLog(prepared.machine, prepared.hash, sourceId, prefix, { ignoreHash: true });
  const started = prefix[0]?.event as RunStarted;
  let input = started.input;
  if (o.input !== undefined) {
    const parsed = prepared.pipeline.input.safeParse(o.input);
    if (!parsed.success)
      throw new UsageError(
        `--input does not match pipeline '${prepared.pipeline.name}' input schema: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`,
      );
    input = parsed.data;
  }
  const l = o.limits ?? {};
  const limits = {
    budgetUsd: l.budgetUsd ?? started.limits.budgetUsd,
    maxIterations: l.maxIterations ?? started.limits.maxIterations,
    deadlineAt: l.deadlineMs !== undefined ? o.now + l.deadlineMs : started.limits.deadlineAt,
  };
  const runId = o.runId ?? ulid();
  const head: NewEnvelope = {
    v: 1,
    at: o.now,
    event: {
      ...started,
      machineHash: prepared.hash,
      definition: prepared.graph,
      module: prepared.module,
      input,
      limits,
      forkedFrom: { runId: sourceId, seq: o.at },
    },
    state: prefix[0]?.state as NewEnvelope['state'],
  };
  const copied: NewEnvelope[] = prefix
    .slice(1)
    .map((e) => ({ v: 1, at: e.at, event: e.event, state: e.state }));
  try {
    await runtime.store.log.append(runId, [head, ...copied], 'no_stream');
  } catch (e) {
    throw new UsageError(`cannot create fork ${runId}: ${(e as Error).message}`, { cause: e });
  }
  return runId;
}
