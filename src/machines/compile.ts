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
  const park = (guard: string, reason: string) => ({
    guard,
    target: '#run.parked',
    actions: { type: 'park', params: { reason } },
  });
  return {
    entry: enter(s.name),
    initial: 'ready',
    states: {
      ready: {
        on: {
          ATTEMPT: { target: 'limits', actions: 'stashAttempt' },
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
      calling: {
        on: {
          MODEL_RESPONSE: {
            target: 'validate',
            actions: {
              type: 'recordResponse',
              params: { step: s.name, maxTokensOnRetry: s.maxTokensOnRetry ?? null },
            },
          },
          MODEL_ERROR: {
            target: 'retry',
            actions: { type: 'recordModelError', params: { step: s.name } },
          },
        },
      },
      validate: {
        always: [
          { guard: 'outputValid', target: target(next) },
          { guard: { type: 'canReask', params: reask }, target: 'ready' },
          failTo,
        ],
      },
      retry: {
        always: [
          {
            guard: {
              type: 'canRetry',
              params: {
                step: s.name,
                maxAttempts: s.retry?.maxAttempts ?? maxTransport,
                counter: 'transport',
              },
            },
            target: 'backoff',
          },
          failTo,
        ],
      },
      backoff: { on: { TIMER: { target: 'ready', actions: 'clearWait' } } },
    },
  };
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

function stepStates(s: Step, next: string | null, maxTransport: number): StateConfig {
  switch (s.kind) {
    case 'llm':
      return llmStates(s, next, maxTransport);
    case 'effect':
      return effectStates(s, next);
    case 'step':
      return transformStates(s, next);
  }
}

/** The run machine type. */
export type RunMachine = AnyStateMachine;

/** Compiles `pipeline` into its run machine (same pipeline, same machine, same hash). */
export function compilePipeline(pipeline: Pipeline): RunMachine {
  const names = pipeline.steps.map((s) => s.name);
  const maxTransport = pipeline.retry?.maxAttempts ?? STEP_DEFAULTS.maxTransportAttempts;
  const states: Record<string, StateConfig> = {};
  pipeline.steps.forEach((s, i) => {
    states[s.name] = stepStates(s, names[i + 1] ?? null, maxTransport);
  });
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
    initial: names[0] as string,
    on: { KILL: { target: '.killed', actions: 'kill' } },
    states: states as never,
  } as never);
  return machine as unknown as RunMachine;
}
