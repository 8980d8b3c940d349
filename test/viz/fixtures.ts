/**
 * A real compiled pipeline and logs folded through it with XState's `transition()`, for the
 * visualizer's unit tests: each envelope records the state the machine actually reached.
 */
import { z } from 'zod';
import { compilePipeline, type RunMachine } from '../../src/machines/compile.js';
import type { MachineEvent, StoredEnvelope } from '../../src/machines/events.js';
import { initialSnapshot, step, summarize } from '../../src/machines/fold.js';
import { describeMachine, machineHash, type MachineGraph } from '../../src/machines/graph.js';
import { definePipeline, effect, llm, step as transform } from '../../src/machines/pipeline.js';

/** classify (llm) → notify (effect) → route (transform). */
export const pipeline = definePipeline({
  name: 'tiny',
  version: '1',
  input: z.object({ text: z.string() }),
  limits: { maxIterations: 10 },
  steps: [
    llm({
      name: 'classify',
      model: 'claude-sonnet-4-6',
      prompt: (c) => String(c.input),
      output: z.object({ label: z.string() }),
    }),
    effect({ name: 'notify', key: () => 'k', run: () => ({ ok: true }) }),
    transform({ name: 'route', run: () => 'done' }),
  ],
});

export const machine: RunMachine = compilePipeline(pipeline);
export const graph: MachineGraph = describeMachine(machine);

const usage = {
  inputTokens: 10,
  outputTokens: 5,
  cacheReadTokens: 0,
  cacheWrite5mTokens: 0,
  cacheWrite1hTokens: 0,
};

/** Event builders with valid payloads. */
export const ev = {
  attempt: (s: string, attempt = 1, breaker: 'closed' | 'open' = 'closed'): MachineEvent => ({
    type: 'ATTEMPT',
    step: s,
    attempt,
    at: 1_000 + attempt,
    estimate: { inputTokens: 10, maxTokens: 100, usd: 0.001 },
    breaker,
    model: 'claude-sonnet-4-6',
  }),
  response: (s: string, attempt = 1, verdict: 'valid' | 'invalid' = 'valid'): MachineEvent => ({
    type: 'MODEL_RESPONSE',
    step: s,
    attempt,
    requestId: `req_${attempt}`,
    model: 'claude-sonnet-4-6',
    stopReason: 'end_turn',
    usage,
    costUsd: 0.0005,
    verdict,
    output: verdict === 'valid' ? { label: 'x' } : { nope: 1 },
    issues: verdict === 'valid' ? [] : ['label: required'],
    text: null,
    durationMs: 5,
  }),
  error: (s: string, attempt = 1): MachineEvent => ({
    type: 'MODEL_ERROR',
    step: s,
    attempt,
    requestId: null,
    model: 'claude-sonnet-4-6',
    status: 529,
    kind: 'overloaded',
    retryable: true,
    message: 'overloaded',
    delayMs: 500,
    retryAt: 2_000,
    usage: null,
    costUsd: 0,
    durationMs: 3,
  }),
  timer: (s: string): MachineEvent => ({ type: 'TIMER', step: s, at: 2_000 }),
  effectStarted: (s: string): MachineEvent => ({
    type: 'EFFECT_STARTED',
    step: s,
    key: 'k',
    attempt: 1,
  }),
  effectDone: (s: string): MachineEvent => ({
    type: 'EFFECT_DONE',
    step: s,
    key: 'k',
    result: { ok: true },
    replayed: false,
    durationMs: 1,
  }),
  stepDone: (s: string): MachineEvent => ({ type: 'STEP_DONE', step: s, output: 'done' }),
  skip: (s: string): MachineEvent => ({ type: 'SKIP', step: s, reason: 'not needed' }),
  resume: (): MachineEvent => ({
    type: 'RESUME',
    budgetUsd: null,
    maxIterations: null,
    deadlineAt: null,
  }),
  kill: (): MachineEvent => ({ type: 'KILL', reason: 'test' }),
};

/** The envelopes a run of `events` records: `run.started`, then each event with the state it led to. */
export function foldEnvelopes(
  events: readonly MachineEvent[],
  opts: { budgetUsd?: number; machine?: RunMachine; graph?: MachineGraph } = {},
): StoredEnvelope[] {
  const m = opts.machine ?? machine;
  const g = opts.graph ?? graph;
  const runId = 'r1';
  const limits = { budgetUsd: opts.budgetUsd ?? null, maxIterations: 10, deadlineAt: null };
  let snap = initialSnapshot(m, { runId, input: { text: 'hi' }, limits, startedAt: 1_000 });
  const out: StoredEnvelope[] = [
    {
      v: 1,
      runId,
      seq: 1,
      at: 1_000,
      event: {
        type: 'run.started',
        pipeline: 'tiny',
        version: '1',
        machineHash: machineHash(g),
        definition: g,
        module: null,
        input: { text: 'hi' },
        limits,
        forkedFrom: null,
      },
      state: summarize(snap),
    },
  ];
  for (const e of events) {
    const next = step(m, snap, e);
    if (next === snap)
      throw new Error(`fixture: ${e.type} not accepted in ${JSON.stringify(snap.value)}`);
    snap = next;
    out.push({
      v: 1,
      runId,
      seq: out.length + 1,
      at: 1_000 + out.length,
      event: e,
      state: summarize(snap),
    });
  }
  return out;
}

/** A run that retries a 529, re-asks an invalid answer, then finishes every step. */
export const eventfulRun: MachineEvent[] = [
  ev.attempt('classify', 1),
  ev.error('classify', 1),
  ev.timer('classify'),
  ev.attempt('classify', 2),
  ev.response('classify', 2, 'invalid'),
  ev.attempt('classify', 3),
  ev.response('classify', 3, 'valid'),
  ev.effectStarted('notify'),
  ev.effectDone('notify'),
  ev.stepDone('route'),
];
