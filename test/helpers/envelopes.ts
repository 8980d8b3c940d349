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
