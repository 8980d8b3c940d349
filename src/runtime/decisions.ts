/**
 * What each recorded event decided, in words: one grep-able log line per decision.
 */
import type { MachineEvent } from '../machines/events.js';
import { statusOf, type RunSnapshot } from '../machines/fold.js';

/** A decision and its reason. */
export interface Decision {
  decision: string;
  reason: string;
}

const usd = (x: number): string => `$${x.toFixed(6)}`;

/** Describes the decision `event` led to, given the snapshot it produced. */
export function describeDecision(event: MachineEvent, next: RunSnapshot): Decision {
  const ctx = next.context;
  const status = statusOf(next);
  if (status === 'parked' && ctx.parked !== null)
    return { decision: 'park', reason: `${ctx.parked.reason}: ${ctx.parked.detail}` };
  if (status === 'failed' && ctx.error !== null)
    return { decision: 'fail', reason: `${ctx.error.kind}: ${ctx.error.message}` };
  switch (event.type) {
    case 'ATTEMPT':
      return {
        decision: 'call',
        reason: `within limits: call ${ctx.iterations}${ctx.limits.maxIterations !== null ? `/${ctx.limits.maxIterations}` : ''}, reserved ${usd(event.estimate.usd)}, spent ${usd(ctx.costUsd)}${ctx.limits.budgetUsd !== null ? ` of ${usd(ctx.limits.budgetUsd)}` : ''}, breaker ${event.breaker}`,
      };
    case 'MODEL_RESPONSE':
      if (event.verdict === 'valid')
        return { decision: 'accept', reason: `valid output, cost ${usd(event.costUsd)}` };
      return { decision: 're-ask', reason: `${event.verdict}: ${event.issues.join('; ')}` };
    case 'MODEL_ERROR':
      return {
        decision: 'retry',
        reason: `${event.kind}${event.status !== null ? ` ${event.status}` : ''} is retryable: wait ${event.delayMs} ms`,
      };
    case 'BATCH_SUBMITTED':
      return {
        decision: 'wait-batch',
        reason: `in batch ${event.batchId} as ${event.customId}: polling until it ends`,
      };
    case 'TIMER':
      return { decision: 'wake', reason: 'backoff over' };
    case 'SKIP':
      return { decision: 'skip', reason: event.reason };
    case 'EFFECT_STARTED':
      return { decision: 'run-effect', reason: `key ${event.key}` };
    case 'EFFECT_DONE':
      return event.replayed
        ? {
            decision: 'effect-replayed',
            reason: `key ${event.key} already done: recorded result reused`,
          }
        : { decision: 'effect-done', reason: `key ${event.key}` };
    case 'EFFECT_FAILED':
      return {
        decision: 'retry',
        reason: `effect failed: ${event.message}: wait ${event.delayMs} ms`,
      };
    case 'STEP_DONE':
      return { decision: 'done', reason: 'step returned' };
    case 'STEP_FAILED':
      return { decision: 'fail', reason: event.message };
    case 'KILL':
      return { decision: 'kill', reason: event.reason };
    case 'ROUTE':
      return { decision: 'route', reason: `branch '${event.branch}' chosen` };
    case 'CHILDREN_STARTED':
      return { decision: 'fan-out', reason: `${event.count} child run(s)` };
    case 'BRANCH_DONE':
      return {
        decision: event.ok ? 'branch-done' : 'branch-failed',
        reason: `branch '${event.branch}'${event.ok ? '' : `: ${event.error ?? ''}`}, cost ${usd(event.costUsd)}`,
      };
    case 'CHILDREN_DONE':
      return {
        decision: 'join',
        reason: `${event.results.length - event.errors.length} of ${event.results.length} children done, cost ${usd(event.costUsd)}`,
      };
    case 'CHILDREN_PARKED':
      return { decision: 'park', reason: `child ${event.child}: ${event.detail}` };
    case 'WAIT_STARTED':
      return {
        decision: 'wait',
        reason: `for signal '${event.signal}'${event.until !== null ? ` until ${new Date(event.until).toISOString()}` : ''}`,
      };
    case 'SIGNAL':
      return {
        decision: 'signal',
        reason: `'${event.signal}' from ${event.by ?? 'unknown'} at ${new Date(event.at).toISOString()}`,
      };
    case 'WAIT_TIMEOUT':
      return { decision: 'timeout', reason: 'no signal before the timeout' };
    case 'SLEEP_STARTED':
      return { decision: 'sleep', reason: `until ${new Date(event.until).toISOString()}` };
    case 'WAKE':
      return { decision: 'wake', reason: 'sleep over' };
    case 'AGENT_TURN':
      if (event.verdict === 'tool_use')
        return {
          decision: 'call-tools',
          reason: `turn ${event.turn}: ${event.content.flatMap((b) => (b.type === 'tool_use' ? [b.name] : [])).join(', ')}, cost ${usd(event.costUsd)}`,
        };
      if (event.verdict === 'valid')
        return {
          decision: 'accept',
          reason: `turn ${event.turn}: valid answer, cost ${usd(event.costUsd)}`,
        };
      return {
        decision: 're-ask',
        reason: `turn ${event.turn}: ${event.verdict}: ${event.issues.join('; ')}`,
      };
    case 'TOOL_RESULT':
      return {
        decision: event.ok ? (event.replayed ? 'tool-replayed' : 'tool-done') : 'tool-error',
        reason: `${event.name} (${event.toolUseId})${event.ok ? '' : `: ${event.error ?? ''}`}`,
      };
    case 'RESUME':
      return {
        decision: 'resume',
        reason: `limits now budget ${String(ctx.limits.budgetUsd)}, iterations ${String(ctx.limits.maxIterations)}`,
      };
  }
}
