/**
 * The run machine's context and input: plain JSON, so a snapshot persists and folds exactly.
 */
import type { ParkReason } from './events.js';
import type { AgentConversation } from './agentMachine.js';

/** Limits in force for a run (absolute deadline, not a duration, so replays agree). */
export interface RunLimits {
  budgetUsd: number | null;
  maxIterations: number | null;
  deadlineAt: number | null;
  /**
   * Cap on input tokens (prompt, cache reads and writes included) over the run. Absent in logs
   * written before token caps existed: read as none.
   */
  maxInputTokens?: number | null | undefined;
  /** Cap on output tokens over the run (absent: none). */
  maxOutputTokens?: number | null | undefined;
  /** A child run's ancestors' spending pools (absent: not a child, or no caps above it). */
  pools?: string[] | undefined;
}

/** Counters of one step. */
export interface StepAttempts {
  /** Model calls made (all attempts). */
  calls: number;
  /** Transport failures (retryable or not). */
  transport: number;
  /** Answers that failed validation. */
  validation: number;
  /** Effect or transform failures. */
  failures: number;
}

/**
 * Where an llm step with fallback models stands (see fallback.ts): the lowest model it may still
 * use, the one its last attempt used, and the transport failures of each model (by index).
 */
export interface FallbackState {
  /** Index of the first model not yet given up on (by an overload or exhausted retries). */
  floor: number;
  /** Index of the model the last ATTEMPT used. */
  used: number;
  /** Transport failures recorded per model index. */
  failures: number[];
}

/** The machine's input. */
export interface RunInput {
  runId: string;
  input: unknown;
  limits: RunLimits;
  startedAt: number;
  /** Outputs the run starts with (a parallel branch sees its parent's). */
  outputs?: Record<string, unknown> | undefined;
}

/** The attempt being judged by the limits guard (the ATTEMPT event's payload). */
export interface PendingAttempt {
  step: string;
  attempt: number;
  at: number;
  estimateUsd: number;
  /** The call's input bound (tokens; absent in snapshots taken before token caps existed). */
  inputTokens?: number;
  /** The call's `max_tokens`: its output bound. */
  maxTokens?: number;
  breaker: 'closed' | 'open' | 'half_open';
  /** An ancestor's pool refused the call (a child run): park as over that cap. */
  pool?:
    | { key: string; refused?: 'budget' | 'iterations' | undefined; detail?: string | undefined }
    | undefined;
}

/** The run machine's context. */
export interface RunContext {
  runId: string;
  input: unknown;
  startedAt: number;
  limits: RunLimits;
  /** The step being run (or the last one, in a terminal state). */
  step: string | null;
  outputs: Record<string, unknown>;
  skipped: Record<string, string>;
  attempts: Record<string, StepAttempts>;
  /** Model calls in this run, all attempts. */
  iterations: number;
  costUsd: number;
  stepCostUsd: Record<string, number>;
  /** Worst-case cost reserved for the call in flight. */
  reservedUsd: number;
  /** Input tokens used by recorded calls (lost calls at their reservation); absent: 0. */
  inputTokens?: number;
  /** Output tokens used by recorded calls (lost calls at their reservation); absent: 0. */
  outputTokens?: number;
  /** Input and output tokens reserved for the call in flight; absent: 0. */
  reservedTokens?: { input: number; output: number };
  pending: PendingAttempt | null;
  /** The last outcome, read by the validate / retry guard states. */
  last: {
    verdict?: string;
    retryable?: boolean;
    kind?: string;
    message?: string;
    status?: number | null;
  } | null;
  /** Validation errors fed back to the model on a re-ask. */
  feedback: string[] | null;
  /** A larger max_tokens for the re-ask after an answer was cut off. */
  maxTokensOverride: number | null;
  /** Absolute time the backoff ends (epoch ms). */
  waitUntil: number | null;
  parked: { step: string; reason: ParkReason; detail: string } | null;
  error: { step: string | null; kind: string; message: string; status: number | null } | null;
  killed: { reason: string } | null;
  /** What the run waits for (a signal or a time), while a wait or sleep step holds it. */
  waiting?: { step: string; signal: string | null; until: number | null; since: number } | null;
  /**
   * The Message Batch item the current attempt of a batch step waits on (the last
   * BATCH_SUBMITTED; absent: no batch step has submitted yet).
   */
  batch?: {
    step: string;
    attempt: number;
    batchId: string;
    customId: string;
    /** Items in the batch (absent: unknown). */
    items?: number;
    at: number;
  } | null;
  /** Each agent step's conversation (absent: no agent turn yet). */
  agent?: Record<string, AgentConversation>;
  /** Child runs made by each parallel, map or call step (absent: none yet). */
  children?: Record<string, number>;
  /**
   * What each parallel branch's child added to `costUsd` and `iterations` (by `step/branch`), so
   * a branch reported again after a resume replaces its share instead of adding it twice.
   */
  childShare?: Record<string, { usd: number; iterations: number }>;
  /** Each fallback llm step's model choice (absent: no step with a model list has run). */
  fallback?: Record<string, FallbackState>;
}

/** The initial context for a run. */
export function initialContext(input: RunInput): RunContext {
  return {
    runId: input.runId,
    input: input.input,
    startedAt: input.startedAt,
    limits: input.limits,
    step: null,
    outputs: input.outputs ?? {},
    skipped: {},
    attempts: {},
    iterations: 0,
    costUsd: 0,
    stepCostUsd: {},
    reservedUsd: 0,
    inputTokens: 0,
    outputTokens: 0,
    reservedTokens: { input: 0, output: 0 },
    pending: null,
    last: null,
    feedback: null,
    maxTokensOverride: null,
    waitUntil: null,
    parked: null,
    error: null,
    killed: null,
  };
}

/** Counters of `step` in `ctx` (zeros when the step has not run yet). */
export function attemptsOf(ctx: RunContext, step: string): StepAttempts {
  return ctx.attempts[step] ?? { calls: 0, transport: 0, validation: 0, failures: 0 };
}

/** Rounds a dollar amount to 1e-9 so sums of float costs stay stable across folds. */
export function roundUsd(x: number): number {
  return Math.round(x * 1e9) / 1e9;
}
