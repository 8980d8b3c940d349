/**
 * The driver's side of an agent step: ask for a turn (ATTEMPT, judged by the limits), make the
 * call with the conversation so far and the tools (AGENT_TURN or MODEL_ERROR), run the tool
 * calls the turn asked for (agentTools.ts), and wait out backoffs. A resumed agent builds its
 * request from the conversation the log recorded: a turn whose answer was recorded is never
 * asked again.
 */
import { agentPrice, type AgentStep } from '../machines/agent.js';
import { conversationOf } from '../machines/agentMachine.js';
import { attemptsOf, type RunContext } from '../machines/context.js';
import type { AgentBlock, MachineEvent } from '../machines/events.js';
import type { RunSnapshot } from '../machines/fold.js';
import type { Pipeline, Step } from '../machines/pipeline.js';
import { costUsd, overrunUsd, worstCaseUsd } from '../model/cost.js';
import { reserveInputTokens } from '../model/reserve.js';
import { resolveRetryPolicy, retryDelayMs } from '../model/retry.js';
import { judgeOutput, toJsonSchema } from '../model/structured.js';
import type { ModelOutcome, ModelRequest, ModelTool, Price } from '../model/types.js';
import { runTools } from './agentTools.js';
import type { DriverEnv } from './env.js';
import { attemptEvent, modelErrorEvent } from './modelEvents.js';
import type { RateTicket } from './rateGate.js';
import type { Interrupt } from './execute.js';
import { settlePools } from './pools.js';
import { stepContext } from './request.js';

/** An event to record, or why the driver stopped. */
export type AgentOutcome = MachineEvent | Interrupt;

/** The helpers of execute.ts an agent step shares (passed in: execute.ts imports this module). */
export interface AgentKit {
  killEvent(env: DriverEnv, runId: string): Promise<MachineEvent | null>;
  skipEvent(step: Step, snap: RunSnapshot): MachineEvent | null;
  user<T>(step: string, f: () => T): T;
  backoff(
    env: DriverEnv,
    step: Step,
    snap: RunSnapshot,
    signal: AbortSignal,
  ): Promise<AgentOutcome>;
  /** Waits for room under the shared rate limits (null: not paced), or the KILL/stop that came first. */
  awaitRoom(
    env: DriverEnv,
    model: string,
    runId: string,
    inputTokens: number,
    outputTokens: number,
    signal: AbortSignal,
  ): Promise<RateTicket | AgentOutcome | null>;
}

const schemas = new WeakMap<object, Record<string, unknown>>();
const prices = new WeakMap<AgentStep, Price>();

function schemaOf(s: object & Parameters<typeof toJsonSchema>[0]): Record<string, unknown> {
  let json = schemas.get(s);
  if (json === undefined) {
    json = toJsonSchema(s);
    schemas.set(s, json);
  }
  return json;
}

function priceOf(step: AgentStep, pipeline: Pipeline): Price {
  let p = prices.get(step);
  if (p === undefined) {
    p = agentPrice(step, pipeline.prices);
    prices.set(step, p);
  }
  return p;
}

/** The request of the agent's next turn: the prompt, then the conversation the log recorded. */
export function agentRequest(step: AgentStep, ctx: RunContext, pipeline: Pipeline): ModelRequest {
  const sc = stepContext(ctx, step.name);
  const system = typeof step.system === 'function' ? step.system(sc) : step.system;
  const tools: ModelTool[] = Object.entries(step.tools).map(([name, t]) => ({
    name,
    description: t.description,
    inputSchema: schemaOf(t.input),
  }));
  const cache = step.cache ?? pipeline.cache;
  return {
    model: step.model,
    ...(system !== undefined ? { system } : {}),
    messages: [
      { role: 'user', content: step.prompt(sc) },
      ...conversationOf(ctx, step.name).messages,
    ],
    maxTokens: step.maxTokens ?? 1024,
    ...(step.temperature !== undefined ? { temperature: step.temperature } : {}),
    schema: schemaOf(step.output),
    schemaName: step.name,
    mode: 'native',
    ...(step.timeoutMs !== undefined ? { timeoutMs: step.timeoutMs } : {}),
    ...(cache !== undefined ? { cache } : {}),
    tools,
  };
}

/** Performs the I/O that `phase` of agent `step` calls for and returns the event to record. */
export async function agentPhase(
  env: DriverEnv,
  step: AgentStep,
  phase: string,
  snap: RunSnapshot,
  signal: AbortSignal,
  kit: AgentKit,
): Promise<AgentOutcome> {
  if (phase === 'ready') return askTurn(env, step, snap, signal, kit);
  if (phase === 'calling') return callTurn(env, step, snap, signal, kit);
  if (phase === 'tools') return runTools(env, step, snap, signal, kit);
  return kit.backoff(env, step, snap, signal);
}

