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
 * - The rows live in KV `<prefix>_costs`, one key per day (`day.<YYYY-MM-DD>`: that day's rows
 *   and the journal sequence folded into it), so no value outgrows a NATS message however many
 *   days a store holds; the key `head` says up to which journal sequence every day key is
 *   complete. Readers add the journal's tail after `head`, each contribution to a day only if
 *   it is newer than that day's key. Every {@link COMPACT_EVERY}th contribution its writer folds
 *   the tail into the day keys it touches, then moves `head` (compare-and-set each: a lost race
 *   is harmless, a day key never takes a contribution it already has), so the tail stays short.
 * - Stores written before the day keys have one key `rollup` with every row: it is still read,
 *   and the first writer to fold the tail copies it into day keys (the old key is left as it
 *   is, so an older plumbline still reads right totals from it and its tail).
 * - A store that had runs before the rollups existed has no key: `read` is undefined and `cost`
 *   folds every log, as it does for an old SQLite store.
 * - `read` answers as of one journal sequence: the contributions up to it, plus what the runs
 *   still listed as unfinished add (a run that has just ended, its contribution not published or
 *   not read yet, counts from its index entry), plus the later contributions of runs no longer
 *   listed. A run that ends while `cost` reads is counted once, not dropped.
 */
import type { JetStreamClient, JetStreamManager } from '@nats-io/jetstream';
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
import { natsJetStream } from './natsLib.js';

const { DiscardPolicy, RetentionPolicy, StorageType } = natsJetStream;

/** A writer folds the journal's tail into the rollup key at every this many contributions. */
export const COMPACT_EVERY = 64;
/** The single key of stores written before the day keys (v1: every row). */
const KEY = 'rollup';
/** Up to which journal sequence every day key is complete. */
const HEAD = 'head';
const dayKey = (day: string): string => `day.${day}`;
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

/** One day key's value: that day's rows (pipeline, model, fields) and its journal sequence. */
interface DayState {
  v: 2;
  seq: number;
  rows: Array<[string, string, ...number[]]>;
}

/** The journal's contributions after a sequence, each with its journal sequence and its rows. */
type Tail = Array<{ seq: number; c: Contribution; rows: CostRollupRow[] }>;

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
  /** Folds the journal's tail into the day keys; returns every row (undefined: no rollups). */
  compact(): Promise<CostRollupRow[] | undefined>;
}

const toRows = (s: RollupState): CostRollupRow[] =>
  s.rows.map(([day, pipeline, model, ...c]) => {
    const row = { day, pipeline, model } as CostRollupRow;
    ROLLUP_FIELDS.forEach((f, i) => (row[f] = c[i] ?? 0));
    return row;
  });

const dayRows = (day: string, s: DayState): CostRollupRow[] =>
  s.rows.map(([pipeline, model, ...c]) => {
    const row = { day, pipeline, model } as CostRollupRow;
    ROLLUP_FIELDS.forEach((f, i) => (row[f] = c[i] ?? 0));
    return row;
  });

const toDay = (seq: number, rows: Iterable<CostRollupRow>): DayState => ({
  v: 2,
  seq,
  rows: [...rows].map((r) => [r.pipeline, r.model, ...ROLLUP_FIELDS.map((f) => r[f])]),
});

/** Rows by day. */
const byDay = (rows: Iterable<CostRollupRow>): Map<string, CostRollupRow[]> => {
  const out = new Map<string, CostRollupRow[]>();
  for (const r of rows) out.set(r.day, [...(out.get(r.day) ?? []), r]);
  return out;
};

