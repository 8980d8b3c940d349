/**
 * The chaos benchmark's audit, after every run is terminal: each run's log (contiguous seqs,
 * a fold that reproduces every recorded state, an unbroken hash chain), each effect execution
 * against the kills of the process that ran it before, and each request the fake Claude
 * received against the calls the log recorded for that run and step.
 */
import { checkChain } from '../../src/machines/chain.js';
import { statusOf } from '../../src/machines/fold.js';
import { foldLog } from '../../src/machines/replay.js';
import type { Prepared } from '../../src/runtime/prepare.js';
import type { StoredEnvelope } from '../../src/machines/events.js';

/** One line of the sink's executions.log: `<key> <pid> <ms>`. */
export interface Execution {
  key: string;
  pid: number;
  at: number;
}

/** A SIGKILL the benchmark sent. */
export interface Kill {
  what: 'worker' | 'server';
  name: string;
  pid: number;
  at: number;
  /** Runs the killed worker had touched that were not terminal just before the kill. */
  orphaned?: number;
}

/** One `/v1/messages` request at the fake: the run and step its prompt names, when it came. */
export interface FakeCall {
  runId: string;
  step: string;
  at: number;
}

/** What the audit found for one run's log. */
export interface RunAudit {
  runId: string;
  events: number;
  status: string;
  problems: string[];
  /** Per step: ATTEMPT, MODEL_RESPONSE, MODEL_ERROR recorded, MODEL_ERROR lost (unconfirmed). */
  calls: Map<string, { attempts: number; responses: number; errors: number; lost: number }>;
  effectsDone: number;
  effectsStarted: number;
  effectsFailed: number;
  replayedDone: number;
}

/** Audits one run's log. */
export function auditRun(prepared: Prepared, runId: string, log: StoredEnvelope[]): RunAudit {
  const a: RunAudit = {
    runId,
    events: log.length,
    status: 'missing',
    problems: [],
    calls: new Map(),
    effectsDone: 0,
    effectsStarted: 0,
    effectsFailed: 0,
    replayedDone: 0,
  };
  if (log.length === 0) {
    a.problems.push('no events');
    return a;
  }
  const gap = log.findIndex((e, i) => e.seq !== i + 1);
  if (gap >= 0) a.problems.push(`seq ${log[gap]?.seq} at position ${gap + 1}: not contiguous`);
  try {
    a.status = statusOf(foldLog(prepared.machine, prepared.hash, runId, log).snapshot);
  } catch (e) {
    a.status = log[log.length - 1]?.state.status ?? 'unknown';
    a.problems.push(`fold failed: ${(e as Error).message}`);
  }
  const chain = checkChain(log);
  if (!chain.ok) a.problems.push(`hash chain broken at seq ${chain.seq}: ${chain.reason}`);
  for (const { event: ev } of log) {
    if (ev.type === 'EFFECT_DONE') {
      a.effectsDone++;
      if (ev.replayed) a.replayedDone++;
    } else if (ev.type === 'EFFECT_STARTED') a.effectsStarted++;
    else if (ev.type === 'EFFECT_FAILED') a.effectsFailed++;
    if (ev.type !== 'ATTEMPT' && ev.type !== 'MODEL_RESPONSE' && ev.type !== 'MODEL_ERROR')
      continue;
    const c = a.calls.get(ev.step) ?? { attempts: 0, responses: 0, errors: 0, lost: 0 };
    if (ev.type === 'ATTEMPT') c.attempts++;
    else if (ev.type === 'MODEL_RESPONSE') c.responses++;
    else if (ev.unconfirmed === true || ev.kind === 'lost') c.lost++;
    else c.errors++;
    a.calls.set(ev.step, c);
  }
  return a;
}

/** Parses executions.log lines (`<key> <pid> <ms>`). */
export function parseExecutions(text: string): Execution[] {
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => {
      const [key = '', pid = '0', at = '0'] = l.split(' ');
      return { key, pid: Number(pid), at: Number(at) };
    });
}

