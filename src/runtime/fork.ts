/**
 * Forking a run: a new run whose log begins with the source run's events up to a seq, so the
 * recorded model results and effects before that point are reused (no model call for them),
 * and which is then driven live from the folded state at that seq.
 *
 * The copied events were decided under the source's limits, so the fork's log must fold to the
 * same states under the limits it records. New limits therefore take effect after the copied
 * prefix: as a RESUME when the fork point is parked, or in `run.started` only when every
 * copied decision folds the same under them (checked before anything is written).
 */
import { ulid } from 'ulid';
import { ReplayMismatchError, UsageError } from '../errors.js';
import type { MachineEvent, NewEnvelope, RunStarted, StoredEnvelope } from '../machines/events.js';
import { statusOf, step, summarize, type RunSnapshot } from '../machines/fold.js';
import { foldLog } from '../machines/replay.js';
import type { LimitOverrides, Runtime } from './driver.js';
import { parseRunInput, type Prepared } from './prepare.js';
import { recordDefinition } from '../store/definitions.js';
import { checkNewRunId } from './runId.js';

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
 * Creates the fork's log (verifying that the prefix replays against today's pipeline, and that
 * the whole new log replays) and returns its run id; drive it with `runtime.drive`.
 */
export async function forkRun(
  runtime: Runtime,
  prepared: Prepared,
  sourceId: string,
  o: ForkOptions,
): Promise<string> {
  const runId = checkNewRunId(o.runId ?? ulid());
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
  const { started } = foldLog(prepared.machine, prepared.hash, sourceId, prefix, {
    ignoreHash: true,
  });
  const head: NewEnvelope = {
    v: 1,
    at: o.now,
    event: {
      ...started,
      machineHash: prepared.hash,
      definition: null,
      module: prepared.module,
      input:
        o.input !== undefined
          ? parseRunInput(prepared.pipeline, o.input, '--input')
          : started.input,
      forkedFrom: { runId: sourceId, seq: o.at },
    },
    state: prefix[0]?.state as NewEnvelope['state'],
  };
  const copied: NewEnvelope[] = prefix
    .slice(1)
    .map((e) => ({ v: 1, at: e.at, event: e.event, state: e.state }));
  const log = withLimits(prepared, runId, [head, ...copied], o.limits ?? {}, o.now);
  try {
    // Through the run writer, like every other write: chained, emitted, logged.
    await recordDefinition(runtime.store, prepared.hash, prepared.graph);
    await runtime.startLog(prepared, runId, log);
  } catch (e) {
    if (e instanceof UsageError) throw e;
    throw new UsageError(`cannot create fork ${runId}: ${(e as Error).message}`, { cause: e });
  }
  return runId;
}

/** Folds a new log as the driver will (every recorded state checked); throws on a mismatch. */
function foldNew(prepared: Prepared, runId: string, log: readonly NewEnvelope[]): RunSnapshot {
  const stored: StoredEnvelope[] = log.map((e, i) => ({ ...e, runId, seq: i + 1 }));
  return foldLog(prepared.machine, prepared.hash, runId, stored).snapshot;
}

function flagsOf(l: LimitOverrides): string {
  return [
    l.budgetUsd !== undefined ? `--budget-usd ${l.budgetUsd}` : '',
    l.maxIterations !== undefined ? `--max-iterations ${l.maxIterations}` : '',
    l.deadlineMs !== undefined ? `--deadline ${l.deadlineMs}ms` : '',
  ]
    .filter((s) => s !== '')
    .join(' ');
}

/**
 * Applies limit overrides to a fork's log (head with the source's limits, then the copied
 * events). Parked at the fork point: a RESUME with the new limits is appended, exactly as
 * `resume --budget-usd` would record it. Otherwise the new limits go in `run.started`, and the
 * log is folded to prove the copied decisions come out the same under them.
 */
function withLimits(
  prepared: Prepared,
  runId: string,
  log: NewEnvelope[],
  l: LimitOverrides,
  now: number,
): NewEnvelope[] {
  const flags = flagsOf(l);
  if (flags === '') return log;
  const atFork = foldNew(prepared, runId, log);
  const deadlineAt = l.deadlineMs !== undefined ? now + l.deadlineMs : undefined;
  if (statusOf(atFork) === 'parked') {
    const resume: MachineEvent = {
      type: 'RESUME',
      budgetUsd: l.budgetUsd ?? null,
      maxIterations: l.maxIterations ?? null,
      deadlineAt: deadlineAt ?? null,
    };
    const next = step(prepared.machine, atFork, resume);
    return [...log, { v: 1, at: now, event: resume, state: summarize(next) }];
  }
  const [head, ...copied] = log as [NewEnvelope, ...NewEnvelope[]];
  const started = head.event as RunStarted;
  const limits = {
    ...started.limits, // token caps are kept as the source had them
    budgetUsd: l.budgetUsd ?? started.limits.budgetUsd,
    maxIterations: l.maxIterations ?? started.limits.maxIterations,
    deadlineAt: deadlineAt ?? started.limits.deadlineAt,
  };
  const raised = [{ ...head, event: { ...started, limits } }, ...copied];
  const source = started.forkedFrom ?? { runId: '?', seq: log.length };
  const refuse = (why: string, cause?: unknown): UsageError =>
    new UsageError(
      `cannot fork run ${source.runId} at seq ${source.seq} with ${flags}: ${why}; ` +
        'fork at a seq where the run is parked (the new limits then apply from there), ' +
        'or fork without them and `plumbline resume <fork-id>` with the new limits when it parks',
      cause !== undefined ? { cause } : undefined,
    );
  let folded: RunSnapshot;
  try {
    folded = foldNew(prepared, runId, raised);
  } catch (e) {
    if (!(e instanceof ReplayMismatchError)) throw e;
    const event = log[e.seq - 1]?.event.type ?? 'an event';
    throw refuse(
      `the copied ${event} at seq ${e.seq} was decided under the source's limits and comes out differently under the new ones`,
      e,
    );
  }
  const got = (folded.context as { limits: typeof limits }).limits;
  if (
    got.budgetUsd !== limits.budgetUsd ||
    got.maxIterations !== limits.maxIterations ||
    got.deadlineAt !== limits.deadlineAt
  )
    throw refuse('a copied RESUME sets the limits itself');
  return raised;
}
