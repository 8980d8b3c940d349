/**
 * The run event schema: every event a run's machine receives, as stored in the log.
 * Pure: zod only. Versioned with `v: 1` on every envelope; validated on write and on read.
 */
import { z } from 'zod';
import { RUN_STATUSES } from './runStatus.js';

/** Token usage of one model attempt, as the Messages API reports it (fields do not overlap). */
export const Usage = z.object({
  inputTokens: z.number().int().nonnegative(),
  outputTokens: z.number().int().nonnegative(),
  cacheReadTokens: z.number().int().nonnegative().default(0),
  cacheWrite5mTokens: z.number().int().nonnegative().default(0),
  cacheWrite1hTokens: z.number().int().nonnegative().default(0),
});
export type Usage = z.infer<typeof Usage>;

/** Why a run parked: a limit or the breaker stopped it; it can be resumed. */
export const ParkReason = z.enum(['budget', 'iterations', 'deadline', 'breaker']);
export type ParkReason = z.infer<typeof ParkReason>;

/** Breaker state seen by the run when it asked to call a model. */
export const BreakerView = z.enum(['closed', 'open', 'half_open']);
export type BreakerView = z.infer<typeof BreakerView>;

/** Where a child run belongs: its parent run, the step, and the item index or branch key. */
export const ChildOf = z.object({
  runId: z.string(),
  step: z.string(),
  /** The item's index (map), the branch key (parallel), or null (call). */
  part: z.union([z.number().int().nonnegative(), z.string()]).nullable(),
});
export type ChildOf = z.infer<typeof ChildOf>;

/** The first event of every run: what ran, with which definition, input and limits. */
export const RunStarted = z.object({
  type: z.literal('run.started'),
  pipeline: z.string(),
  version: z.string(),
  machineHash: z.string(),
  /** The machine's graph (states and transitions), so a run can be drawn without its code. */
  definition: z.unknown(),
  /** Where the pipeline module was loaded from, so `resume` in a fresh process can find it. */
  module: z.string().nullable(),
  input: z.unknown(),
  limits: z.object({
    budgetUsd: z.number().nonnegative().nullable(),
    maxIterations: z.number().int().positive().nullable(),
    deadlineAt: z.number().nullable(),
    /** Token caps (absent in logs written before they existed: none). */
    maxInputTokens: z.number().int().positive().nullable().optional(),
    maxOutputTokens: z.number().int().positive().nullable().optional(),
    /**
     * The spending pools of the ancestors whose caps cover this child run (see `pools` in the
     * store): each call reserves in all of them first. Absent for a run without a parent.
     */
    pools: z.array(z.string()).optional(),
  }),
  /** When set, the run was forked from another run's log. */
  forkedFrom: z.object({ runId: z.string(), seq: z.number().int() }).nullable().default(null),
  /** When set, the run is a child (a parallel branch, a map item, a call) of another run. */
  parent: ChildOf.optional(),
  /** Outputs the run starts with (a parallel branch sees its parent's outputs). */
  outputs: z.record(z.string(), z.unknown()).optional(),
});
export type RunStarted = z.infer<typeof RunStarted>;

const stepRef = { step: z.string() };

/** A block of an agent's turn as recorded: its text, or a tool call it asked for. */
export const AgentBlock = z.discriminatedUnion('type', [
  z.object({ type: z.literal('text'), text: z.string() }),
  z.object({ type: z.literal('tool_use'), id: z.string(), name: z.string(), input: z.unknown() }),
]);
export type AgentBlock = z.infer<typeof AgentBlock>;

