/**
 * A batch step's call (`batch: true`): in `calling` its request joins the process's next
 * Message Batch and the batch id is recorded (BATCH_SUBMITTED); in `batched` the run waits for
 * its item's result — in this process or, after a crash or a restart, in the next one, which
 * polls the recorded batch and never submits it again. The result is judged, priced (at the
 * batch price) and retried exactly like a direct call's outcome.
 */
import type { RunContext } from '../machines/context.js';
import type { MachineEvent } from '../machines/events.js';
import type { RunSnapshot } from '../machines/fold.js';
import type { LlmStep } from '../machines/pipeline.js';
import { batchCustomId } from '../model/batch.js';
import { outcomeOfAnswer, type BatchClient } from '../model/batchTypes.js';
import type { ClassifiedError, ModelOutcome, ModelRequest } from '../model/types.js';
import { unloadBackoff } from './backoffUnload.js';
import type { ItemResult } from './batcher.js';
import type { DriverEnv } from './env.js';
import type { Logger } from './logger.js';
import { outcomeEvent } from './modelEvents.js';
import { settlePools } from './pools.js';

type Outcome = MachineEvent | { interrupt: 'aborted' | 'waiting' };

/** A classified error of the batch machinery itself (no HTTP status). */
function batchError(kind: string, retryable: boolean, message: string): ClassifiedError {
  return { kind, status: null, retryable, message, retryAfterMs: null, requestId: null };
}

/** The client's batch port, or null (a client that does not speak the Message Batches API). */
function batchesOf(env: DriverEnv): BatchClient | null {
  return env.model().batches ?? null;
}

const NO_BATCHES = batchError(
  'bad_request',
  false,
  'this model client has no Message Batches API: use createAnthropicClient(), or drop `batch: true` from the step',
);

/**
 * Runs `f` with a signal aborted by the caller's signal or the run's kill flag; returns the
 * kill's reason when the run was killed meanwhile.
 */
async function killable<T>(
  env: DriverEnv,
  runId: string,
  signal: AbortSignal,
  f: (s: AbortSignal) => Promise<T>,
): Promise<{ value: T; killedBy: string | null }> {
  const killer = new AbortController();
  const both = AbortSignal.any([signal, killer.signal]);
  let killedBy: string | null = null;
  const unwatch = env.kills.watch(runId, (flag) => {
    killedBy = flag.reason;
    killer.abort();
  });
  try {
    return { value: await f(both), killedBy };
  } finally {
    unwatch();
  }
}

/** `calling` of a batch step: submit the request into the next batch and record where it went. */
export async function batchSubmit(
  env: DriverEnv,
  step: LlmStep,
  ctx: RunContext,
  attempt: number,
  request: ModelRequest,
  signal: AbortSignal,
): Promise<Outcome> {
  const started = env.clock.now();
  const client = batchesOf(env);
  if (client === null)
    return outcomeEvent(env, step, ctx, attempt, {
      ok: false,
      error: NO_BATCHES,
      usage: null,
      durationMs: 0,
    });
  const customId = batchCustomId(ctx.runId, step.name, attempt);
  const { value: r, killedBy } = await killable(env, ctx.runId, signal, (s) =>
    env.batcher.submit(client, { customId, request }, s),
  );
  // Killed while still queued: taken out of the batch, nothing sent or billed. (Killed once the batch
  // was sent: its id is recorded first, and the kill is seen in `batched`, which may cancel it.)
  if (killedBy !== null && !r.ok) {
    await settlePools(env.store, ctx, 0);
    return { type: 'KILL', reason: killedBy };
  }
  // Between here and the append of BATCH_SUBMITTED a crash loses the batch id: the resumed run
  // records a lost call and submits a new item (at-least-once across a crash, like any call).
  if (r.ok) env.hooks?.afterBatchCreated?.(ctx.runId, step.name, r.batchId);
  if (r.ok)
    return {
      type: 'BATCH_SUBMITTED',
      step: step.name,
      attempt,
      batchId: r.batchId,
      customId,
      items: r.items,
      at: env.clock.now(),
    };
  if ('aborted' in r || signal.aborted) return { interrupt: 'aborted' };
  const durationMs = Math.max(0, env.clock.now() - started);
  return outcomeEvent(env, step, ctx, attempt, {
    ok: false,
    error: r.error,
    usage: null,
    durationMs,
  });
}

