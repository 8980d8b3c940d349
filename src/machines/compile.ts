/**
 * Compiles a pipeline into its run statechart (XState v5). Each step is a compound state whose
 * guard sub-states enforce limits, validation and retries; terminal states are `completed`,
 * `failed` and `killed`; `parked` waits for RESUME. Pure: no clock, randomness or I/O.
 */
import { setup, type AnyStateMachine } from 'xstate';
import { actions } from './actions.js';
import { initialContext, type RunContext, type RunInput } from './context.js';
import type { MachineEvent } from './events.js';
import { guards } from './guards.js';
import type { EffectStep, LlmStep, Pipeline, Step, TransformStep } from './pipeline.js';
import { machineSteps, type ChildStep, type ParallelStep, type RouteStep } from './constructs.js';
import { agentStates } from './agentCompile.js';
import type { SleepStep, WaitStep } from './waits.js';
import { hasFallback, modelsOf, type FallbackParams } from './fallback.js';

/** Defaults applied when a step leaves them out (part of the machine, so part of its hash). */
export const STEP_DEFAULTS = {
  maxValidationAttempts: 3,
  maxTransportAttempts: 4,
  maxEffectAttempts: 3,
} as const;

type StateConfig = Record<string, unknown>;

function target(next: string | null): string {
  return next === null ? '#run.completed' : `#run.${next}`;
}

const skipOn = (next: string | null) => ({ target: target(next), actions: 'recordSkip' });
const failTo = { target: '#run.failed', actions: 'fail' };
/** User code (a prompt, key or skip function, or a transform) threw: the run fails with the error. */
const stepFailed = { target: '#run.failed', actions: ['recordStepFailure', 'fail'] };
const enter = (step: string) => ({ type: 'enterStep', params: { step } });

function llmStates(s: LlmStep, next: string | null, maxTransport: number): StateConfig {
  const reask = {
    step: s.name,
    maxValidationAttempts: s.maxValidationAttempts ?? STEP_DEFAULTS.maxValidationAttempts,
    reaskOnRefusal: s.reaskOnRefusal ?? false,
    reaskOnMaxTokens: s.maxTokensOnRetry !== undefined,
  };
  const maxAttempts = s.retry?.maxAttempts ?? maxTransport;
  // A step with fallback models records the model each attempt used and decides per model;
  // a one-model step keeps the machine it always had (same graph, same hash).
  const fb: FallbackParams | null = hasFallback(s)
    ? { step: s.name, models: modelsOf(s), maxAttempts }
    : null;
  const park = (guard: string, reason: string) => ({
    guard,
    target: '#run.parked',
    // A fallback step parks on the breaker only when every model's is open: the detail names them.
    actions: {
      type: 'park',
      params: fb !== null && reason === 'breaker' ? { reason, models: fb.models } : { reason },
    },
  });
  const outcomes = {
    MODEL_RESPONSE: {
      target: 'validate',
      actions: {
        type: 'recordResponse',
        params: { step: s.name, maxTokensOnRetry: s.maxTokensOnRetry ?? null },
      },
    },
    MODEL_ERROR: {
      target: 'retry',
      actions:
        fb === null
          ? { type: 'recordModelError', params: { step: s.name } }
          : [
              { type: 'recordModelError', params: { step: s.name } },
              { type: 'countModelFailure', params: fb },
            ],
    },
  };
  return {
    entry: enter(s.name),
    initial: 'ready',
    states: {
      ready: {
        on: {
          ATTEMPT: {
            target: 'limits',
            actions:
              fb === null ? 'stashAttempt' : ['stashAttempt', { type: 'useModel', params: fb }],
          },
          SKIP: skipOn(next),
          STEP_FAILED: stepFailed,
        },
      },
      limits: {
        always: [
          park('breakerOpen', 'breaker'),
          park('overIterations', 'iterations'),
          park('pastDeadline', 'deadline'),
          park('overBudget', 'budget'),
          { target: 'calling', actions: { type: 'reserve', params: { step: s.name } } },
        ],
      },
      // A batch step's call is a submit (BATCH_SUBMITTED), then a wait in `batched` for its
      // result; a direct step's machine is unchanged (its hash is pinned by old runs).
      calling: { on: s.batch === true ? { ...outcomes, ...batchSubmitted() } : outcomes },
      ...(s.batch === true ? { batched: { on: outcomes } } : {}),
      validate: {
        always: [
          { guard: 'outputValid', target: target(next) },
          { guard: { type: 'canReask', params: reask }, target: 'ready' },
          failTo,
        ],
      },
      retry: { always: fb === null ? retryOneModel(s.name, maxAttempts) : retryFallback(fb) },
      backoff: { on: { TIMER: { target: 'ready', actions: 'clearWait' } } },
    },
  };
}

