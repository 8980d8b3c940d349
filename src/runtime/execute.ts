/**
 * The driver's side: for the state a run is in, do the one piece of I/O it calls for (ask the
 * model, run an effect, wait out a backoff) and return the event that records the outcome.
 * User code and model failures become events; nothing here throws for a bad run.
 */
import { serializeError } from '../errors.js';
import { attemptsOf } from '../machines/context.js';
import type { MachineEvent } from '../machines/events.js';
import type { RunSnapshot } from '../machines/fold.js';
import {
  effectTimeoutOf,
  type EffectStep,
  type LlmStep,
  type Step,
  type TransformStep,
} from '../machines/pipeline.js';
import type { ChildStep, RouteStep } from '../machines/constructs.js';
import { agentPhase } from './agentRun.js';
import { unloadBackoff } from './backoffUnload.js';
import type { SleepStep, WaitStep } from '../machines/waits.js';
import { ChildGroup, childLimits, childSpecs, poolOf, remainingCaps } from './children.js';
import { settlePools } from './pools.js';
import { batchSubmit, batchWait } from './batchPhase.js';
import { attemptEvent, outcomeEvent } from './modelEvents.js';
import { worstCaseUsd } from '../model/cost.js';
import { reserveInputTokens } from '../model/reserve.js';
import { claimerToken, leaseClaimer } from '../store/leaseRules.js';
import type { RateTicket } from './rateGate.js';
import { buildRequest, stepContext } from './request.js';
import { currentModel, fallbackOf, hasFallback, modelsOf } from '../machines/fallback.js';
import { chooseModel } from './modelChoice.js';
import {
  DEFAULT_EFFECT_GRACE_MS,
  notJsonMarker,
  notJsonMessage,
  runGuarded,
  type Guarded,
} from './effectRun.js';
import type { DriverEnv } from './env.js';
import { PLAIN_JSON_HINT, toPlainJson } from './plainJson.js';
import { signalAlreadyTaken } from './signals.js';

/** Pipeline code (a prompt, key or skip function) threw: the step fails, not the process. */
export class UserCodeError extends Error {
  constructor(step: string, cause: unknown) {
    super(`pipeline code threw in step '${step}': ${serializeError(cause).message}`, { cause });
    this.name = 'UserCodeError';
  }
}

/** Runs pipeline code, marking what it throws as the pipeline's fault (not the store's). */
function user<T>(step: string, f: () => T): T {
  try {
    return f();
  } catch (e) {
    throw new UserCodeError(step, e);
  }
}

/** Why the driver stopped before an event could be produced. */
export type Interrupt =
  | { interrupt: 'killed'; reason: string }
  | { interrupt: 'aborted' }
  /** Another driver holds the run now: stop without recording anything. */
  | { interrupt: 'fenced' }
  /** The run waits for a signal or a time: let it go (it is scheduled to wake). */
  | { interrupt: 'waiting' };

type Outcome = MachineEvent | Interrupt;

async function killEvent(env: DriverEnv, runId: string): Promise<MachineEvent | null> {
  // From the runtime's kill watcher (polled once per tick for every run): no store read per step.
  const flag = await env.kills.current(runId);
  return flag === undefined ? null : { type: 'KILL', reason: flag.reason };
}

function skipEvent(step: Step, snap: RunSnapshot): MachineEvent | null {
  if (step.skip === undefined) return null;
  const reason = step.skip(stepContext(snap.context, step.name));
  return typeof reason === 'string' && reason !== ''
    ? { type: 'SKIP', step: step.name, reason }
    : null;
}

