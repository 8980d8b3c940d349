/**
 * The JetStream store's run index: one KV entry per run holding its {@link RunSummary} and
 * where its events sit in the stream (first and last stream sequence, plus a mark every
 * {@link MARK_EVERY} events), so appends know the expectation to publish with and reads start
 * near the events they want instead of scanning the stream.
 */
import { createHash } from 'node:crypto';
import { CorruptEventError, UsageError } from '../errors.js';
import type { RunStarted, RunStatus, StoredEnvelope } from '../machines/events.js';
import { isRunStatus, RUN_STATUSES } from '../machines/runStatus.js';
import { addRunCost, isOutcomeType, type OutcomeFields } from './costRollup.js';
import type * as SchemaModule from './jetstreamSchemas.js';
import type { RunSummary } from './types.js';

/** One stream sequence is recorded for every this many events of a run. */
export const MARK_EVERY = 64;

/** The KV value of a run. */
export interface IndexEntry {
  v: 1;
  summary: RunSummary;
  firstStreamSeq: number;
  lastStreamSeq: number;
  /** `marks[i]` is the stream sequence of the run's event `i * MARK_EVERY + 1`. */
  marks: number[];
  /**
   * The run's billed outcomes per (day, model) (see `RunCosts`), kept as its events are indexed
   * so a run's end adds them to the cost rollups without reading its log. Absent in entries
   * written before rollups: unknown, never guessed.
   */
  costs?: Record<string, number[]>;
  /** Outcomes at or below this seq are a fork's copies, billed to the run they came from. */
  costFrom?: number;
  /**
   * The USD of the run's lost calls (unconfirmed `MODEL_ERROR`s, copies included), so `runs`
   * shows it without reading the log. Absent in entries written before it: read the log.
   */
  unconfirmedUsd?: number;
}

/**
 * Checks a run index entry read from the KV bucket and returns it with only its known fields,
 * or the problems found (`path: what was expected`). Written by hand, not with zod: `runs` and
 * `cost` read index entries, and loading zod would double the start of those verbs (issue 14).
 * `test/jetstreamIndexEntry.unit.test.ts` checks it field by field.
 */