/** After a failed call of a one-model step: back off and retry while attempts remain, else fail. */
function retryOneModel(step: string, maxAttempts: number): unknown[] {
  return [
    {
      guard: { type: 'canRetry', params: { step, maxAttempts, counter: 'transport' } },
      target: 'backoff',
    },
    failTo,
  ];
}

/** After a failed call of a fallback step: retry the model, call the next one at once, or fail. */
function retryFallback(fb: FallbackParams): unknown[] {
  return [
    { guard: { type: 'fallbackRetry', params: fb }, target: 'backoff' },
    {
      guard: { type: 'fallbackNext', params: fb },
      target: 'ready',
      actions: { type: 'fallBack', params: fb },
    },
    failTo,
  ];
}

/** The submit of a batch step's request: the run then waits in `batched` for its result. */
function batchSubmitted(): StateConfig {
  return { BATCH_SUBMITTED: { target: 'batched', actions: 'recordBatch' } };
}

function effectStates(s: EffectStep, next: string | null): StateConfig {
  const maxAttempts = s.maxAttempts ?? STEP_DEFAULTS.maxEffectAttempts;
  return {
    entry: enter(s.name),
    initial: 'ready',
    states: {
      ready: {
        on: { EFFECT_STARTED: { target: 'running' }, SKIP: skipOn(next), STEP_FAILED: stepFailed },
      },
      running: {
        on: {
          EFFECT_DONE: { target: target(next), actions: 'recordOutput' },
          EFFECT_FAILED: {
            target: 'retry',
            actions: { type: 'recordEffectFailure', params: { step: s.name } },
          },
        },
      },
      retry: {
        always: [
          {
            guard: { type: 'canRetry', params: { step: s.name, maxAttempts, counter: 'failures' } },
            target: 'backoff',
          },
          failTo,
        ],
      },
      backoff: { on: { TIMER: { target: 'ready', actions: 'clearWait' } } },
    },
  };
}

function transformStates(s: TransformStep, next: string | null): StateConfig {
  return {
    entry: enter(s.name),
    initial: 'ready',
    states: {
      ready: {
        on: {
          STEP_DONE: { target: target(next), actions: 'recordOutput' },
          STEP_FAILED: stepFailed,
          SKIP: skipOn(next),
        },
      },
    },
  };
}

/** A route: one guarded transition per branch, to its first step (or the join, if empty). */
function routeStates(
  s: RouteStep,
  next: string | null,
  states: Record<string, StateConfig>,
  maxTransport: number,
): StateConfig {
  const choices = Object.entries(s.branches).map(([branch, seq]) => {
    compileSeq(seq, next, states, maxTransport);
    return {
      guard: { type: 'branchIs', params: { branch } },
      target: target(seq[0]?.name ?? next),
      actions: 'recordRoute',
    };
  });
  return {
    entry: enter(s.name),
    initial: 'ready',
    states: { ready: { on: { ROUTE: choices, SKIP: skipOn(next), STEP_FAILED: stepFailed } } },
  };
}

/** While a child step's runs work, the parent waits here; a parked child parks it. */
const childParked = { CHILDREN_PARKED: { target: '#run.parked', actions: 'parkChildren' } };

/** A map or call: make the children, wait for all of them, take their results. */
function childrenStates(s: ChildStep, next: string | null): StateConfig {
  if (s.kind === 'parallel') return parallelStates(s, next);
  // A call's output is its child's result; a map's, the array of results.
  const done = { type: 'recordChildrenDone', params: { single: s.kind === 'call' } };
  return {
    entry: enter(s.name),
    initial: 'ready',
    states: {
      ready: {
        on: {
          CHILDREN_STARTED: { target: 'waiting', actions: 'recordChildren' },
          SKIP: skipOn(next),
          STEP_FAILED: stepFailed,
        },
      },
      waiting: {
        on: {
          CHILDREN_DONE: [
            { guard: 'childrenOk', target: target(next), actions: done },
            { target: '#run.failed', actions: [done, 'fail'] },
          ],
          ...childParked,
        },
      },
    },
  };
}

/** Parallel branches: an XState parallel state, one region per branch, joined when all are done. */
function parallelStates(s: ParallelStep, next: string | null): StateConfig {
  const collect = (s.onBranchError ?? 'fail') === 'collect';
  const regions = Object.fromEntries(
    Object.keys(s.branches).map((branch) => [
      branch,
      {
        initial: 'running',
        states: {
          running: {
            on: {
              BRANCH_DONE: {
                guard: { type: 'branchIs', params: { branch } },
                target: 'done',
                actions: 'recordBranch',
              },
            },
          },
          done: { type: 'final' },
        },
      },
    ]),
  );
  return {
    entry: enter(s.name),
    initial: 'ready',
    states: {
      ready: {
        on: {
          CHILDREN_STARTED: { target: 'branches', actions: 'recordChildren' },
          SKIP: skipOn(next),
          STEP_FAILED: stepFailed,
        },
      },
      branches: {
        type: 'parallel',
        states: regions,
        on: childParked,
        onDone: [
          {
            guard: { type: 'branchesOk', params: { step: s.name, collect } },
            target: target(next),
            actions: { type: 'joinBranches', params: { step: s.name, collect } },
          },
          {
            target: '#run.failed',
            actions: [{ type: 'failBranches', params: { step: s.name } }, 'fail'],
          },
        ],
      },
    },
  };
}