/** Waits until `until` (epoch ms), woken early by the kill watcher; returns a KILL event if killed. */
async function waitUntil(
  env: DriverEnv,
  runId: string,
  until: number,
  signal: AbortSignal,
): Promise<Outcome | null> {
  const kill = await killEvent(env, runId);
  if (kill !== null) return kill;
  // One controller per wait, woken by the kill watcher or the caller's signal (no
  // AbortSignal.any: it is costly in memory per parked run on Node 20).
  const wake = new AbortController();
  let flag: { reason: string } | null = null;
  const unwatch = env.kills.watch(runId, (f) => {
    flag = f;
    wake.abort();
  });
  const onAbort = (): void => wake.abort();
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    for (;;) {
      if (flag !== null) return { type: 'KILL', reason: (flag as { reason: string }).reason };
      if (signal.aborted) return { interrupt: 'aborted' };
      const left = until - env.clock.now();
      if (left <= 0) return null;
      await env.clock.sleep(left, wake.signal);
    }
  } finally {
    signal.removeEventListener('abort', onAbort);
    unwatch();
  }
}

/** How long a refused take waits beyond the time it was told, at most: spreads the waiters. */
const RATE_JITTER_MS = 100;

/**
 * Waits until the shared rate limits of `model` have room for one call (taking it), woken by a
 * kill or the drive's abort. Null when calls are not paced. The wait is in this process: the
 * run holds its lease, a timer and the snapshot its drive holds anyway, nothing in the store.
 */
async function awaitRoom(
  env: DriverEnv,
  model: string,
  runId: string,
  inputTokens: number,
  outputTokens: number,
  signal: AbortSignal,
): Promise<RateTicket | Outcome | null> {
  const rates = env.rates;
  if (rates === undefined) return null;
  let account: string | undefined;
  try {
    account = env.model().accountId;
  } catch {
    account = undefined;
  }
  const key = rates.keyOf(model, account);
  const cost = { requests: 1, inputTokens, outputTokens };
  for (let waits = 0; ; waits++) {
    const now = env.clock.now();
    const took = await rates.take(key, model, cost, now);
    if (took.ok) return { key, model, charged: took.charged, sentAt: now };
    if (waits === 0)
      env.logger.debug(
        {
          runId,
          model,
          decision: 'wait',
          reason: `rate limit (${took.reason}): no room for ${took.waitMs} ms`,
        },
        'waiting for rate-limit room',
      );
    const until =
      now + took.waitMs + Math.floor(env.random() * Math.min(RATE_JITTER_MS, took.waitMs));
    const stop = await waitUntil(env, runId, until, signal);
    if (stop !== null) return stop;
  }
}

