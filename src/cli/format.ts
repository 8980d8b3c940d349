/**
 * Human output of the CLI: run summaries and replay lines.
 */
import type { StoredEnvelope } from '../machines/events.js';
import type { RunResult } from '../runtime/driver.js';
import type { RunSummary } from '../store/types.js';

/** `$0.001234`. */
export function usd(x: number): string {
  return `$${x.toFixed(6)}`;
}

/** A state value as `step.sub` text. */
export function stateText(value: unknown): string {
  if (typeof value === 'string') return value;
  if (value === null || typeof value !== 'object') return String(value);
  return Object.entries(value as Record<string, unknown>)
    .map(([k, v]) => (typeof v === 'string' ? `${k}.${v}` : `${k}.${stateText(v)}`))
    .join(',');
}

/** The steps a run went through, in order, from its events. */
export function pathOfSteps(events: readonly StoredEnvelope[]): string[] {
  const path: string[] = [];
  const skipped = new Set(events.flatMap((e) => (e.event.type === 'SKIP' ? [e.event.step] : [])));
  for (const e of events) {
    const s = e.state.step;
    const label = s !== null && skipped.has(s) ? `${s} (skipped)` : s;
    if (label !== null && path[path.length - 1] !== label) path.push(label);
  }
  return path;
}

/** One line describing how a run ended. */
export function resultLine(r: RunResult, path: string[]): string {
  if (r.stopped === 'leased')
    return `run ${r.runId} is driven by ${r.holder?.owner ?? 'another process'} (lease token ${r.holder?.token ?? '?'}): left to it, nothing done here (${r.status})`;
  if (r.stopped === 'fenced')
    return `run ${r.runId} was taken over by another process: stopped here (${r.status})`;
  const why =
    r.status === 'failed' && r.error !== null
      ? ` (${r.error.kind} in ${r.error.step ?? '?'}: ${r.error.message})`
      : r.status === 'parked' && r.parked !== null
        ? ` (${r.parked.reason}: ${r.parked.detail})`
        : r.status === 'killed' && r.killed !== null
          ? ` (${r.killed.reason})`
          : r.status === 'waiting' && r.waiting !== null
            ? ` (${waitingText(r.runId, r.waiting)})`
            : '';
  return `run ${r.runId} ${r.status}${why}, cost ${usd(r.costUsd)}, path ${path.join(' → ') || '(none)'}`;
}

/** A replay line: seq, event, from → to, cost so far, and attempt details. */
export function replayLine(e: StoredEnvelope, from: unknown, to: unknown): string {
  const ev = e.event;
  let detail = '';
  switch (ev.type) {
    case 'ATTEMPT':
      detail = `attempt ${ev.attempt} ${ev.model}, reserve ${usd(ev.estimate.usd)} (≤${ev.estimate.inputTokens} in + ${ev.estimate.maxTokens} out), breaker ${ev.breaker}`;
      break;
    case 'MODEL_RESPONSE':
      detail = `attempt ${ev.attempt} ${ev.verdict}${ev.issues.length ? ` [${ev.issues.join('; ')}]` : ''}, cost ${usd(ev.costUsd)}, tokens ${ev.usage.inputTokens}/${ev.usage.outputTokens} cache r${ev.usage.cacheReadTokens} w5m${ev.usage.cacheWrite5mTokens} w1h${ev.usage.cacheWrite1hTokens}, request ${ev.requestId ?? '-'}`;
      break;
    case 'MODEL_ERROR':
      detail = `attempt ${ev.attempt} ${ev.retryable ? 'retryable' : 'fatal'} ${ev.kind}${ev.status !== null ? ` ${ev.status}` : ''}, delay ${ev.delayMs} ms, cost ${usd(ev.costUsd)}${ev.unconfirmed === true ? ' unconfirmed (its reservation: the process died mid-call)' : ''}: ${ev.message}`;
      break;
    case 'BATCH_SUBMITTED':
      detail = `attempt ${ev.attempt} in batch ${ev.batchId} as ${ev.customId}: waiting for its result`;
      break;
    case 'SKIP':
      detail = ev.reason;
      break;
    case 'EFFECT_STARTED':
    case 'EFFECT_DONE':
      detail = `key ${ev.key}${ev.type === 'EFFECT_DONE' && ev.replayed ? ' (recorded result reused)' : ''}`;
      break;
    case 'EFFECT_FAILED':
      detail = `${ev.message}, delay ${ev.delayMs} ms`;
      break;
    case 'KILL':
      detail = ev.reason;
      break;
    default:
      break;
  }
  const arrow = from === null ? stateText(to) : `${stateText(from)} → ${stateText(to)}`;
  return `${String(e.seq).padStart(4)}  ${ev.type.padEnd(15)} ${arrow.padEnd(38)} ${usd(e.state.costUsd)}${detail ? `  ${detail}` : ''}`;
}

/**
 * A row of `plumbline runs`; `unconfirmedUsd` is the part of its cost from calls lost mid-flight;
 * `cells` indents the id (a child in a tree) and adds the children column.
 */
export function runRow(
  r: RunSummary,
  unconfirmedUsd = 0,
  cells: { id?: string; idWidth?: number; children?: string } = {},
): string {
  const started = new Date(r.startedAt).toISOString().replace('T', ' ').slice(0, 19);
  const ended =
    r.endedAt !== null ? new Date(r.endedAt).toISOString().replace('T', ' ').slice(0, 19) : '-';
  const tail = cells.children !== undefined ? [ended.padEnd(19), cells.children] : [ended];
  return [
    (cells.id ?? r.runId).padEnd(cells.idWidth ?? 28),
    r.pipeline.padEnd(14),
    r.version.padEnd(6),
    r.status.padEnd(10),
    usd(r.costUsd).padStart(11),
    (unconfirmedUsd > 0 ? usd(unconfirmedUsd) : '-').padStart(11),
    String(r.lastSeq).padStart(5),
    started,
    ...tail,
  ].join(' ');
}

/** The JSON summary of a finished drive (`--json` of run and resume). */
export function summaryOf(r: RunResult): Record<string, unknown> {
  return {
    runId: r.runId,
    status: r.status,
    costUsd: r.costUsd,
    outputs: r.outputs,
    error: r.error,
    parked: r.parked,
    ...(r.killed !== null ? { killed: r.killed } : {}),
    ...(r.stopped !== undefined ? { stopped: r.stopped } : {}),
    ...(r.holder !== undefined ? { holder: r.holder } : {}),
  };
}

/** What a waiting run waits for, and how to continue it. */
export function waitingText(
  runId: string,
  w: { step: string; signal: string | null; until: number | null },
): string {
  const until = w.until !== null ? ` until ${new Date(w.until).toISOString()}` : '';
  return w.signal !== null
    ? `step '${w.step}' waits for signal '${w.signal}'${until}: plumbline signal ${runId} ${w.signal} --data '{…}'`
    : `step '${w.step}' sleeps${until}: a worker wakes it then`;
}