export function parseIndexEntry(
  raw: unknown,
): { ok: true; entry: IndexEntry } | { ok: false; issues: string } {
  const issues: string[] = [];
  const at = (path: string, expected: string): void =>
    void issues.push(`${path}: expected ${expected}`);
  const obj = (v: unknown): v is Record<string, unknown> =>
    typeof v === 'object' && v !== null && !Array.isArray(v);
  const num = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
  const int = (v: unknown, min: number): v is number =>
    Number.isSafeInteger(v) && (v as number) >= min;
  if (!obj(raw)) return { ok: false, issues: '(entry): expected an object' };
  if (raw.v !== 1) at('v', '1');
  const s = raw.summary;
  let summary: RunSummary | undefined;
  if (!obj(s)) at('summary', 'an object');
  else {
    for (const k of ['runId', 'pipeline', 'version', 'machineHash'] as const)
      if (typeof s[k] !== 'string') at(`summary.${k}`, 'a string');
    for (const k of ['module', 'step'] as const)
      if (s[k] !== null && typeof s[k] !== 'string') at(`summary.${k}`, 'a string or null');
    if (typeof s.status !== 'string' || !isRunStatus(s.status))
      at('summary.status', `one of ${RUN_STATUSES.join(', ')}`);
    for (const k of ['costUsd', 'startedAt', 'updatedAt'] as const)
      if (!num(s[k])) at(`summary.${k}`, 'a number');
    if (!int(s.lastSeq, 0)) at('summary.lastSeq', 'a non-negative integer');
    if (s.endedAt !== null && !num(s.endedAt)) at('summary.endedAt', 'a number or null');
    const p = s.parent;
    if (p !== undefined) {
      if (!obj(p)) at('summary.parent', 'an object');
      else {
        if (typeof p.runId !== 'string') at('summary.parent.runId', 'a string');
        if (typeof p.step !== 'string') at('summary.parent.step', 'a string');
        if (p.part !== null && typeof p.part !== 'string' && !int(p.part, 0))
          at('summary.parent.part', 'a non-negative integer, a string or null');
      }
    }
    if (issues.length === 0) {
      summary = {
        runId: s.runId as string,
        pipeline: s.pipeline as string,
        version: s.version as string,
        machineHash: s.machineHash as string,
        module: s.module as string | null,
        status: s.status as RunStatus,
        step: s.step as string | null,
        costUsd: s.costUsd as number,
        lastSeq: s.lastSeq as number,
        startedAt: s.startedAt as number,
        updatedAt: s.updatedAt as number,
        endedAt: s.endedAt as number | null,
      };
      if (obj(p)) {
        summary.parent = {
          runId: p.runId as string,
          step: p.step as string,
          part: p.part as number | string | null,
        };
      }
    }
  }
  if (!int(raw.firstStreamSeq, 1)) at('firstStreamSeq', 'a positive integer');
  if (!int(raw.lastStreamSeq, 1)) at('lastStreamSeq', 'a positive integer');
  if (!Array.isArray(raw.marks)) at('marks', 'an array');
  else raw.marks.forEach((m, i) => int(m, 1) || at(`marks.${i}`, 'a positive integer'));
  const costs = raw.costs;
  if (costs !== undefined) {
    if (!obj(costs)) at('costs', 'an object');
    else
      for (const [k, a] of Object.entries(costs))
        if (!Array.isArray(a)) at(`costs.${k}`, 'an array');
        else a.forEach((n, i) => num(n) || at(`costs.${k}.${i}`, 'a number'));
  }
  if (raw.costFrom !== undefined && !int(raw.costFrom, 0)) at('costFrom', 'a non-negative integer');
  if (raw.unconfirmedUsd !== undefined && !num(raw.unconfirmedUsd))
    at('unconfirmedUsd', 'a number');
  if (issues.length > 0 || summary === undefined) return { ok: false, issues: issues.join('; ') };
  const entry: IndexEntry = {
    v: 1,
    summary,
    firstStreamSeq: raw.firstStreamSeq as number,
    lastStreamSeq: raw.lastStreamSeq as number,
    marks: raw.marks as number[],
  };
  if (costs !== undefined) entry.costs = costs as Record<string, number[]>;
  if (raw.costFrom !== undefined) entry.costFrom = raw.costFrom as number;
  if (raw.unconfirmedUsd !== undefined) entry.unconfirmedUsd = raw.unconfirmedUsd as number;
  return { ok: true, entry };
}

/** An event read from (or just written to) the stream, with its stream sequence. */
export interface Located {
  env: StoredEnvelope;
  streamSeq: number;
}

const TERMINAL = new Set<RunStatus>(['completed', 'failed', 'killed']);
const RUN_ID = /^[^\s.*>]{1,200}$/;
const PLAIN_KEY = /^[A-Za-z0-9_-]+$/;

/** Refuses a run id that cannot be a NATS subject token. */
export function checkRunId(runId: string): void {
  if (!RUN_ID.test(runId)) {
    throw new UsageError(
      `run id ${JSON.stringify(runId)} cannot be used with the JetStream store: a run id becomes a NATS subject token, so it must be 1–200 characters with no whitespace, '.', '*' or '>'`,
    );
  }
}

/**
 * A KV key for any string: plain ids as they are, anything else as `=` + base64url (KV keys
 * allow only `[-/_=.A-Za-z0-9]`; plain ids never contain `=`, so the two never collide).
 */
export function kvKey(id: string): string {
  return PLAIN_KEY.test(id) ? id : `=${Buffer.from(id, 'utf8').toString('base64url')}`;
}

/** The inverse of {@link kvKey}. */
export function fromKvKey(key: string): string {
  return key.startsWith('=') ? Buffer.from(key.slice(1), 'base64url').toString('utf8') : key;
}

/** A fixed-length KV key for a tuple of strings (effect ledger: runId, step, key). */
export function hashKey(parts: string[]): string {
  return createHash('sha256').update(JSON.stringify(parts)).digest('hex');
}