async function llmPhase(
  env: DriverEnv,
  step: LlmStep,
  phase: string,
  snap: RunSnapshot,
  signal: AbortSignal,
): Promise<Outcome> {
  const ctx = snap.context;
  const runId = ctx.runId;
  if (phase === 'ready') {
    const kill = await killEvent(env, runId);
    if (kill !== null) return kill;
    const skip = user(step.name, () => skipEvent(step, snap));
    if (skip !== null) return skip;
    // The prompt runs once per attempt: the request built here is the one the call sends.
    const built = user(step.name, () => buildRequest(step, ctx, currentModel(step, ctx)));
    const attempt = attemptsOf(ctx, step.name).calls + 1;
    // A fallback step picks its model (by the breakers, from its floor on) before pricing the
    // call: the reservation is at the chosen model's price.
    // The breaker guards the live Messages endpoint; a batch item goes elsewhere and is answered
    // hours later, so it neither waits for the breaker nor reports to it.
    const gate = step.batch === true ? undefined : env.breakers;
    const choice = hasFallback(step)
      ? await chooseModel(
          modelsOf(step),
          fallbackOf(ctx, step.name).floor,
          gate !== undefined ? (m) => gate.acquire(m, env.clock.now()) : undefined,
        )
      : null;
    const model = choice?.model ?? built.model;
    const request = model === built.model ? built : { ...built, model };
    const price = env.prepared.priceOf(step, model);
    // Counted by the provider when the client can, else bounded by the request's UTF-8 bytes.
    const inputTokens = await reserveInputTokens(env.model, request, signal);
    const usd = worstCaseUsd(request, price, inputTokens);
    // Room under the provider's rate limits first, before anything is recorded: a kill or a
    // crash while waiting leaves no attempt behind. A batch item is not a Messages call: the
    // batch API has its own limits.
    const rate =
      step.batch === true
        ? null
        : await awaitRoom(env, model, runId, inputTokens, request.maxTokens, signal);
    if (rate !== null && !('sentAt' in rate)) return rate;
    // A child run reserves its worst case in its ancestors' pools before the limits judge it.
    return attemptEvent(env, ctx, {
      step: step.name,
      attempt,
      model,
      request,
      inputTokens,
      usd,
      rate,
      breaker: async () =>
        choice !== null
          ? choice.breaker
          : gate !== undefined
            ? gate.acquire(model, env.clock.now())
            : 'closed',
    });
  }
  if (phase === 'calling') {
    const model = env.model();
    const attempt = attemptsOf(ctx, step.name).calls;
    const held = env.request;
    env.request = null;
    // The model the ATTEMPT chose, as the fold of the log says (the same after a crash).
    const modelId = currentModel(step, ctx);
    const same = held !== null && held.step === step.name && held.attempt === attempt;
    const request = same ? held.request : user(step.name, () => buildRequest(step, ctx, modelId));
    const rate = same ? (held.rate ?? null) : null;
    // A batch step's call is a submit into a Message Batch; its answer is awaited in `batched`.
    if (step.batch === true) return batchSubmit(env, step, ctx, attempt, request, signal);
    // One controller for the call, aborted by a kill or by the drive's signal (no
    // AbortSignal.any: its weak references and finalizers cost a run CPU and garbage on Node 20).
    const both = new AbortController();
    let killedBy: string | null = null;
    const unwatch = env.kills.watch(runId, (f) => {
      killedBy = f.reason;
      both.abort();
    });
    const onAbort = (): void => both.abort(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    if (signal.aborted) onAbort();
    let outcome;
    try {
      outcome = await model.call(request, both.signal);
    } finally {
      signal.removeEventListener('abort', onAbort);
      unwatch();
    }
    // The unused room goes back and the headers correct the levels (a killed or stopped call
    // keeps all it took: it may have been counted).
    if (rate !== null && env.rates !== undefined)
      await env.rates.after(
        rate,
        killedBy !== null || signal.aborted ? null : outcome,
        env.clock.now(),
      );
    // A child's pool reservation is settled at what the call cost; a killed call at its
    // reservation (unknown); a stopped one not at all (the next driver records it as lost).
    if (killedBy !== null) {
      await settlePools(env.store, ctx, ctx.reservedUsd);
      return { type: 'KILL', reason: killedBy };
    }
    if (signal.aborted) return { interrupt: 'aborted' };
    return outcomeEvent(env, step, ctx, attempt, outcome, modelId);
  }
  if (phase === 'batched') return batchWait(env, step, snap, signal);
  return backoff(env, step, snap, signal);
}

async function backoff(
  env: DriverEnv,
  step: Step,
  snap: RunSnapshot,
  signal: AbortSignal,
): Promise<Outcome> {
  const until = snap.context.waitUntil ?? env.clock.now();
  // A long backoff waits in the store, not here: the wake-up sweep drives the run on at `until`.
  const unload = await unloadBackoff(env, snap.context.runId, until);
  if (unload.unload) return { interrupt: 'waiting' };
  if ('killed' in unload) return { type: 'KILL', reason: unload.killed };
  const stop = await waitUntil(env, snap.context.runId, until, signal);
  if (stop !== null) return stop;
  return { type: 'TIMER', step: step.name, at: env.clock.now() };
}

function effectFailed(
  env: DriverEnv,
  step: EffectStep,
  snap: RunSnapshot,
  key: string,
  message: string,
  retryable: boolean,
): MachineEvent {
  const failures = attemptsOf(snap.context, step.name).failures + 1;
  const delayMs = Math.floor(env.random() * Math.min(8_000, 500 * 2 ** (failures - 1)));
  return {
    type: 'EFFECT_FAILED',
    step: step.name,
    key,
    message,
    retryable,
    delayMs,
    retryAt: env.clock.now() + delayMs,
  };
}

/**
 * Records what an effect returned, checked after it returned: plain JSON is its result; anything
 * else fails the step, not retried (a programming error), and the ledger records that it ran so
 * no resume runs it again. A store error propagates (the run stays resumable), never a retry.
 */
async function recordEffect(
  env: DriverEnv,
  step: EffectStep,
  snap: RunSnapshot,
  key: string,
  value: unknown,
  started: number,
): Promise<MachineEvent> {
  const runId = snap.context.runId;
  const json = toPlainJson(value, 'result');
  env.hooks?.afterEffectRan?.(runId, step.name, key);
  if (!json.ok) {
    const message = `effect '${step.name}' returned ${json.found} at ${json.path}: ${PLAIN_JSON_HINT}`;
    await env.store.ledger.record(runId, step.name, key, notJsonMarker(message), env.clock.now());
    return effectFailed(env, step, snap, key, message, false);
  }
  await env.store.ledger.record(runId, step.name, key, json.value, env.clock.now());
  return {
    type: 'EFFECT_DONE',
    step: step.name,
    key,
    result: json.value,
    replayed: false,
    durationMs: env.clock.now() - started,
  };
}

async function effectPhase(
  env: DriverEnv,
  step: EffectStep,
  phase: string,
  snap: RunSnapshot,
  signal: AbortSignal,
): Promise<Outcome> {
  const ctx = snap.context;
  if (phase === 'ready') {
    const kill = await killEvent(env, ctx.runId);
    if (kill !== null) return kill;
    const skip = user(step.name, () => skipEvent(step, snap));
    if (skip !== null) return skip;
    const key = user(step.name, () => step.key(stepContext(ctx, step.name)));
    return {
      type: 'EFFECT_STARTED',
      step: step.name,
      key: String(key),
      attempt: attemptsOf(ctx, step.name).failures + 1,
    };
  }
  if (phase === 'running') return runEffect(env, step, snap, signal);
  return backoff(env, step, snap, signal);
}

/** Claims the effect in the ledger under the run's lease and runs it unless it already ran. */
async function runEffect(
  env: DriverEnv,
  step: EffectStep,
  snap: RunSnapshot,
  signal: AbortSignal,
): Promise<Outcome> {
  const ctx = snap.context;
  const key = env.effectKey();
  if (key === null) throw new Error(`internal: effect ${step.name} running without a recorded key`);
  const started = env.clock.now();
  const claimer = leaseClaimer(env.lease);
  const claim = await env.store.ledger.claim(ctx.runId, step.name, key, started, claimer);
  if (claim.status === 'unrecorded' && claimerToken(claim.claimer) > env.lease.token)
    // Claimed under a newer lease than ours: another driver has the run now.
    return { interrupt: 'fenced' };
  if (claim.status === 'unrecorded' && claim.claimer !== claimer)
    // Claimed under an older lease whose holder is gone (this driver holds the run's lease):
    // the effect may or may not have happened — at least once, across a crash only. (Our own
    // claim is a retry after a recorded failure: nothing to say.)
    env.logger.warn(
      {
        runId: ctx.runId,
        step: step.name,
        key,
        decision: 'rerun',
        reason: `claimed by ${claim.claimer ?? 'a driver from before leases'} who stopped before recording it`,
      },
      'effect claimed but never recorded: running it again',
    );
  if (claim.status === 'done') {
    const notJson = notJsonMessage(claim.result);
    if (notJson !== null) return effectFailed(env, step, snap, key, notJson, false);
    return {
      type: 'EFFECT_DONE',
      step: step.name,
      key,
      result: claim.result ?? null,
      replayed: true,
      durationMs: 0,
    };
  }
  // Stopped while claiming: leave it unrun (the claim is ours, the next driver's lease is newer).
  if (signal.aborted) return { interrupt: 'aborted' };
  env.hooks?.afterEffectClaimed?.(ctx.runId, step.name, key);
  const timeoutMs = effectTimeoutOf(step, env.prepared.pipeline);
  const graceMs = env.effectGraceMs ?? DEFAULT_EFFECT_GRACE_MS;
  const ran = await runGuarded(
    (s) => step.run({ ...stepContext(ctx, step.name), key, signal: s }),
    { runId: ctx.runId, timeoutMs, graceMs, signal, kills: env.kills },
  );
  if (ran.end === 'stopped') return stoppedEffect(env, step, snap, key, ran, graceMs, started);
  if (ran.settled.ok) return recordEffect(env, step, snap, key, ran.settled.value, started);
  const e = ran.settled.error;
  const retryable = (e as { retryable?: unknown }).retryable !== false;
  return effectFailed(env, step, snap, key, serializeError(e).message, retryable);
}

/**
 * The outcome of an effect asked to stop (timeout, kill, the drive's abort). One that ignored
 * its signal past the grace is reported and left running: nothing is recorded for it but the
 * failure or the KILL (its ledger claim stays unrecorded; its late result goes nowhere).
 */
async function stoppedEffect(
  env: DriverEnv,
  step: EffectStep,
  snap: RunSnapshot,
  key: string,
  ran: Extract<Guarded, { end: 'stopped' }>,
  graceMs: number,
  started: number,
): Promise<Outcome> {
  const { why, late } = ran;
  const runId = snap.context.runId;
  if (late === null) {
    const after = { timeout: 'its timeout', killed: 'the kill', aborted: 'the stop' }[why.kind];
    const pipeline = env.prepared.pipeline.name;
    env.logger.error(
      { runId, pipeline, step: step.name, key, reason: why.kind, graceMs, decision: 'abandon' },
      `effect '${step.name}' ignored its aborted signal for ${graceMs} ms after ${after}: abandoned, still running unobserved`,
    );
    env.onEffectAbandoned?.({ runId, pipeline, step: step.name, key, reason: why.kind, graceMs });
  }
  // Returned within the grace: it happened, so its result is recorded (a retry or a resume then
  // finds it in the ledger instead of running it again).
  if (late?.ok === true && why.kind === 'aborted')
    return recordEffect(env, step, snap, key, late.value, started);
  if (late?.ok === true) await recordEffect(env, step, snap, key, late.value, started);
  if (why.kind === 'killed') return { type: 'KILL', reason: why.reason };
  if (why.kind === 'aborted') return { interrupt: 'aborted' };
  const timedOut = `effect '${step.name}' timed out after ${why.timeoutMs} ms`;
  if (late !== null) return effectFailed(env, step, snap, key, timedOut, true);
  // Not retried: a second copy would run while the first may still be running.
  return effectFailed(
    env,
    step,
    snap,
    key,
    `${timedOut} and ignored its aborted signal for ${graceMs} ms: abandoned, not retried (it may still be running)`,
    false,
  );
}

async function transformPhase(
  env: DriverEnv,
  step: TransformStep,
  snap: RunSnapshot,
): Promise<Outcome> {
  const kill = await killEvent(env, snap.context.runId);
  if (kill !== null) return kill;
  const skip = user(step.name, () => skipEvent(step, snap));
  if (skip !== null) return skip;
  let out: unknown;
  try {
    out = await step.run(stepContext(snap.context, step.name));
  } catch (e) {
    return { type: 'STEP_FAILED', step: step.name, message: serializeError(e).message };
  }
  // Checked after it returned: a value JSON would change or refuse fails the step, named.
  const json = toPlainJson(out, 'output');
  if (!json.ok)
    return {
      type: 'STEP_FAILED',
      step: step.name,
      message: `step '${step.name}' returned ${json.found} at ${json.path}: ${PLAIN_JSON_HINT}`,
    };
  return { type: 'STEP_DONE', step: step.name, output: json.value };
}

/** Performs the I/O that `phase` of `step` calls for and returns the event to record. */
export async function execute(
  env: DriverEnv,
  step: Step,
  phase: string,
  snap: RunSnapshot,
  signal: AbortSignal,
): Promise<Outcome> {
  switch (step.kind) {
    case 'llm':
      return llmPhase(env, step, phase, snap, signal);
    case 'effect':
      return effectPhase(env, step, phase, snap, signal);
    case 'step':
      return transformPhase(env, step, snap);
    case 'route':
      return routePhase(env, step, snap);
    case 'parallel':
    case 'map':
    case 'call':
      return childPhase(env, step, phase, snap, signal);
    case 'agent':
      return agentPhase(env, step, phase, snap, signal, {
        killEvent,
        skipEvent,
        user,
        backoff,
        awaitRoom,
      });
    case 'wait':
    case 'sleep':
      return waitPhase(env, step, phase, snap, signal);
  }
}

/** Sleeps shorter than this are waited out in the process; longer ones let the run go. */
const IN_PROCESS_SLEEP_MS = 2_000;

/**
 * A wait or sleep step. Ready: record what the run waits for and until when. Waiting: a kept
 * signal (validated again: it was checked when sent) or the due time is recorded; otherwise
 * the run is scheduled to wake and this process lets it go (`{ interrupt: 'waiting' }`).
 */
async function waitPhase(
  env: DriverEnv,
  step: WaitStep | SleepStep,
  phase: string,
  snap: RunSnapshot,
  signal: AbortSignal,
): Promise<Outcome> {
  const ctx = snap.context;
  const runId = ctx.runId;
  const now = env.clock.now();
  if (phase === 'ready') {
    const kill = await killEvent(env, runId);
    if (kill !== null) return kill;
    const skip = user(step.name, () => skipEvent(step, snap));
    if (skip !== null) return skip;
    if (step.kind === 'wait')
      return {
        type: 'WAIT_STARTED',
        step: step.name,
        signal: step.signal,
        until: step.timeoutMs !== undefined ? now + step.timeoutMs : null,
        at: now,
      };
    const until =
      step.until !== undefined
        ? Number(user(step.name, () => step.until?.(stepContext(ctx, step.name))))
        : now + (step.forMs ?? 0);
    if (!Number.isFinite(until))
      return {
        type: 'STEP_FAILED',
        step: step.name,
        message: `sleep '${step.name}': until() returned ${String(until)}: return a time in epoch ms`,
      };
    return { type: 'SLEEP_STARTED', step: step.name, until, at: now };
  }
  const w = ctx.waiting;
  const until = w?.until ?? null;
  if (step.kind === 'wait') {
    let kept = await env.store.waits.getSignal(runId, step.signal);
    if (kept !== undefined && (await signalAlreadyTaken(env.store.log, kept))) {
      // Taken by an earlier wait of this run, whose process died before dropping it.
      env.logger.warn(
        {
          runId,
          step: step.name,
          signal: step.signal,
          decision: 'drop',
          reason: `the kept '${step.signal}' signal sent at ${new Date(kept.at).toISOString()} was already taken by this run`,
        },
        'kept signal already taken: dropped, waiting for a new one',
      );
      await env.store.waits.deleteSignal(runId, step.signal);
      kept = undefined;
    }
    if (kept !== undefined) {
      const parsed = step.schema.safeParse(kept.payload);
      if (parsed.success)
        return {
          type: 'SIGNAL',
          step: step.name,
          signal: step.signal,
          payload: parsed.data,
          by: kept.by,
          at: kept.at,
        };
      // Checked when sent; a payload the schema no longer takes is dropped, the run waits on.
      env.logger.warn(
        {
          runId,
          step: step.name,
          signal: step.signal,
          decision: 'refuse',
          reason: formatIssues(parsed.error),
        },
        'kept signal refused by the schema',
      );
      await env.store.waits.deleteSignal(runId, step.signal);
    }
    if (until !== null && now >= until) return { type: 'WAIT_TIMEOUT', step: step.name, at: now };
  } else {
    if (until === null || now >= until) return { type: 'WAKE', step: step.name, at: now };
    if (until - now <= IN_PROCESS_SLEEP_MS) {
      const stop = await waitUntil(env, runId, until, signal);
      if (stop !== null) return stop;
      return { type: 'WAKE', step: step.name, at: env.clock.now() };
    }
  }
  const kill = await killEvent(env, runId);
  if (kill !== null) return kill;
  await env.store.waits.setWaiting({
    runId,
    signal: step.kind === 'wait' ? step.signal : null,
    wakeAt: until,
    since: w?.since ?? now,
  });
  return { interrupt: 'waiting' };
}

function formatIssues(e: {
  issues: ReadonlyArray<{ path: PropertyKey[]; message: string }>;
}): string {
  return e.issues
    .map((i) => `${i.path.map(String).join('.') || '(root)'}: ${i.message}`)
    .join('; ');
}

/** A route: records the branch `choose` picks (a key not among the branches fails the step). */
async function routePhase(env: DriverEnv, step: RouteStep, snap: RunSnapshot): Promise<Outcome> {
  const kill = await killEvent(env, snap.context.runId);
  if (kill !== null) return kill;
  const skip = user(step.name, () => skipEvent(step, snap));
  if (skip !== null) return skip;
  const branch = user(step.name, () => step.choose(stepContext(snap.context, step.name)));
  const keys = Object.keys(step.branches);
  if (typeof branch !== 'string' || !keys.includes(branch))
    return {
      type: 'STEP_FAILED',
      step: step.name,
      message: `route '${step.name}' chose ${JSON.stringify(branch) ?? String(branch)}: not one of its branches (${keys.join(', ')}); return one of those keys from choose()`,
    };
  return { type: 'ROUTE', step: step.name, branch };
}

/**
 * A parallel, map or call step. Ready: make its children (none twice) and the spending pool its
 * caps give them, then record how many. Waiting: the next child outcome to record.
 */
async function childPhase(
  env: DriverEnv,
  step: ChildStep,
  phase: string,
  snap: RunSnapshot,
  signal: AbortSignal,
): Promise<Outcome> {
  const ctx = snap.context;
  if (phase === 'ready') {
    const kill = await killEvent(env, ctx.runId);
    if (kill !== null) return kill;
    const skip = user(step.name, () => skipEvent(step, snap));
    if (skip !== null) return skip;
    const specs = user(step.name, () => childSpecs(env.prepared, step, ctx));
    const limits = childLimits(ctx, step.name);
    const caps = remainingCaps(ctx);
    if (caps.budgetUsd !== null || caps.maxIterations !== null) {
      if (env.store.pools === undefined)
        throw new Error(`internal: store ${env.store.kind} has no spending pools for child runs`);
      await env.store.pools.open(poolOf(ctx.runId, step.name), caps);
    }
    for (let i = 0; i < specs.length; i += 32)
      await Promise.all(
        specs
          .slice(i, i + 32)
          .map((spec) =>
            env.children.create(
              spec,
              { runId: ctx.runId, step: step.name, part: spec.part },
              limits,
            ),
          ),
      );
    // The parent was started or resumed into this step: parked children are resumed once.
    env.groups.set(step.name, new ChildGroup(env.children, step, specs, true));
    return { type: 'CHILDREN_STARTED', step: step.name, count: specs.length };
  }
  let group = env.groups.get(step.name);
  if (group === undefined) {
    // Rebuilt while waiting (another process started the children): the same specs again.
    const specs = user(step.name, () => childSpecs(env.prepared, step, ctx));
    // The branches recorded before the rebuild (outputs[step] holds one entry per BRANCH_DONE).
    const recorded =
      step.kind === 'parallel'
        ? new Set(Object.keys((ctx.outputs[step.name] ?? {}) as Record<string, unknown>))
        : undefined;
    group = new ChildGroup(env.children, step, specs, false, recorded);
    env.groups.set(step.name, group);
  }
  const next = await group.next(signal, async () => {
    const k = await killEvent(env, ctx.runId);
    return k !== null && k.type === 'KILL' ? { reason: k.reason } : null;
  });
  if ('interrupt' in next) return next;
  if (next.type !== 'BRANCH_DONE') env.groups.delete(step.name);
  return next;
}

/** True when `o` is an interruption rather than an event. */
export function isInterrupt(o: Outcome): o is Interrupt {
  return 'interrupt' in o;
}
