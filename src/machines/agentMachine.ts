/**
 * The agent step's part of the run machine: the conversation kept in the context, the actions
 * that record a turn and a tool result, and the guards of the turn loop. Pure: every value comes
 * from the context or the event, so a fold of the log rebuilds the conversation exactly.
 */
import { assign } from './fastAssign.js';
import { feedbackMessage } from '../model/structured.js';
import type { ModelBlock, ModelMessage } from '../model/types.js';
import { attemptsOf, roundUsd, type RunContext } from './context.js';
import type { AgentBlock, MachineEvent, Usage } from './events.js';
import type { ReaskParams } from './guards.js';

type Args = { context: RunContext; event: MachineEvent };

/** A tool call the model asked for. */
export type ToolCall = Extract<AgentBlock, { type: 'tool_use' }>;

/** An agent step's conversation, as the run's context holds it (`context.agent[step]`). */
export interface AgentConversation {
  /** Turns answered (AGENT_TURN events). */
  turns: number;
  /** The conversation after the prompt: the model's turns and the user turns answering them. */
  messages: ModelMessage[];
  /** The tool calls of the last turn. */
  calls: ToolCall[];
  /** Their results so far, in the order they were recorded. */
  results: Extract<ModelBlock, { type: 'tool_result' }>[];
}

/** The conversation of `step` (empty before its first turn). */
export function conversationOf(ctx: RunContext, step: string): AgentConversation {
  return ctx.agent?.[step] ?? { turns: 0, messages: [], calls: [], results: [] };
}

/** The tool calls of the last turn that have no result yet, in the order asked. */
export function unansweredCalls(conv: AgentConversation): ToolCall[] {
  const done = new Set(conv.results.map((r) => r.tool_use_id));
  return conv.calls.filter((c) => !done.has(c.id));
}

/** Params of the turn loop's guards. */
export interface TurnParams extends ReaskParams {
  maxTurns: number;
}

const inputOf = (u: Usage): number =>
  u.inputTokens + u.cacheReadTokens + u.cacheWrite5mTokens + u.cacheWrite1hTokens;

function withConversation(ctx: RunContext, step: string, conv: AgentConversation) {
  return { agent: { ...ctx.agent, [step]: conv } };
}

/** The agent's actions, merged into the machine's. */
export const agentActions = {
  recordAgentTurn: assign(({ context, event }: Args, p: { step: string }) => {
    if (event.type !== 'AGENT_TURN') return {};
    const conv = conversationOf(context, p.step);
    const said: ModelMessage[] =
      event.content.length > 0 ? [{ role: 'assistant', content: event.content }] : [];
    const tools = event.verdict === 'tool_use';
    const valid = event.verdict === 'valid';
    // An invalid answer is re-asked in the same conversation, with what was wrong.
    const feedback: ModelMessage[] =
      tools || valid ? [] : [{ role: 'user', content: feedbackMessage(event.issues) }];
    const a = attemptsOf(context, p.step);
    return {
      costUsd: roundUsd(context.costUsd + event.costUsd),
      stepCostUsd: {
        ...context.stepCostUsd,
        [p.step]: roundUsd((context.stepCostUsd[p.step] ?? 0) + event.costUsd),
      },
      inputTokens: (context.inputTokens ?? 0) + inputOf(event.usage),
      outputTokens: (context.outputTokens ?? 0) + event.usage.outputTokens,
      reservedTokens: { input: 0, output: 0 },
      reservedUsd: 0,
      pending: null,
      last: tools
        ? { verdict: 'tool_use', kind: 'agent' }
        : { verdict: event.verdict, kind: 'validation', message: event.issues.join('; ') },
      outputs: valid ? { ...context.outputs, [p.step]: event.output } : context.outputs,
      attempts:
        tools || valid
          ? context.attempts
          : { ...context.attempts, [p.step]: { ...a, validation: a.validation + 1 } },
      ...withConversation(context, p.step, {
        turns: conv.turns + 1,
        messages: [...conv.messages, ...said, ...feedback],
        calls: tools ? event.content.filter((b): b is ToolCall => b.type === 'tool_use') : [],
        results: [],
      }),
    };
  }),
  recordToolResult: assign(({ context, event }: Args, p: { step: string }) => {
    if (event.type !== 'TOOL_RESULT') return {};
    const conv = conversationOf(context, p.step);
    const block: AgentConversation['results'][number] = {
      type: 'tool_result',
      tool_use_id: event.toolUseId,
      content: event.ok ? (JSON.stringify(event.result ?? null) ?? 'null') : (event.error ?? ''),
      ...(event.ok ? {} : { is_error: true }),
    };
    const results = [...conv.results, block];
    // Every call answered: the results go back to the model as one user turn.
    const all = results.length === conv.calls.length;
    return withConversation(context, p.step, {
      ...conv,
      messages: all ? [...conv.messages, { role: 'user', content: results }] : conv.messages,
      results: all ? [] : results,
      calls: all ? [] : conv.calls,
    });
  }),
  agentOutOfTurns: assign((_: Args, p: { step: string; maxTurns: number }) => ({
    last: {
      retryable: false,
      kind: 'max_turns',
      message: `agent '${p.step}' used its ${p.maxTurns} turns (maxTurns) without a valid final answer: raise maxTurns, or ask for fewer tool calls in the prompt`,
    },
  })),
};

/** As the llm step's `canReask` (not imported: guards.ts imports this module). */
function canReask({ context }: Args, p: ReaskParams): boolean {
  const verdict = context.last?.verdict;
  if (verdict === 'refusal' && !p.reaskOnRefusal) return false;
  if (verdict === 'max_tokens' && !p.reaskOnMaxTokens) return false;
  return attemptsOf(context, p.step).validation < p.maxValidationAttempts;
}

function turns({ context }: Args, step: string): number {
  return conversationOf(context, step).turns;
}

/** The last turn asked for tools and another turn is allowed to answer with their results. */
export function agentToolUse(args: Args, p: TurnParams): boolean {
  return args.context.last?.verdict === 'tool_use' && turns(args, p.step) < p.maxTurns;
}

/** The last answer was invalid, a re-ask is allowed, and a turn is left for it. */
export function agentCanReask(args: Args, p: TurnParams): boolean {
  const v = args.context.last?.verdict;
  return v !== 'tool_use' && canReask(args, p) && turns(args, p.step) < p.maxTurns;
}

/** No turn is left for what the last turn called for (its tools' results, or a re-ask). */
export function agentOutOfTurns(args: Args, p: TurnParams): boolean {
  const v = args.context.last?.verdict;
  return (v === 'tool_use' || canReask(args, p)) && turns(args, p.step) >= p.maxTurns;
}

/** The TOOL_RESULT answers a call of the last turn that had no result yet. */
export function toolCallOpen({ context, event }: Args, p: { step: string }): boolean {
  if (event.type !== 'TOOL_RESULT' || event.step !== p.step) return false;
  return unansweredCalls(conversationOf(context, p.step)).some((c) => c.id === event.toolUseId);
}

/** …and it is the last such call: the turn's tools are all answered. */
export function lastToolCall(args: Args, p: { step: string }): boolean {
  return (
    toolCallOpen(args, p) && unansweredCalls(conversationOf(args.context, p.step)).length === 1
  );
}

/** The agent's guards, merged into the machine's. */
export const agentGuards = {
  agentToolUse,
  agentCanReask,
  agentOutOfTurns,
  toolCallOpen,
  lastToolCall,
};
