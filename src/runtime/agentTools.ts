/**
 * An agent's tool calls, one per drive step, in the order the model asked: the input is checked
 * against the tool's schema (an invalid one goes back to the model as an error), a read-only
 * tool simply runs, and an effect tool runs under the effect ledger (key `tool:<tool_use id>`,
 * claimed under the run's lease): once its result is recorded it is reused, never run again.
 */
import type { z } from 'zod';
import { serializeError } from '../errors.js';
import type { AgentStep, ToolDef } from '../machines/agent.js';
import { conversationOf, unansweredCalls, type ToolCall } from '../machines/agentMachine.js';
import type { MachineEvent } from '../machines/events.js';
import type { RunSnapshot } from '../machines/fold.js';
import { DEFAULT_EFFECT_TIMEOUT_MS } from '../machines/pipeline.js';
import { formatIssue } from '../model/structured.js';
import { claimerToken, leaseClaimer } from '../store/leaseRules.js';
import type { AgentKit, AgentOutcome } from './agentRun.js';
import {
  DEFAULT_EFFECT_GRACE_MS,
  notJsonMarker,
  notJsonMessage,
  runGuarded,
  type Settled,
} from './effectRun.js';
import type { DriverEnv } from './env.js';
import { PLAIN_JSON_HINT, toPlainJson } from './plainJson.js';
import { stepContext } from './request.js';

type Result = Extract<MachineEvent, { type: 'TOOL_RESULT' }>;

/** Runs the next unanswered tool call of the agent's last turn and returns its TOOL_RESULT. */
export async function runTools(
  env: DriverEnv,
  step: AgentStep,
  snap: RunSnapshot,
  signal: AbortSignal,
  kit: AgentKit,
): Promise<AgentOutcome> {
  const ctx = snap.context;
  const call = unansweredCalls(conversationOf(ctx, step.name))[0];
  if (call === undefined)
    throw new Error(`internal: agent ${step.name} is running tools with none left to run`);
  const kill = await kit.killEvent(env, ctx.runId);
  if (kill !== null) return kill;
  const def = Object.hasOwn(step.tools, call.name) ? step.tools[call.name] : undefined;
  const base = {
    type: 'TOOL_RESULT' as const,
    step: step.name,
    toolUseId: call.id,
    name: call.name,
  };
  if (def === undefined)
    return {
      ...base,
      ok: false,
      error: `unknown tool '${call.name}': call one of ${Object.keys(step.tools).join(', ')}`,
      invalidInput: true,
      effect: false,
      replayed: false,
      durationMs: 0,
    };
  const parsed = (def.input as z.ZodType).safeParse(call.input);
  if (!parsed.success)
    return {
      ...base,
      ok: false,
      error: `invalid input for tool '${call.name}': ${parsed.error.issues.map(formatIssue).join('; ')}. Call it again with an input that matches its schema.`,
      invalidInput: true,
      effect: def.effect === true,
      replayed: false,
      durationMs: 0,
    };
  return def.effect === true
    ? runEffectTool(env, step, snap, signal, call, def, parsed.data)
    : runTool(env, step, snap, signal, call, def, parsed.data, null);
}

/** Claims an effect tool's call in the ledger; runs it unless its result is already recorded. */
async function runEffectTool(
  env: DriverEnv,
  step: AgentStep,
  snap: RunSnapshot,
  signal: AbortSignal,
  call: ToolCall,
  def: ToolDef,
  input: unknown,
): Promise<AgentOutcome> {
  const runId = snap.context.runId;
  const key = `tool:${call.id}`;
  const claimer = leaseClaimer(env.lease);
  const claim = await env.store.ledger.claim(runId, step.name, key, env.clock.now(), claimer);
  if (claim.status === 'unrecorded' && claimerToken(claim.claimer) > env.lease.token)
    return { interrupt: 'fenced' };
  if (claim.status === 'unrecorded' && claim.claimer !== claimer)
    env.logger.warn(
      {
        runId,
        step: step.name,
        key,
        decision: 'rerun',
        reason: `claimed by ${claim.claimer ?? 'a driver from before leases'} who stopped before recording it`,
      },
      'effect tool claimed but never recorded: running it again',
    );
  if (claim.status === 'done') {
    const notJson = notJsonMessage(claim.result);
    if (notJson !== null) return { type: 'STEP_FAILED', step: step.name, message: notJson };
    return {
      type: 'TOOL_RESULT',
      step: step.name,
      toolUseId: call.id,
      name: call.name,
      ok: true,
      result: claim.result ?? null,
      invalidInput: false,
      effect: true,
      replayed: true,
      durationMs: 0,
    };
  }
  if (signal.aborted) return { interrupt: 'aborted' };
  env.hooks?.afterEffectClaimed?.(runId, step.name, key);
  return runTool(env, step, snap, signal, call, def, input, key);
}

