/**
 * The JetStream store's run index: one KV entry per run holding its {@link RunSummary} and
 * where its events sit in the stream (first and last stream sequence, plus a mark every
 * {@link MARK_EVERY} events), so appends know the expectation to publish with and reads start
 * near the events they want instead of scanning the stream.
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { CorruptEventError, UsageError } from '../errors.js';
import { ChildOf, RunStatus, type RunStarted, type StoredEnvelope } from '../machines/events.js';
import { addRunCost, isOutcomeType, type OutcomeFields } from './costRollup.js';
import type { RunSummary } from './types.js';

/** One stream sequence is recorded for every this many events of a run. */
export const MARK_EVERY = 64;

/** The KV value of a run. */
export const IndexEntry = z.object({
  v: z.literal(1),
  summary: z.object({
    runId: z.string(),
    pipeline: z.string(),
    version: z.string(),
    machineHash: z.string(),
    module: z.string().nullable(),
    status: RunStatus,
    step: z.string().nullable(),
    costUsd: z.number(),
    lastSeq: z.number().int().nonnegative(),
    startedAt: z.number(),
    updatedAt: z.number(),
    endedAt: z.number().nullable(),
    /** A child run's place (entries written before child runs have none). */
    parent: ChildOf.optional(),
  }),
  firstStreamSeq: z.number().int().positive(),
  lastStreamSeq: z.number().int().positive(),
  /** `marks[i]` is the stream sequence of the run's event `i * MARK_EVERY + 1`. */
  marks: z.array(z.number().int().positive()),
  /**
   * The run's billed outcomes per (day, model) (see `RunCosts`), kept as its events are indexed
   * so a run's end adds them to the cost rollups without reading its log. Absent in entries
   * written before rollups: unknown, never guessed.
   */
  costs: z.record(z.string(), z.array(z.number())).optional(),
  /** Outcomes at or below this seq are a fork's copies, billed to the run they came from. */
  costFrom: z.number().int().nonnegative().optional(),
  /**
   * The USD of the run's lost calls (unconfirmed `MODEL_ERROR`s, copies included), so `runs`
   * shows it without reading the log. Absent in entries written before it: read the log.
   */
  unconfirmedUsd: z.number().optional(),
});
export type IndexEntry = z.infer<typeof IndexEntry>;

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