/**
 * `batched`: wait for the recorded item's result (polling shared with the other runs waiting on
 * the same batch). A kill ends the run at once; the batch is not canceled (other runs' items
 * may be in it), so the item may still be billed: it counts at its reservation. When the next
 * poll is at least `env.unloadBackoffMs` away, the run is let go like a long backoff: its
 * wake-up is scheduled at that poll, and the drive that wakes it polls the recorded batch.
 */
export async function batchWait(
  env: DriverEnv,
  step: LlmStep,
  snap: RunSnapshot,
  signal: AbortSignal,
): Promise<Outcome> {
  const ctx = snap.context;
  const b = ctx.batch;
  const attempt = b?.attempt ?? 0;
  if (b === null || b === undefined || b.step !== step.name)
    throw new Error(`internal: run ${ctx.runId} waits on a batch in step ${step.name} without one`);
  const client = batchesOf(env);
  if (client === null)
    return outcomeEvent(env, step, ctx, attempt, {
      ok: false,
      error: NO_BATCHES,
      usage: null,
      durationMs: 0,
    });
  const leave = env.unloadBackoffMs;
  const wait = { since: b.at, ...(leave !== undefined ? { leaveAtMs: leave } : {}) };
  let { value: r, killedBy } = await killable(env, ctx.runId, signal, (s) =>
    env.batcher.result(client, b.batchId, b.customId, s, wait),
  );
  while (killedBy === null && r?.type === 'pending' && !signal.aborted) {
    // The next poll is far: wait for it in the store's wake-up schedule, not here.
    const unload = await unloadBackoff(env, ctx.runId, r.nextPollAt);
    if (unload.unload) return { interrupt: 'waiting' };
    if ('killed' in unload) killedBy = unload.killed;
    // Not let go after all (the time went by meanwhile): wait here for this one poll.
    else
      ({ value: r, killedBy } = await killable(env, ctx.runId, signal, (s) =>
        env.batcher.result(client, b.batchId, b.customId, s, { since: b.at }),
      ));
  }
  if (killedBy !== null) {
    if (b.items === 1) await cancelAlone(env.logger, client, ctx.runId, b.batchId);
    await settlePools(env.store, ctx, ctx.reservedUsd);
    return { type: 'KILL', reason: killedBy };
  }
  if (r === null || r.type === 'pending' || signal.aborted) return { interrupt: 'aborted' };
  const durationMs = Math.max(0, env.clock.now() - b.at);
  return outcomeEvent(env, step, ctx, attempt, outcomeOfItem(r, step, b.batchId, durationMs));
}

/**
 * Cancels the batch of a killed run when its item is the batch's only one (no other run's item
 * is in it). Best effort: a failure is logged, the kill stands (the item may still be billed,
 * and it counts at its reservation either way).
 */
export async function cancelAlone(
  logger: Logger,
  client: BatchClient,
  runId: string,
  batchId: string,
): Promise<void> {
  const r = await client.cancel(batchId);
  if (!r.ok)
    logger.warn(
      { runId, batchId, decision: 'leave', reason: `${r.error.kind}: ${r.error.message}` },
      'could not cancel the batch of a killed run',
    );
}

/** An item's result as a call's outcome: an answer, or an error classified for the retry guard. */
function outcomeOfItem(
  r: Exclude<ItemResult, null | { type: 'pending' }>,
  step: LlmStep,
  batchId: string,
  durationMs: number,
): ModelOutcome {
  const failed = (error: ClassifiedError): ModelOutcome => ({
    ok: false,
    error,
    usage: null,
    durationMs,
  });
  switch (r.type) {
    case 'succeeded':
      return outcomeOfAnswer(
        r.answer,
        { mode: step.mode ?? 'native', schemaName: step.name },
        durationMs,
      );
    case 'errored':
    case 'failed':
      return failed(r.error);
    case 'expired':
      return failed(
        batchError(
          'batch_expired',
          true,
          `batch ${batchId} expired (24 h) before this item ran: not billed; retried as a new item`,
        ),
      );
    case 'canceled':
      return failed(
        batchError(
          'batch_canceled',
          false,
          `batch ${batchId} was canceled before this item ran: not billed; resume or rerun the run to ask again`,
        ),
      );
  }
}