/** Runs one call under its timeout, the kill flag and the drive's signal; `key` for an effect. */
async function runTool(
  env: DriverEnv,
  step: AgentStep,
  snap: RunSnapshot,
  signal: AbortSignal,
  call: ToolCall,
  def: ToolDef,
  input: unknown,
  key: string | null,
): Promise<AgentOutcome> {
  const ctx = snap.context;
  const started = env.clock.now();
  const timeoutMs =
    def.timeoutMs ?? env.prepared.pipeline.effectTimeoutMs ?? DEFAULT_EFFECT_TIMEOUT_MS;
  const graceMs = env.effectGraceMs ?? DEFAULT_EFFECT_GRACE_MS;
  const ran = await runGuarded(
    (s) =>
      def.run(input, {
        ...stepContext(ctx, step.name),
        key: key ?? `tool:${call.id}`,
        signal: s,
        toolUseId: call.id,
      }),
    { runId: ctx.runId, timeoutMs, graceMs, signal, kills: env.kills },
  );
  const done = (settled: Settled) => settle(env, step, snap, call, key, settled, started);
  if (ran.end === 'settled') return done(ran.settled);
  const { why, late } = ran;
  if (why.kind === 'timeout')
    return late !== null
      ? done(late)
      : failed(
          step,
          call,
          key,
          `tool '${call.name}' timed out after ${timeoutMs} ms and ignored its aborted signal`,
          started,
          env,
        );
  // Killed or stopped: a result that came within the grace happened, so an effect's is recorded.
  if (late?.ok === true && key !== null) await done(late);
  return why.kind === 'killed' ? { type: 'KILL', reason: why.reason } : { interrupt: 'aborted' };
}

/** The TOOL_RESULT of a settled call; an effect's result is recorded in the ledger first. */
async function settle(
  env: DriverEnv,
  step: AgentStep,
  snap: RunSnapshot,
  call: ToolCall,
  key: string | null,
  settled: Settled,
  started: number,
): Promise<MachineEvent> {
  const runId = snap.context.runId;
  if (!settled.ok)
    return failed(
      step,
      call,
      key,
      `tool '${call.name}' failed: ${serializeError(settled.error).message}`,
      started,
      env,
    );
  const json = toPlainJson(settled.value, 'result');
  if (key !== null) env.hooks?.afterEffectRan?.(runId, step.name, key);
  if (!json.ok) {
    const message = `tool '${call.name}' of agent '${step.name}' returned ${json.found} at ${json.path}: ${PLAIN_JSON_HINT}`;
    if (key !== null)
      await env.store.ledger.record(runId, step.name, key, notJsonMarker(message), env.clock.now());
    return { type: 'STEP_FAILED', step: step.name, message };
  }
  if (key !== null)
    await env.store.ledger.record(runId, step.name, key, json.value, env.clock.now());
  return {
    type: 'TOOL_RESULT',
    step: step.name,
    toolUseId: call.id,
    name: call.name,
    ok: true,
    result: json.value,
    invalidInput: false,
    effect: key !== null,
    replayed: false,
    durationMs: env.clock.now() - started,
  };
}

/** A call that threw or timed out: the error goes back to the model, which may try again. */
function failed(
  step: AgentStep,
  call: ToolCall,
  key: string | null,
  error: string,
  started: number,
  env: DriverEnv,
): Result {
  return {
    type: 'TOOL_RESULT',
    step: step.name,
    toolUseId: call.id,
    name: call.name,
    ok: false,
    error,
    invalidInput: false,
    effect: key !== null,
    replayed: false,
    durationMs: env.clock.now() - started,
  };
}
