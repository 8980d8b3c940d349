import type { NewEnvelope, RunStatus } from '../../src/machines/events.js';

/** A `run.started` envelope for contract tests. */
export function started(pipeline = 'p', at = 1_000): NewEnvelope {
  return {
    v: 1,
    at,
    event: {
      type: 'run.started',
      pipeline,
      version: '1',
      machineHash: 'h',
      definition: null,
      module: null,
      input: { n: 1 },
      limits: { budgetUsd: null, maxIterations: null, deadlineAt: null },
      forkedFrom: null,
    },
    state: { value: { a: 'ready' }, status: 'running', step: 'a', costUsd: 0 },
  };
}

/** A machine-event envelope for contract tests. */
export function stepDone(
  n: number,
  status: RunStatus = 'running',
  costUsd = 0,
  at = 2_000 + n,
): NewEnvelope {
  return {
    v: 1,
    at,
    event: { type: 'STEP_DONE', step: `s${n}`, output: { n } },
    state: {
      value: status === 'running' ? { [`s${n + 1}`]: 'ready' } : status,
      status,
      step: `s${n}`,
      costUsd,
    },
  };
}

/** A billed model answer (or a lost call) at `at`. */
export function outcome(at: number, costUsd: number, model: string, lost = false): NewEnvelope {
  const state = { value: { a: 'ready' }, status: 'running' as RunStatus, step: 'a', costUsd: 0 };
  const usage = { inputTokens: 10, outputTokens: 5, cacheReadTokens: 2, cacheWrite5mTokens: 1 };
  return lost
    ? {
        v: 1,
        at,
        event: {
          type: 'MODEL_ERROR',
          step: 'a',
          attempt: 1,
          requestId: null,
          model,
          status: null,
          kind: 'lost',
          retryable: true,
          message: 'lost with its process',
          delayMs: 0,
          retryAt: at,
          usage: null,
          costUsd,
          durationMs: 0,
          unconfirmed: true,
        },
        state,
      }
    : {
        v: 1,
        at,
        event: {
          type: 'MODEL_RESPONSE',
          step: 'a',
          attempt: 1,
          requestId: 'req',
          model,
          stopReason: 'end_turn',
          usage: { ...usage, cacheWrite1hTokens: 0 },
          costUsd,
          verdict: 'valid',
          issues: [],
          text: null,
          durationMs: 1,
        },
        state,
      };
}