async function askTurn(
  env: DriverEnv,
  step: AgentStep,
  snap: RunSnapshot,
  signal: AbortSignal,
  kit: AgentKit,
): Promise<AgentOutcome> {
  const ctx = snap.context;
  const kill = await kit.killEvent(env, ctx.runId);
  if (kill !== null) return kill;
  // Skipping is decided before the first turn only: a started conversation goes on.
  if (conversationOf(ctx, step.name).turns === 0) {
    const skip = kit.user(step.name, () => kit.skipEvent(step, snap));
    if (skip !== null) return skip;
  }
  const request = kit.user(step.name, () => agentRequest(step, ctx, env.prepared.pipeline));
  const attempt = attemptsOf(ctx, step.name).calls + 1;
  const inputTokens = await reserveInputTokens(env.model, request, signal);
  const usd = worstCaseUsd(request, priceOf(step, env.prepared.pipeline), inputTokens);
  // Room under the rate limits before the ATTEMPT is recorded (as llm steps do).
  const rate = await kit.awaitRoom(
    env,
    step.model,
    ctx.runId,
    inputTokens,
    request.maxTokens,
    signal,
  );
  if (rate !== null && !('sentAt' in rate)) return rate;
  return attemptEvent(env, ctx, {
    step: step.name,
    attempt,
    model: step.model,
    request,
    inputTokens,
    usd,
    rate,
    breaker: async () =>
      env.breakers !== undefined ? env.breakers.acquire(step.model, env.clock.now()) : 'closed',
  });
}

async function callTurn(
  env: DriverEnv,
  step: AgentStep,
  snap: RunSnapshot,
  signal: AbortSignal,
  kit: AgentKit,
): Promise<AgentOutcome> {
  const ctx = snap.context;
  const attempt = attemptsOf(ctx, step.name).calls;
  const held = env.request;
  env.request = null;
  const same = held !== null && held.step === step.name && held.attempt === attempt;
  const request = same
    ? held.request
    : kit.user(step.name, () => agentRequest(step, ctx, env.prepared.pipeline));
  const rate = same ? (held.rate ?? null) : null;
  const killer = new AbortController();
  let killedBy: string | null = null;
  const unwatch = env.kills.watch(ctx.runId, (f) => {
    killedBy = f.reason;
    killer.abort();
  });
  let outcome: ModelOutcome;
  try {
    outcome = await env.model().call(request, AbortSignal.any([signal, killer.signal]));
  } finally {
    unwatch();
  }
  if (rate !== null && env.rates !== undefined)
    await env.rates.after(
      rate,
      killedBy !== null || signal.aborted ? null : outcome,
      env.clock.now(),
    );
  const price = priceOf(step, env.prepared.pipeline);
  if (killedBy !== null) {
    await settlePools(env.store, ctx, ctx.reservedUsd);
    return { type: 'KILL', reason: killedBy };
  }
  if (signal.aborted) return { interrupt: 'aborted' };
  await settlePools(env.store, ctx, outcome.usage !== null ? costUsd(outcome.usage, price) : 0);
  if (outcome.ok) return turnEvent(env, step, ctx, attempt, outcome, price);
  const err = outcome.error;
  await env.breakers?.record(step.model, false, err.kind, env.clock.now());
  const failures = attemptsOf(ctx, step.name).transport + 1;
  const policy = resolveRetryPolicy({ ...env.prepared.pipeline.retry, ...step.retry });
  const delayMs = err.retryable ? retryDelayMs(err, failures, policy, env.random) : 0;
  return modelErrorEvent(env, step.name, attempt, step.model, outcome, price, delayMs);
}

/** The AGENT_TURN recording an answer: the tool calls it asks for, or its final answer judged. */
async function turnEvent(
  env: DriverEnv,
  step: AgentStep,
  ctx: RunContext,
  attempt: number,
  outcome: Extract<ModelOutcome, { ok: true }>,
  price: Price,
): Promise<MachineEvent> {
  await env.breakers?.record(step.model, true, 'ok', env.clock.now());
  const usd = costUsd(outcome.usage, price);
  const over = overrunUsd(ctx.reservedUsd, usd);
  if (over > 0)
    env.logger.warn(
      {
        runId: ctx.runId,
        step: step.name,
        reservedUsd: ctx.reservedUsd,
        actualUsd: usd,
        overUsd: over,
      },
      'model call cost more than it reserved',
    );
  const content: AgentBlock[] =
    outcome.content?.filter((b): b is AgentBlock => b.type !== 'tool_result') ??
    (outcome.text !== null && outcome.text !== '' ? [{ type: 'text', text: outcome.text }] : []);
  const calls = content.filter((b) => b.type === 'tool_use');
  const judged =
    outcome.stopReason === 'tool_use' && calls.length > 0
      ? { verdict: 'tool_use' as const, issues: [] as string[], output: undefined }
      : judgeOutput({ text: outcome.text, stopReason: outcome.stopReason }, step.output);
  return {
    type: 'AGENT_TURN',
    step: step.name,
    attempt,
    turn: conversationOf(ctx, step.name).turns + 1,
    requestId: outcome.requestId,
    model: outcome.model,
    stopReason: outcome.stopReason,
    usage: outcome.usage,
    costUsd: usd,
    verdict: judged.verdict,
    content,
    ...(judged.verdict === 'valid' ? { output: judged.output } : {}),
    issues: judged.issues,
    durationMs: outcome.durationMs,
  };
}