/** An effect execution after an earlier one of the same key, and why it may have happened. */
export interface Extra {
  key: string;
  /** `worker-killed`: the earlier executor was SIGKILLed between its execution and this one. */
  cause: 'worker-killed' | 'across-server-kill' | 'live-duplicate';
  previous: Execution;
  execution: Execution;
}

/**
 * Classifies each re-execution: allowed when the process that ran the key before was
 * SIGKILLed after running it and before this execution (it could not record it); across a
 * server kill otherwise if the server was killed in between; else a duplicate between live
 * processes.
 */
export function classifyExtras(execs: Execution[], kills: Kill[]): Extra[] {
  const byKey = new Map<string, Execution[]>();
  for (const e of execs) byKey.set(e.key, [...(byKey.get(e.key) ?? []), e]);
  const out: Extra[] = [];
  for (const [key, list] of byKey) {
    list.sort((x, y) => x.at - y.at);
    for (let i = 1; i < list.length; i++) {
      const prev = list[i - 1] as Execution;
      const cur = list[i] as Execution;
      const killed = kills.some(
        (k) => k.what === 'worker' && k.pid === prev.pid && k.at >= prev.at && k.at <= cur.at,
      );
      const server = kills.some((k) => k.what === 'server' && k.at >= prev.at && k.at <= cur.at);
      const cause = killed ? 'worker-killed' : server ? 'across-server-kill' : 'live-duplicate';
      out.push({ key, cause, previous: prev, execution: cur });
    }
  }
  return out;
}

/** A (run, step) whose requests at the fake the log does not account for. */
export interface CallMismatch {
  runId: string;
  step: string;
  requests: number;
  attempts: number;
  responses: number;
  errors: number;
  lost: number;
  /** Requests beyond recorded outcomes + lost calls (> 0: a request nobody recorded). */
  unaccounted: number;
  /** Recorded outcomes beyond the requests (> 0: an outcome with no request). */
  phantom: number;
  requestTimes: number[];
}

/** Totals of the request accounting. */
export interface CallTotals {
  requests: number;
  attempts: number;
  responses: number;
  errors: number;
  lost: number;
  /** Lost calls the fake never received (the process died before sending). */
  lostUnsent: number;
  mismatches: CallMismatch[];
}

/**
 * For each (run, step): recorded outcomes (MODEL_RESPONSE + MODEL_ERROR) ≤ requests ≤ recorded
 * outcomes + lost calls (MODEL_ERROR unconfirmed) — anything else is a mismatch.
 */
export function accountCalls(audits: RunAudit[], calls: FakeCall[]): CallTotals {
  const req = new Map<string, number[]>();
  for (const c of calls) {
    const k = `${c.runId}\u0000${c.step}`;
    req.set(k, [...(req.get(k) ?? []), c.at]);
  }
  const t: CallTotals = {
    requests: calls.length,
    attempts: 0,
    responses: 0,
    errors: 0,
    lost: 0,
    lostUnsent: 0,
    mismatches: [],
  };
  const seen = new Set<string>();
  for (const a of audits) {
    for (const [step, c] of a.calls) {
      const k = `${a.runId}\u0000${step}`;
      seen.add(k);
      const times = req.get(k) ?? [];
      t.attempts += c.attempts;
      t.responses += c.responses;
      t.errors += c.errors;
      t.lost += c.lost;
      const confirmed = c.responses + c.errors;
      const unaccounted = Math.max(0, times.length - confirmed - c.lost);
      const phantom = Math.max(0, confirmed - times.length);
      t.lostUnsent += Math.max(0, Math.min(c.lost, confirmed + c.lost - times.length));
      if (unaccounted > 0 || phantom > 0)
        t.mismatches.push({
          runId: a.runId,
          step,
          requests: times.length,
          ...c,
          unaccounted,
          phantom,
          requestTimes: times,
        });
    }
  }
  for (const [k, times] of req) {
    if (seen.has(k)) continue;
    const [runId = '', step = ''] = k.split('\u0000');
    t.mismatches.push({
      runId,
      step,
      requests: times.length,
      attempts: 0,
      responses: 0,
      errors: 0,
      lost: 0,
      unaccounted: times.length,
      phantom: 0,
      requestTimes: times,
    });
  }
  return t;
}
