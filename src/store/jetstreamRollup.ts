/**
 * The JetStream store's cost rollups, kept as runs end (as the SQLite store's are), so `cost`
 * reads a few rows instead of folding every log.
 *
 * - Each run's index entry carries its billed outcomes per (day, model) (`IndexEntry.costs`).
 * - When a run ends, its contribution goes to the stream `<PREFIX>_COSTS` on its own subject
 *   `<prefix>.cost.<runId>`, published expecting the subject's last sequence: a run is rolled up
 *   once however many processes handle its end (the loser of the race sees 10071, then finds a
 *   contribution covering its seq and stops). A run that ends again later (more events after
 *   an end) adds only the difference (`delta`) to its previous contribution.
 * - The rows live in one KV key (`<prefix>_costs` / `rollup`) with the journal sequence they
 *   include; readers add the journal's tail after it. Every {@link COMPACT_EVERY}th contribution
 *   its writer folds the tail into the key with a compare-and-set (a lost race is harmless: the
 *   winner folded the same messages), so the tail a reader folds stays short.
 * - A store that had runs before the rollups existed has no key: `read` is undefined and `cost`
 *   folds every log, as it does for an old SQLite store.
 */
import {
  DiscardPolicy,
  RetentionPolicy,
  StorageType,
  type JetStreamClient,
  type JetStreamManager,
} from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import {
  mergeRollupRows,
  ROLLUP_FIELDS,
  runCostRows,
  subtractRunCosts,
  type RunCosts,
} from './costRollup.js';
import type { IndexEntry } from './jetstreamIndex.js';
import { kvCas } from './jetstreamKv.js';
import { isWrongLastSequence, jsErrorCode, type NatsLink } from './natsConnect.js';
import { readRange, type ReadStats } from './natsRead.js';
import type { CostRollup, CostRollupRow } from './types.js';

/** A writer folds the journal's tail into the rollup key at every this many contributions. */
export const COMPACT_EVERY = 64;
const KEY = 'rollup';
/** A run is rolled up when its status is one of these (as SQLite's rollup does). */
const ENDED = new Set(['completed', 'failed', 'killed']);

/** One run's contribution, as published to the journal. */
interface Contribution {
  runId: string;
  pipeline: string;
  /** The run's last seq this contribution covers. */
  lastSeq: number;
  /** The run's costs up to `lastSeq` (the base of its next contribution's delta). */
  cum: RunCosts;
  /** What this contribution adds to the rollup. */
  delta: RunCosts;
}

/** The rollup key's value: rows as compact tuples, and the journal sequence folded into them. */
interface RollupState {
  v: 1;
  seq: number;
  rows: Array<[string, string, string, ...number[]]>;
}

/** What the rollups need from the store around them. */
export interface RollupContext {
  js: JetStreamClient;
  jsm: JetStreamManager;
  link: NatsLink;
  kv: KV;
  prefix: string;
  replicas: number;
  stats: ReadStats;
  track: (p: Promise<unknown>) => void;
  /** Fold the journal's tail into the key at every this many contributions (tests: fewer). */
  compactEvery?: number;
  /** A reader: folds the tail for its answer but does not write the key. */
  readOnly?: boolean;
}

/** The cost rollups of a JetStream store. */
export interface JetStreamRollup {
  /** Creates the journal; marks the rollups complete when the store has no run yet. */
  ensure(storeIsEmpty: () => Promise<boolean>): Promise<void>;
  /** Adds an ended run's costs (idempotent per run and seq; safe from several processes). */
  ended(entry: IndexEntry): Promise<void>;
  /** The rows, plus the unfinished runs' costs so far; undefined for a store older than rollups. */
  read(unfinished: () => Promise<IndexEntry[]>): Promise<CostRollup | undefined>;
  /** Folds the journal's tail into the rollup key; returns the rows (undefined: no rollups). */
  compact(): Promise<CostRollupRow[] | undefined>;
}

const toRows = (s: RollupState): CostRollupRow[] =>
  s.rows.map(([day, pipeline, model, ...c]) => {
    const row = { day, pipeline, model } as CostRollupRow;
    ROLLUP_FIELDS.forEach((f, i) => (row[f] = c[i] ?? 0));
    return row;
  });

const toState = (seq: number, rows: Iterable<CostRollupRow>): RollupState => ({
  v: 1,
  seq,
  rows: [...rows].map((r) => [r.day, r.pipeline, r.model, ...ROLLUP_FIELDS.map((f) => r[f])]),
});