/** Machine events, as `{ type, ...payload }`. */
export const MachineEvent = z.discriminatedUnion('type', [
  /** Skip the current step (decided by the step's `skip` function, with its reason). */
  z.object({ type: z.literal('SKIP'), ...stepRef, reason: z.string() }),
  /** Ask to call the model: the request estimate and the breaker's view, judged by the limits guard. */
  z.object({
    type: z.literal('ATTEMPT'),
    ...stepRef,
    attempt: z.number().int().positive(),
    at: z.number(),
    estimate: z.object({
      inputTokens: z.number().int().nonnegative(),
      maxTokens: z.number().int().positive(),
      usd: z.number().nonnegative(),
    }),
    breaker: BreakerView,
    model: z.string(),
    /**
     * A child run's reservation in its ancestors' spending pools (`key`), or their refusal (its
     * budget or its call cap: the run parks like one over its own cap). Absent: no pool.
     */
    pool: z
      .object({
        key: z.string(),
        refused: z.enum(['budget', 'iterations']).optional(),
        detail: z.string().optional(),
      })
      .optional(),
  }),
  /** A model answered (HTTP 200); `verdict` says whether its output passed the schema. */
  z.object({
    type: z.literal('MODEL_RESPONSE'),
    ...stepRef,
    attempt: z.number().int().positive(),
    requestId: z.string().nullable(),
    model: z.string(),
    stopReason: z.string().nullable(),
    usage: Usage,
    costUsd: z.number().nonnegative(),
    verdict: z.enum(['valid', 'invalid', 'refusal', 'max_tokens']),
    output: z.unknown().optional(),
    issues: z.array(z.string()).default([]),
    text: z.string().nullable().default(null),
    durationMs: z.number().nonnegative().default(0),
  }),
  /** A model call failed; classified retryable or fatal, with the delay chosen and its deadline. */
  z.object({
    type: z.literal('MODEL_ERROR'),
    ...stepRef,
    attempt: z.number().int().positive(),
    requestId: z.string().nullable(),
    model: z.string(),
    status: z.number().int().nullable(),
    kind: z.string(),
    retryable: z.boolean(),
    message: z.string(),
    delayMs: z.number().nonnegative(),
    retryAt: z.number(),
    usage: Usage.nullable().default(null),
    costUsd: z.number().nonnegative().default(0),
    durationMs: z.number().nonnegative().default(0),
    /**
     * The outcome is unknown (`kind: 'lost'`: the process died mid-call): `costUsd` is the
     * attempt's reservation, not a billed amount.
     */
    unconfirmed: z.boolean().optional(),
  }),
  /**
   * A batch step's request went into a Message Batch (`batchId`, as item `customId`): recorded
   * as soon as the submit returned, so a resumed run polls that batch and never submits again.
   */
  z.object({
    type: z.literal('BATCH_SUBMITTED'),
    ...stepRef,
    attempt: z.number().int().positive(),
    batchId: z.string(),
    customId: z.string(),
    /** How many items the batch holds (this run's and others'): a kill cancels a batch of one. */
    items: z.number().int().positive().optional(),
    at: z.number(),
  }),
  /** The backoff deadline passed: call again. */
  z.object({ type: z.literal('TIMER'), ...stepRef, at: z.number() }),
  /** An effect is about to run with this idempotency key (recorded before it runs). */
  z.object({
    type: z.literal('EFFECT_STARTED'),
    ...stepRef,
    key: z.string(),
    attempt: z.number().int().positive(),
  }),
  /** An effect finished (or its ledger entry already held a result: `replayed`). */
  z.object({
    type: z.literal('EFFECT_DONE'),
    ...stepRef,
    key: z.string(),
    result: z.unknown(),
    replayed: z.boolean(),
    durationMs: z.number().nonnegative().default(0),
  }),
  /** An effect threw. */
  z.object({
    type: z.literal('EFFECT_FAILED'),
    ...stepRef,
    key: z.string(),
    message: z.string(),
    retryable: z.boolean(),
    delayMs: z.number().nonnegative(),
    retryAt: z.number(),
  }),
  /** A transform step returned its output. */
  z.object({ type: z.literal('STEP_DONE'), ...stepRef, output: z.unknown() }),
  /** A transform step threw. */
  z.object({ type: z.literal('STEP_FAILED'), ...stepRef, message: z.string() }),
  /** A route took this branch (its choice, recorded). */
  z.object({ type: z.literal('ROUTE'), ...stepRef, branch: z.string() }),
  /** A parallel, map or call step made its child runs (ids derived from the run id). */
  z.object({
    type: z.literal('CHILDREN_STARTED'),
    ...stepRef,
    count: z.number().int().nonnegative(),
  }),
  /** One parallel branch's child run ended. Its cost and calls roll up into this run. */
  z.object({
    type: z.literal('BRANCH_DONE'),
    ...stepRef,
    branch: z.string(),
    ok: z.boolean(),
    result: z.unknown().optional(),
    error: z.string().optional(),
    costUsd: z.number().nonnegative(),
    iterations: z.number().int().nonnegative(),
  }),
  /** Every child of a map or call step ended: results in input order, cost and calls rolled up. */
  z.object({
    type: z.literal('CHILDREN_DONE'),
    ...stepRef,
    /** A result per child (`Collected` outcomes when errors are collected). */
    results: z.array(z.unknown()),
    /** The failed children (index and message); the step fails on any unless collecting. */
    errors: z.array(z.object({ index: z.number().int(), message: z.string() })),
    failed: z.boolean(),
    costUsd: z.number().nonnegative(),
    iterations: z.number().int().nonnegative(),
  }),
  /** A child parked (a limit of this run's covered it) and none is still running: park too. */
  z.object({
    type: z.literal('CHILDREN_PARKED'),
    ...stepRef,
    reason: ParkReason,
    detail: z.string(),
    child: z.string(),
  }),
  /** A wait step began waiting for a signal (until its timeout, or forever). */
  z.object({
    type: z.literal('WAIT_STARTED'),
    ...stepRef,
    signal: z.string(),
    until: z.number().nullable(),
    at: z.number(),
  }),
  /** The awaited signal arrived: its payload (validated) is the step's output. */
  z.object({
    type: z.literal('SIGNAL'),
    ...stepRef,
    signal: z.string(),
    payload: z.unknown(),
    by: z.string().nullable(),
    /** When it was sent (it may have been kept since before the run reached the wait). */
    at: z.number(),
  }),
  /** The wait's timeout passed before its signal. */
  z.object({ type: z.literal('WAIT_TIMEOUT'), ...stepRef, at: z.number() }),
  /** A sleep step began: it wakes at `until` (epoch ms). */
  z.object({
    type: z.literal('SLEEP_STARTED'),
    ...stepRef,
    until: z.number(),
    at: z.number(),
  }),
  /** The sleep's time came. */
  z.object({ type: z.literal('WAKE'), ...stepRef, at: z.number() }),
  // Agent steps (agent.ts): a turn's answer, then each tool call's outcome.
  /** An agent's turn answered: tool calls to make (`tool_use`), or its final answer, judged. */
  z.object({
    type: z.literal('AGENT_TURN'),
    ...stepRef,
    attempt: z.number().int().positive(),
    /** The turn's number in the step (1-based). */
    turn: z.number().int().positive(),
    requestId: z.string().nullable(),
    model: z.string(),
    stopReason: z.string().nullable(),
    usage: Usage,
    costUsd: z.number().nonnegative(),
    verdict: z.enum(['tool_use', 'valid', 'invalid', 'refusal', 'max_tokens']),
    /** The answer's text and tool calls: the conversation goes on from them. */
    content: z.array(AgentBlock),
    output: z.unknown().optional(),
    issues: z.array(z.string()).default([]),
    durationMs: z.number().nonnegative().default(0),
  }),
  /** One tool call's outcome: its result, or an error (its input refused, the tool threw). */
  z.object({
    type: z.literal('TOOL_RESULT'),
    ...stepRef,
    toolUseId: z.string(),
    name: z.string(),
    ok: z.boolean(),
    result: z.unknown().optional(),
    error: z.string().optional(),
    /** The input did not match the tool's schema (the tool did not run). */
    invalidInput: z.boolean().default(false),
    /** An effect tool (run under the effect ledger). */
    effect: z.boolean().default(false),
    /** The ledger already held its result: reused, not run again. */
    replayed: z.boolean().default(false),
    durationMs: z.number().nonnegative().default(0),
  }),
  /** Manual kill: the run stops for good. */
  z.object({ type: z.literal('KILL'), reason: z.string() }),
  /** Resume a parked run, optionally with raised limits. */
  z.object({
    type: z.literal('RESUME'),
    budgetUsd: z.number().nonnegative().nullable().default(null),
    maxIterations: z.number().int().positive().nullable().default(null),
    deadlineAt: z.number().nullable().default(null),
    maxInputTokens: z.number().int().positive().nullable().optional(),
    maxOutputTokens: z.number().int().positive().nullable().optional(),
  }),
]);
export type MachineEvent = z.infer<typeof MachineEvent>;
export type MachineEventType = MachineEvent['type'];

