/**
 * The states of an agent step: the llm step's guard states once per turn (limits → park or
 * reserve → calling → retry/backoff), then `turn` decides on the answer — `tools` (each call's
 * TOOL_RESULT, then the next turn), a re-ask, the final answer, or failure at `maxTurns`.
 * Pure: no clock, randomness or I/O.
 */
import { DEFAULT_MAX_TURNS, type AgentStep } from './agent.js';
import type { TurnParams } from './agentMachine.js';

type StateConfig = Record<string, unknown>;

/** Where the compiler's helpers send a step (shared with compile.ts, passed in to avoid a cycle). */
export interface AgentTargets {
  /** The state after the step (`#run.<next>` or `#run.completed`). */
  next: string;
  /** The transitions of `ready` every step has: SKIP and STEP_FAILED. */
  skip: unknown;
  stepFailed: unknown;
  /** The step's entry action. */
  entry: unknown;
  maxTransport: number;
  validationDefault: number;
}

/** The states of agent step `s`. */
export function agentStates(s: AgentStep, t: AgentTargets): StateConfig {
  const maxTurns = s.maxTurns ?? DEFAULT_MAX_TURNS;
  const turn: TurnParams = {
    step: s.name,
    maxValidationAttempts: s.maxValidationAttempts ?? t.validationDefault,
    reaskOnRefusal: false,
    reaskOnMaxTokens: false,
    maxTurns,
  };
  const failTo = { target: '#run.failed', actions: 'fail' };
  const park = (guard: string, reason: string) => ({
    guard,
    target: '#run.parked',
    actions: { type: 'park', params: { reason } },
  });
  const step = { step: s.name };
  return {
    entry: t.entry,
    initial: 'ready',
    states: {
      ready: {
        on: {
          ATTEMPT: { target: 'limits', actions: 'stashAttempt' },
          SKIP: t.skip,
          STEP_FAILED: t.stepFailed,
        },
      },
      limits: {
        always: [
          park('breakerOpen', 'breaker'),
          park('overIterations', 'iterations'),
          park('pastDeadline', 'deadline'),
          park('overBudget', 'budget'),
          { target: 'calling', actions: { type: 'reserve', params: step } },
        ],
      },
      calling: {
        on: {
          AGENT_TURN: { target: 'turn', actions: { type: 'recordAgentTurn', params: step } },
          MODEL_ERROR: { target: 'retry', actions: { type: 'recordModelError', params: step } },
        },
      },
      turn: {
        always: [
          { guard: 'outputValid', target: t.next },
          { guard: { type: 'agentToolUse', params: turn }, target: 'tools' },
          { guard: { type: 'agentCanReask', params: turn }, target: 'ready' },
          {
            guard: { type: 'agentOutOfTurns', params: turn },
            target: '#run.failed',
            actions: [{ type: 'agentOutOfTurns', params: { step: s.name, maxTurns } }, 'fail'],
          },
          failTo,
        ],
      },
      tools: {
        on: {
          TOOL_RESULT: [
            {
              guard: { type: 'lastToolCall', params: step },
              target: 'ready',
              actions: { type: 'recordToolResult', params: step },
            },
            {
              guard: { type: 'toolCallOpen', params: step },
              actions: { type: 'recordToolResult', params: step },
            },
          ],
          STEP_FAILED: t.stepFailed,
        },
      },
      retry: {
        always: [
          {
            guard: {
              type: 'canRetry',
              params: {
                step: s.name,
                maxAttempts: s.retry?.maxAttempts ?? t.maxTransport,
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