/** Opens the rollups of a store (call `ensure` once before use). */
export function jetstreamRollup(ctx: RollupContext): JetStreamRollup {
  const { js, jsm, link, kv, prefix } = ctx;
  const STREAM = `${prefix.toUpperCase()}_COSTS`;
  const subjectOf = (runId: string): string => `${prefix}.cost.${runId}`;
  const every = ctx.compactEvery ?? COMPACT_EVERY;

  const compact = async (): Promise<CostRollupRow[] | undefined> => {
    const cur = await link.retry(() => kv.get(KEY));
    if (cur === null || cur.operation !== 'PUT') return undefined;
    const state = cur.json<RollupState>();
    const table = new Map<string, CostRollupRow>();
    mergeRollupRows(table, toRows(state));
    // A stream info answers "nothing new" without creating a read consumer.
    const end = (await link.retry(() => jsm.streams.info(STREAM))).state.last_seq;
    const tail =
      end <= state.seq
        ? []
        : await link.retry(() =>
            readRange(js, jsm, { stream: STREAM, startSeq: state.seq + 1 }, ctx.stats, ctx.track),
          );
    for (const m of tail) {
      const c = m.json<Contribution>();
      mergeRollupRows(table, runCostRows(c.pipeline, c.delta));
    }
    const last = tail[tail.length - 1];
    // Best effort: whoever wins the compare-and-set folded the same messages.
    if (last !== undefined && ctx.readOnly !== true)
      await kvCas(link, kv, KEY, toState(last.seq, table.values()), cur.revision).catch(
        () => false,
      );
    return [...table.values()];
  };

  /** The run's latest contribution, if any. */
  const latest = async (runId: string): Promise<{ seq: number; c: Contribution } | undefined> => {
    const m = await link.retry(() =>
      jsm.streams.getMessage(STREAM, { last_by_subj: subjectOf(runId) }),
    );
    return m === null ? undefined : { seq: m.seq, c: m.json<Contribution>() };
  };

  return {
    async ensure(storeIsEmpty) {
      try {
        await jsm.streams.info(STREAM);
      } catch (e) {
        if (jsErrorCode(e) !== 10059) throw e;
        await jsm.streams
          .add({
            name: STREAM,
            subjects: [`${prefix}.cost.*`],
            storage: StorageType.File,
            retention: RetentionPolicy.Limits,
            discard: DiscardPolicy.Old,
            num_replicas: ctx.replicas,
            allow_direct: true,
          })
          .catch((err: unknown) => {
            if (jsErrorCode(err) !== 10058) throw err;
          });
      }
      if ((await link.retry(() => kv.get(KEY))) !== null) return;
      // Complete only if nothing was ever written before the rollups: otherwise `cost` folds.
      if (await storeIsEmpty()) await kvCas(link, kv, KEY, toState(0, []), 0).catch(() => false);
    },

    async ended(entry) {
      const s = entry.summary;
      if (entry.costs === undefined || !ENDED.has(s.status)) return;
      let prev: { seq: number; c: Contribution } | undefined;
      for (let attempt = 0; attempt < 5; attempt++) {
        if (prev !== undefined && prev.c.lastSeq >= s.lastSeq) return;
        const body: Contribution = {
          runId: s.runId,
          pipeline: s.pipeline,
          lastSeq: s.lastSeq,
          cum: entry.costs,
          delta: subtractRunCosts(entry.costs, prev?.c.cum ?? {}),
        };
        try {
          const ack = await link.retry(() =>
            js.publish(subjectOf(s.runId), JSON.stringify(body), {
              msgID: `${s.runId}:${s.lastSeq}`,
              expect: { lastSubjectSequence: prev?.seq ?? 0 },
            }),
          );
          // Folding is cheap and bounded: every `every`th contribution folds the tail.
          if (!ack.duplicate && ack.seq % every === 0) await compact().catch(() => undefined);
          return;
        } catch (e) {
          if (!isWrongLastSequence(e)) throw e;
          prev = await latest(s.runId);
        }
      }
      throw new Error(`run ${s.runId}: its cost contribution kept changing; try again`);
    },

    async read(unfinished) {
      const rows = await compact();
      if (rows === undefined) return undefined;
      const table = new Map<string, CostRollupRow>();
      mergeRollupRows(table, rows);
      // Unfinished runs are not rolled up yet: their costs so far come from their index entries.
      for (const e of await unfinished())
        if (e.costs !== undefined && e.summary.endedAt === null)
          mergeRollupRows(table, runCostRows(e.summary.pipeline, e.costs));
      return { rows: [...table.values()], pending: [] };
    },

    compact,
  };
}