function stepStates(
  s: Step,
  next: string | null,
  maxTransport: number,
  states: Record<string, StateConfig>,
): StateConfig {
  switch (s.kind) {
    case 'llm':
      return llmStates(s, next, maxTransport);
    case 'effect':
      return effectStates(s, next);
    case 'step':
      return transformStates(s, next);
    case 'route':
      return routeStates(s, next, states, maxTransport);
    case 'parallel':
    case 'map':
    case 'call':
      return childrenStates(s, next);
    case 'agent':
      return agentStates(s, {
        next: target(next),
        skip: skipOn(next),
        stepFailed,
        entry: enter(s.name),
        maxTransport,
        validationDefault: STEP_DEFAULTS.maxValidationAttempts,
      });
    case 'wait':
      return waitStates(s, next);
    case 'sleep':
      return sleepStates(s, next);
  }
}

/** A wait: `waiting` (tagged: the run holds no process) until SIGNAL, or WAIT_TIMEOUT. */
function waitStates(s: WaitStep, next: string | null): StateConfig {
  const go = s.onTimeout ?? 'fail';
  const timeout =
    go === 'fail'
      ? { target: '#run.failed', actions: ['recordWaitTimeout', 'fail'] }
      : { target: target(go === 'continue' ? next : go.goto), actions: 'recordWaitTimeout' };
  return {
    entry: enter(s.name),
    initial: 'ready',
    states: {
      ready: {
        on: {
          WAIT_STARTED: { target: 'waiting', actions: 'recordWaitStart' },
          SKIP: skipOn(next),
          STEP_FAILED: stepFailed,
        },
      },
      waiting: {
        tags: ['waiting'],
        on: {
          SIGNAL: { target: target(next), actions: 'recordSignal' },
          WAIT_TIMEOUT: timeout,
        },
      },
    },
  };
}

/** A sleep: `sleeping` (tagged waiting) until WAKE. */
function sleepStates(s: SleepStep, next: string | null): StateConfig {
  return {
    entry: enter(s.name),
    initial: 'ready',
    states: {
      ready: {
        on: {
          SLEEP_STARTED: { target: 'sleeping', actions: 'recordWaitStart' },
          SKIP: skipOn(next),
          STEP_FAILED: stepFailed,
        },
      },
      sleeping: {
        tags: ['waiting'],
        on: { WAKE: { target: target(next), actions: 'recordWake' } },
      },
    },
  };
}

/**
 * Adds the states of a sequence of steps, each leading to the next and the last to `after`
 * (a route's branches are sequences that lead to the step after the route).
 */
function compileSeq(
  seq: readonly Step[],
  after: string | null,
  states: Record<string, StateConfig>,
  maxTransport: number,
): void {
  seq.forEach((s, i) => {
    states[s.name] = {}; // keeps the order: a route's state before its branches' states
    states[s.name] = stepStates(s, seq[i + 1]?.name ?? after, maxTransport, states);
  });
}

/** The run machine type. */
export type RunMachine = AnyStateMachine;

/** Compiles `pipeline` into its run machine (same pipeline, same machine, same hash). */
export function compilePipeline(pipeline: Pipeline): RunMachine {
  const maxTransport = pipeline.retry?.maxAttempts ?? STEP_DEFAULTS.maxTransportAttempts;
  const states: Record<string, StateConfig> = {};
  compileSeq(pipeline.steps, null, states, maxTransport);
  const names = machineSteps(pipeline.steps).map((s) => s.name);
  states.completed = { type: 'final' };
  states.failed = { type: 'final' };
  states.killed = { type: 'final' };
  states.parked = {
    tags: ['parked'],
    on: {
      RESUME: names.map((n) => ({
        guard: { type: 'parkedIn', params: { step: n } },
        target: `#run.${n}`,
        actions: 'resume',
      })),
    },
  };
  const machine = setup({
    types: {} as { context: RunContext; events: MachineEvent; input: RunInput },
    guards: guards as never,
    actions: actions as never,
  }).createMachine({
    id: 'run',
    context: ({ input }: { input: RunInput }) => initialContext(input),
    initial: pipeline.steps[0]?.name as string,
    on: { KILL: { target: '.killed', actions: 'kill' } },
    states: states as never,
  } as never);
  return machine as unknown as RunMachine;
}