/** Opens the rollups of a store (call `ensure` once before use). */
export function jetstreamRollup(ctx: RollupContext): JetStreamRollup {
  const { js, jsm, link, kv, prefix } = ctx;
  const STREAM = `${prefix.toUpperCase()}_COSTS`;
  const BUCKET = `${prefix}_costs`;
  const subjectOf = (runId: string): string => `${prefix}.cost.${runId}`;
  const every = ctx.compactEvery ?? COMPACT_EVERY;

  /** A key's JSON value and revision (undefined when absent or deleted). */
  const getKey = async <T>(key: string): Promise<{ value: T; revision: number } | undefined> => {
    const e = await link.retry(() => kv.get(key));
    return e === null || e.operation !== 'PUT'
      ? undefined
      : { value: e.json<T>(), revision: e.revision };
  };

  /** The journal's contributions after `seq`, as rows. */
  const readTail = async (seq: number): Promise<Tail> => {
    // A stream info answers "nothing new" without creating a read consumer.
    const end = (await link.retry(() => jsm.streams.info(STREAM))).state.last_seq;
    if (end <= seq) return [];
    const msgs = await link.retry(() =>
      readRange(js, jsm, { stream: STREAM, startSeq: seq + 1 }, ctx.stats, ctx.track),
    );
    return msgs.map((m) => {
      const c = m.json<Contribution>();
      return { seq: m.seq, c, rows: runCostRows(c.pipeline, c.delta) };
    });
  };

  /**
   * Sets a day key to its rows plus the tail's contributions to that day newer than the key,
   * complete up to `seq` (compare-and-set, retried; a key already at `seq` or later is left).
   */
  const foldDay = async (day: string, seq: number, tail: Tail): Promise<void> => {
    for (let attempt = 0; attempt < 10; attempt++) {
      const cur = await getKey<DayState>(dayKey(day));
      if (cur !== undefined && cur.value.seq >= seq) return;
      const table = new Map<string, CostRollupRow>();
      if (cur !== undefined) mergeRollupRows(table, dayRows(day, cur.value));
      const after = cur?.value.seq ?? -1;
      for (const t of tail)
        if (t.seq > after)
          mergeRollupRows(
            table,
            t.rows.filter((r) => r.day === day),
          );
      if (await kvCas(link, kv, dayKey(day), toDay(seq, table.values()), cur?.revision ?? 0))
        return;
    }
    throw new Error(`cost rollup of ${day}: its key kept changing; try again`);
  };

  /** Moves `head` to `seq` unless it is there already. */
  const advanceHead = async (seq: number): Promise<void> => {
    for (let attempt = 0; attempt < 10; attempt++) {
      const cur = await getKey<{ seq: number }>(HEAD);
      if (cur !== undefined && cur.value.seq >= seq) return;
      if (await kvCas(link, kv, HEAD, { v: 2, seq }, cur?.revision ?? 0)) return;
    }
  };

  /**
   * A store written before the day keys: copies its one key into day keys, then creates `head`.
   * A copy that died half way is redone from the key (a day key older than it is replaced).
   */
  const migrate = async (old: RollupState): Promise<void> => {
    for (const [day, rows] of byDay(toRows(old))) {
      for (let attempt = 0; ; attempt++) {
        const cur = await getKey<DayState>(dayKey(day));
        if (cur !== undefined && cur.value.seq >= old.seq) break;
        if (await kvCas(link, kv, dayKey(day), toDay(old.seq, rows), cur?.revision ?? 0)) break;
        if (attempt >= 10) throw new Error(`cost rollup of ${day}: its key kept changing`);
      }
    }
    await advanceHead(old.seq);
  };

  /** Folds the journal's tail into the day keys, then moves `head` (writers only). */
  const fold = async (): Promise<void> => {
    let head = await getKey<{ seq: number }>(HEAD);
    if (head === undefined) {
      const old = await getKey<RollupState>(KEY);
      if (old === undefined) return;
      await migrate(old.value);
      head = await getKey<{ seq: number }>(HEAD);
      if (head === undefined) return;
    }
    const tail = await readTail(head.value.seq);
    const last = tail[tail.length - 1];
    if (last === undefined) return;
    const days = new Set(tail.flatMap((t) => t.rows.map((r) => r.day)));
    await Promise.all([...days].map((d) => foldDay(d, last.seq, tail)));
    await advanceHead(last.seq);
  };

  /**
   * Every row: the day keys plus the tail after `head` (or the one old key plus its tail). With
   * `upTo`, only the contributions up to that journal sequence: `beyond` says a key already
   * holds later ones (folded meanwhile), so the rows are not those of `upTo`.
   */
  const readRows = async (
    upTo = Number.POSITIVE_INFINITY,
  ): Promise<{ rows: CostRollupRow[]; beyond: boolean } | undefined> => {
    const table = new Map<string, CostRollupRow>();
    const head = await getKey<{ seq: number }>(HEAD);
    if (head === undefined) {
      const old = await getKey<RollupState>(KEY);
      if (old === undefined) return undefined;
      mergeRollupRows(table, toRows(old.value));
      for (const t of await readTail(old.value.seq))
        if (t.seq <= upTo) mergeRollupRows(table, t.rows);
      return { rows: [...table.values()], beyond: old.value.seq > upTo };
    }
    // Read after `head`: every contribution up to it is in a day key that exists by then.
    const [info, tail] = await Promise.all([
      link.retry(() =>
        jsm.streams.info(`KV_${BUCKET}`, { subjects_filter: `$KV.${BUCKET}.${dayKey('*')}` }),
      ),
      readTail(head.value.seq),
    ]);
    const days = Object.keys(info.state.subjects ?? {}).map((s) => s.slice(s.lastIndexOf('.') + 1));
    const keys = await Promise.all(days.map((d) => getKey<DayState>(dayKey(d))));
    const folded = new Map<string, number>();
    let beyond = head.value.seq > upTo;
    days.forEach((d, i) => {
      const k = keys[i];
      if (k === undefined) return;
      folded.set(d, k.value.seq);
      if (k.value.seq > upTo) beyond = true;
      mergeRollupRows(table, dayRows(d, k.value));
    });
    // A contribution counts for a day only if that day's key does not include it yet.
    for (const t of tail)
      if (t.seq <= upTo)
        mergeRollupRows(
          table,
          t.rows.filter((r) => t.seq > (folded.get(r.day) ?? -1)),
        );
    return { rows: [...table.values()], beyond };
  };

  const compact = async (): Promise<CostRollupRow[] | undefined> => {
    if (ctx.readOnly !== true) await fold();
    return (await readRows())?.rows;
  };

  /** The journal's last sequence. */
  const lastSeq = async (): Promise<number> =>
    (await link.retry(() => jsm.streams.info(STREAM))).state.last_seq;

  /** The run's latest contribution, if any. */
  const latest = async (runId: string): Promise<{ seq: number; c: Contribution } | undefined> => {
    const m = await link.retry(() =>
      jsm.streams.getMessage(STREAM, { last_by_subj: subjectOf(runId) }),
    );
    return m === null ? undefined : { seq: m.seq, c: m.json<Contribution>() };
  };

  /**
   * A run's costs as its contributions up to journal sequence `upTo` add them (the cumulative
   * costs before its first contribution after `upTo`, else its latest one's).
   */
  const contributedBy = async (runId: string, upTo: number, late: Tail): Promise<RunCosts> => {
    const next = late.find((t) => t.c.runId === runId) ?? (await latest(runId));
    if (next === undefined) return {};
    return next.seq <= upTo ? next.c.cum : subtractRunCosts(next.c.cum, next.c.delta);
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
      if ((await getKey(HEAD)) !== undefined || (await getKey(KEY)) !== undefined) return;
      // Complete only if nothing was ever written before the rollups: otherwise `cost` folds.
      if (await storeIsEmpty()) await kvCas(link, kv, HEAD, { v: 2, seq: 0 }, 0).catch(() => false);
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
          if (!ack.duplicate && ack.seq % every === 0) await fold().catch(() => undefined);
          return;
        } catch (e) {
          if (!isWrongLastSequence(e)) throw e;
          prev = await latest(s.runId);
        }
      }
      throw new Error(`run ${s.runId}: its cost contribution kept changing; try again`);
    },

    async read(unfinished) {
      // One moment of the journal, `upTo`: the rows of the contributions up to it, and what the
      // runs still listed as unfinished add. Read apart, a run that ends between the two reads
      // would be in neither (its index entry already ended, its contribution not read).
      if (ctx.readOnly !== true) await fold();
      for (let attempt = 0; ; attempt++) {
        let upTo = await lastSeq();
        const entries = await unfinished();
        let read = await readRows(upTo);
        if (read === undefined) return undefined;
        if (read.beyond) {
          // A writer folded later contributions into a key meanwhile: read again (a few times),
          // then take every row there is (a run that ends meanwhile may then count twice in this
          // one answer).
          if (attempt < 4) continue;
          upTo = Number.POSITIVE_INFINITY;
          read = (await readRows()) ?? read;
        }
        const table = new Map<string, CostRollupRow>();
        mergeRollupRows(table, read.rows);
        // Contributions after `upTo`: of runs not among the entries (ended and unlisted
        // meanwhile) they count here; the entries' own are counted from the entries.
        const late = Number.isFinite(upTo)
          ? (await readTail(upTo)).filter((t) => t.seq > upTo)
          : [];
        const counted = new Set(entries.map((e) => e.summary.runId));
        for (const t of late) if (!counted.has(t.c.runId)) mergeRollupRows(table, t.rows);
        for (const e of entries) {
          if (e.costs === undefined) continue;
          const s = e.summary;
          if (s.endedAt === null) {
            // Unfinished: its costs so far, from its index entry.
            mergeRollupRows(table, runCostRows(s.pipeline, e.costs));
          } else if (ENDED.has(s.status)) {
            // Ended but still listed: what its contributions up to `upTo` did not add yet.
            const included = await contributedBy(s.runId, upTo, late);
            mergeRollupRows(table, runCostRows(s.pipeline, subtractRunCosts(e.costs, included)));
          }
        }
        return { rows: [...table.values()], pending: [] };
      }
    },

    compact,
  };
}