/** Any event in a run's log: the start record, or an event the machine received. */
export const RunEvent = z.union([RunStarted, MachineEvent]);
export type RunEvent = z.infer<typeof RunEvent>;

/** Run status, derived from the machine state after an event. */
/** `waiting`: a wait or sleep step holds no process until its signal or time comes. */
export const RunStatus = z.enum(RUN_STATUSES);
export type RunStatus = z.infer<typeof RunStatus>;

/** What the run looked like after the event: recorded so a replay can check itself. */
export const StateSummary = z.object({
  value: z.unknown(),
  status: RunStatus,
  step: z.string().nullable(),
  costUsd: z.number().nonnegative(),
});
export type StateSummary = z.infer<typeof StateSummary>;

/** An event as appended: the event, when, and the state the machine moved to. */
export const NewEnvelope = z.object({
  v: z.literal(1),
  at: z.number(),
  event: RunEvent,
  state: StateSummary,
  /**
   * The hash of the envelope before this one (`GENESIS` for seq 1), see `chain.ts`, so an
   * edited or forged event is found by seq. Absent on logs written before the chain existed.
   */
  prev: z.string().optional(),
});
export type NewEnvelope = z.infer<typeof NewEnvelope>;

/** An event as stored: with its run and its 1-based sequence number in that run. */
export const StoredEnvelope = NewEnvelope.extend({
  runId: z.string(),
  seq: z.number().int().positive(),
});
export type StoredEnvelope = z.infer<typeof StoredEnvelope>;

/** Event types that are not machine events (never sent to the machine). */
export function isRunStarted(e: RunEvent): e is RunStarted {
  return e.type === 'run.started';
}