/** Folds events (in order, contiguous) into a run's index entry. */
export function foldIndex(
  runId: string,
  entry: IndexEntry | undefined,
  events: Located[],
): IndexEntry {
  let next: IndexEntry | undefined =
    entry === undefined
      ? undefined
      : {
          ...entry,
          summary: { ...entry.summary },
          marks: [...entry.marks],
          ...(entry.costs !== undefined ? { costs: { ...entry.costs } } : {}),
        };
  for (const { env, streamSeq } of events) {
    if (next === undefined) {
      if (env.seq !== 1 || env.event.type !== 'run.started') {
        throw new CorruptEventError(
          runId,
          env.seq,
          'the run has no index entry and its first stored event is not run.started with seq 1',
        );
      }
      const s = env.event as RunStarted;
      next = {
        v: 1,
        summary: {
          runId,
          pipeline: s.pipeline,
          version: s.version,
          machineHash: s.machineHash,
          module: s.module,
          status: env.state.status,
          step: env.state.step,
          costUsd: env.state.costUsd,
          lastSeq: 0,
          startedAt: env.at,
          updatedAt: env.at,
          endedAt: null,
          ...(s.parent !== undefined ? { parent: s.parent } : {}),
        },
        firstStreamSeq: streamSeq,
        lastStreamSeq: streamSeq,
        marks: [],
        costs: {},
        costFrom: s.forkedFrom?.seq ?? 0,
        unconfirmedUsd: 0,
      };
    } else if (env.seq !== next.summary.lastSeq + 1 || streamSeq <= next.lastStreamSeq) {
      throw new CorruptEventError(
        runId,
        env.seq,
        `expected seq ${next.summary.lastSeq + 1} after stream position ${next.lastStreamSeq}, found stream position ${streamSeq}`,
      );
    }
    const sum = next.summary;
    sum.lastSeq = env.seq;
    sum.status = env.state.status;
    sum.step = env.state.step;
    sum.costUsd = env.state.costUsd;
    sum.updatedAt = env.at;
    if (sum.endedAt === null && TERMINAL.has(env.state.status)) sum.endedAt = env.at;
    next.lastStreamSeq = streamSeq;
    if ((env.seq - 1) % MARK_EVERY === 0) next.marks[(env.seq - 1) / MARK_EVERY] = streamSeq;
    const ev = env.event as { type: string; unconfirmed?: boolean; costUsd?: number };
    if (next.unconfirmedUsd !== undefined && ev.type === 'MODEL_ERROR' && ev.unconfirmed === true)
      next.unconfirmedUsd += ev.costUsd ?? 0;
    if (next.costs !== undefined && isOutcomeType(env.event.type) && env.seq > (next.costFrom ?? 0))
      addRunCost(
        next.costs,
        env.at,
        env.event as unknown as OutcomeFields,
        env.event.type === 'MODEL_ERROR',
      );
  }
  if (next === undefined) throw new Error('foldIndex needs at least one event');
  return next;
}

/** The lowest stream sequence at which the run's event `fromSeq` can be. */
export function startFor(entry: IndexEntry, fromSeq: number): number {
  if (fromSeq <= 1) return entry.firstStreamSeq;
  const k = Math.min(Math.floor((fromSeq - 1) / MARK_EVERY), entry.marks.length - 1);
  const mark = k >= 0 ? (entry.marks[k] ?? entry.firstStreamSeq) : entry.firstStreamSeq;
  const markSeq = k >= 0 ? k * MARK_EVERY + 1 : 1;
  // Events take distinct, increasing stream sequences: event n is at least (n - m) past event m.
  return Math.max(mark + (fromSeq - markSeq), entry.firstStreamSeq + fromSeq - 1);
}

/** The summary as the port returns it. */
export function toSummary(entry: IndexEntry): RunSummary {
  return { ...entry.summary };
}

/** The JetStream store's zod schemas (see jetstreamSchemas.ts). */
export type JsSchemas = typeof SchemaModule;
let schemas: JsSchemas | undefined;

/** The JetStream store's zod schemas, loaded at the first call (a read verb never needs them). */
export async function jsSchemas(): Promise<JsSchemas> {
  return (schemas ??= await import('./jetstreamSchemas.js'));
}
