/**
 * Listing the JetStream run index a page at a time. The run index is a KV entry per run, and
 * reading every key costs in proportion to the whole index (a million runs: seconds). Two small
 * streams answer pages instead:
 * - `<PREFIX>_RUNLIST`, one message per run on `<prefix>.runlist.<runId>` (at most one per
 *   subject), published as the run is created: its stream order is the order runs were created
 *   in, so a page is a window read backwards from the newest message (or from a cursor run's
 *   own message, found with `last_by_subj`), then the page's index entries are fetched by key.
 *   The message's body names the run's parent (`{"parent":"<runId>"}`, `{}` for a top-level
 *   run), so a page of top-level runs, or of one run's children, fetches no other run's entry;
 *   a body written before that (the bare run id) says nothing, and its entry is fetched.
 * - `<PREFIX>_ACTIVE`, one message per unfinished run on `<prefix>.active.<runId>`, purged when
 *   the run ends: `status: running | parked` reads only the unfinished runs.
 * - KV `<prefix>_parents`, a key per run that has child runs, put before its first child is
 *   listed: `parent: <runId>` (each row of `runs` counts its children) answers "none" with one
 *   get for the many runs without children, instead of reading the list after the run.
 * A new run is listed (and marked unfinished) before its first event is published, so a run
 * whose writer dies as it starts is listed all the same; a writer that dies between listing a
 * run and publishing its first event leaves a listing with no run, which pages leave out. A run
 * is listed once: listing it again (a second start of its id) leaves its place in the list.
 */
import type { JetStreamClient, JetStreamManager } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import type { RunStatus } from '../machines/events.js';
import { kvKey } from './jetstreamIndex.js';
import { isWrongLastSequence, jsErrorCode, type NatsLink } from './natsConnect.js';
import { readRange, type ReadStats } from './natsRead.js';
import { unknownCursor } from './sqliteList.js';
import type { RunFilter, RunSummary } from './types.js';
import { natsJetStream } from './natsLib.js';

const { DiscardPolicy, RetentionPolicy, StorageType } = natsJetStream;

/** Statuses a run can still leave (kept in the active set). */
const UNFINISHED = new Set<RunStatus>(['running', 'parked']);
/** Messages read per window when a filter drops most of a page. */
const MIN_WINDOW = 200;

/** What the list needs from the store around it. */
export interface RunListContext {
  js: JetStreamClient;
  jsm: JetStreamManager;
  link: NatsLink;
  prefix: string;
  replicas: number;
  stats: ReadStats;
  track: (p: Promise<unknown>) => void;
  /** A reader: `ensure`/`parentsMarked` are not called, and stale active entries are left. */
  readOnly?: boolean;
  /** One key per run that has children (see the header). */
  parents: KV;
  /** The index entries of these runs (absent ones left out). */
  summaries: (runIds: string[]) => Promise<Map<string, RunSummary>>;
  /**
   * Runs before an ended run found still listed as unfinished is unlisted (its writer may have
   * died before rolling its costs up: this does it); if it throws, the run stays listed.
   */
  beforeUnlisting?: (runId: string) => Promise<void>;
}

/** The run list of a JetStream store. */
export interface RunList {
  /** Creates the two streams; true when the list stream is new (a store may need a backfill). */
  ensure(): Promise<boolean>;
  /** Lists a new run (and marks it unfinished unless `finished`; its parent as having children). */
  added(runId: string, finished: boolean, parent?: string): Promise<void>;
  /**
   * Says whether every parent is marked: true once `complete` was passed (a new store, or one
   * whose runs were all just listed again); a store that had runs before the marks reads the list.
   */
  parentsMarked(complete: boolean): Promise<void>;
  /** Takes an ended run out of the unfinished set. */
  ended(runId: string): Promise<void>;
  /** One page for `filter`, newest first. */
  page(filter: RunFilter): Promise<RunSummary[]>;
  /** The ids in the unfinished set (a few may have ended since: check their index entries). */
  activeIds(): Promise<string[]>;
}

/** A run list message: the run, and its parent as the message says (see the header). */
interface Listed {
  runId: string;
  seq: number;
  /** `null`: a top-level run; undefined: not said (a message written before the body said it). */
  parent: string | null | undefined;
}

/** The body of a run's list message: its parent, or `{}` for a top-level run. */
export function listBody(parent: string | undefined): string {
  return parent === undefined ? '{}' : JSON.stringify({ parent });
}

/** The parent a list message's body names (null: none); undefined for an older, bare body. */
export function parentOf(body: string): string | null | undefined {
  if (!body.startsWith('{')) return undefined;
  try {
    const p = (JSON.parse(body) as { parent?: unknown }).parent;
    return p === undefined ? null : typeof p === 'string' ? p : undefined;
  } catch {
    return undefined;
  }
}

/** False only when a list message's parent rules the run out of a `parent` filter. */
function mayMatch(listed: string | null | undefined, parent: RunFilter['parent']): boolean {
  if (listed === undefined || parent === undefined) return true;
  return parent === null ? listed === null : listed === parent;
}

/** True when a run passes the filter's `parent` (children of a run, or top-level runs only). */
export function parentMatches(s: RunSummary, f: RunFilter): boolean {
  if (f.parent === undefined) return true;
  return f.parent === null ? s.parent === undefined : s.parent?.runId === f.parent;
}

/** Opens the run list (call `ensure` once before use). */
export function jetstreamRunList(ctx: RunListContext): RunList {
  const { js, jsm, link, prefix } = ctx;
  const LIST = `${prefix.toUpperCase()}_RUNLIST`;
  const ACTIVE = `${prefix.toUpperCase()}_ACTIVE`;
  const listSubject = (runId: string): string => `${prefix}.runlist.${runId}`;
  /** The key saying every parent is marked ('=' alone is no run's key: run ids are never empty). */
  const MARKED = '=';
  /** Undefined until known: a reader looks at its first `parent` page. */
  let marked: boolean | undefined;
  let marking: Promise<boolean> | undefined;
  const readMarked = async (): Promise<boolean> => {
    if (marked !== undefined) return marked;
    // One get however many pages ask at once (a listing asks for each row's children).
    marking ??= link
      .retry(() => ctx.parents.get(MARKED))
      .then((e) => (marked = e?.operation === 'PUT'))
      .finally(() => (marking = undefined));
    return marking;
  };
  /**
   * A reader's last listing from the newest list message down to `lo`, every message naming its
   * parent: it names every child of the runs it listed (children are listed after their parent),
   * so a count of their children (each row of `runs`) reads no parents mark and no list again.
   * Kept by a reader only (a CLI verb: a snapshot as old as the listing).
   */
  let lastListing:
    { lo: number; seqOf: Map<string, number>; kids: Map<string, string[]> } | undefined;
  const activeSubject = (runId: string): string => `${prefix}.active.${runId}`;
  const idOf = (subject: string): string => subject.slice(subject.lastIndexOf('.') + 1);

  const ensureOne = async (name: string, subject: string): Promise<boolean> => {
    try {
      await jsm.streams.info(name);
      return false;
    } catch (e) {
      if (jsErrorCode(e) !== 10059) throw e;
    }
    try {
      await jsm.streams.add({
        name,
        subjects: [subject],
        storage: StorageType.File,
        retention: RetentionPolicy.Limits,
        discard: DiscardPolicy.Old,
        max_msgs_per_subject: 1,
        num_replicas: ctx.replicas,
        allow_direct: true,
      });
      return true;
    } catch (e) {
      if (jsErrorCode(e) === 10058) return false;
      throw e;
    }
  };

  /** The list messages with stream sequence in [lo, hi], newest first. */
  const window = async (lo: number, hi: number): Promise<Listed[]> => {
    const msgs = await link.retry(() =>
      readRange(js, jsm, { stream: LIST, startSeq: lo, limit: hi - lo + 1 }, ctx.stats, ctx.track),
    );
    return msgs
      .filter((m) => m.seq <= hi)
      .map((m) => ({ runId: idOf(m.subject), seq: m.seq, parent: parentOf(m.string()) }))
      .reverse();
  };

  const matches = (s: RunSummary, f: RunFilter): boolean => {
    if (!parentMatches(s, f)) return false;
    const statuses = f.status === undefined ? undefined : [f.status].flat();
    if (statuses !== undefined && !statuses.includes(s.status)) return false;
    if (f.pipeline !== undefined && s.pipeline !== f.pipeline) return false;
    if (f.updatedBefore !== undefined && !(s.updatedAt < f.updatedBefore)) return false;
    return true;
  };

  /**
   * The active set's subjects, from the stream's per-subject state (one request, paged by the
   * client past the server's page size). Not a consumer: the active set has a purged message for
   * every run that ended, and on nats-server 2.9 a consumer over such a stream takes about 0.5 s
   * to create at a million purged messages and counts tens of thousands of them as pending, so
   * a bounded read waited for its fetch to expire (2.5 s for 100 runs) — see BENCHMARKS.md.
   */
  const activeIds = async (): Promise<string[]> => {
    const info = await link.retry(() =>
      jsm.streams.info(ACTIVE, { subjects_filter: `${prefix}.active.*` }),
    );
    return Object.keys(info.state.subjects ?? {}).map(idOf);
  };

  /** Unfinished runs only: the whole (small) active set, ordered as the SQLite store does. */
  const activePage = async (filter: RunFilter): Promise<RunSummary[]> => {
    const found = await ctx.summaries(await activeIds());
    const stale = [...found.values()].filter((s) => !UNFINISHED.has(s.status));
    if (ctx.readOnly !== true)
      for (const s of stale)
        ctx.track(
          Promise.resolve(ctx.beforeUnlisting?.(s.runId))
            .then(() => list.ended(s.runId))
            .catch(() => undefined),
        );
    let rows = [...found.values()]
      .filter((s) => matches(s, filter))
      .sort(
        (a, b) => b.startedAt - a.startedAt || (a.runId < b.runId ? 1 : a.runId > b.runId ? -1 : 0),
      );
    if (filter.after !== undefined) {
      const at = (await ctx.summaries([filter.after])).get(filter.after);
      if (at === undefined) throw unknownCursor(filter.after);
      rows = rows.filter(
        (s) => s.startedAt < at.startedAt || (s.startedAt === at.startedAt && s.runId < at.runId),
      );
    }
    return rows.slice(0, filter.limit ?? rows.length);
  };

  const list: RunList = {
    activeIds,
    async ensure() {
      const [fresh] = await Promise.all([
        ensureOne(LIST, `${prefix}.runlist.*`),
        ensureOne(ACTIVE, `${prefix}.active.*`),
      ]);
      return fresh;
    },
    async parentsMarked(complete) {
      if (complete) await link.retry(() => ctx.parents.put(MARKED, ''));
      marked = undefined;
      await readMarked();
    },
    async added(runId, finished, parent) {
      if (parent !== undefined) await link.retry(() => ctx.parents.put(kvKey(parent), ''));
      await Promise.all([
        // Only if not listed yet: listing a run again would move it to the newest page.
        link
          .retry(() =>
            js.publish(listSubject(runId), listBody(parent), {
              expect: { lastSubjectSequence: 0 },
            }),
          )
          .catch((e: unknown) => {
            if (!isWrongLastSequence(e)) throw e;
          }),
        finished ? undefined : link.retry(() => js.publish(activeSubject(runId), runId)),
      ]);
    },
    async ended(runId) {
      await link.retry(() => jsm.streams.purge(ACTIVE, { filter: activeSubject(runId) }));
    },
    async page(filter) {
      const statuses = filter.status === undefined ? undefined : [filter.status].flat();
      if (statuses !== undefined && statuses.every((s) => UNFINISHED.has(s)))
        return activePage(filter);
      const limit = filter.limit ?? Number.MAX_SAFE_INTEGER;
      // Children are created after their parent: nothing older than its message can be one.
      // A run with no children (no key in the parents bucket) is answered by that one get.
      let floor = 1;
      if (typeof filter.parent === 'string') {
        const parent = filter.parent;
        const at = lastListing?.seqOf.get(parent);
        if (
          lastListing !== undefined &&
          at !== undefined &&
          at >= lastListing.lo &&
          filter.after === undefined
        ) {
          const ids = lastListing.kids.get(parent) ?? [];
          const found = ids.length === 0 ? new Map<string, RunSummary>() : await ctx.summaries(ids);
          return ids
            .flatMap((id) => {
              const s = found.get(id);
              return s !== undefined && matches(s, filter) ? [s] : [];
            })
            .slice(0, limit);
        }
        if (
          (await readMarked()) &&
          (await link.retry(() => ctx.parents.get(kvKey(parent)))) === null
        )
          return [];
        const p = await link.retry(() =>
          jsm.streams.getMessage(LIST, { last_by_subj: listSubject(filter.parent as string) }),
        );
        if (p === null) return [];
        floor = p.seq + 1;
      }
      let hi: number;
      if (filter.after !== undefined) {
        const m = await link.retry(() =>
          jsm.streams.getMessage(LIST, { last_by_subj: listSubject(filter.after as string) }),
        );
        if (m === null) throw unknownCursor(filter.after);
        hi = m.seq - 1;
      } else {
        hi = (await link.retry(() => jsm.streams.info(LIST))).state.last_seq;
      }
      const out: RunSummary[] = [];
      const listing =
        ctx.readOnly === true && filter.after === undefined && typeof filter.parent !== 'string'
          ? { lo: hi + 1, seqOf: new Map<string, number>(), kids: new Map<string, string[]>() }
          : undefined;
      let named = true;
      let width = Math.max(MIN_WINDOW, limit === Number.MAX_SAFE_INTEGER ? MIN_WINDOW : limit + 1);
      while (hi >= floor && out.length < limit) {
        const lo = Math.max(floor, hi - width + 1);
        const read = await window(lo, hi);
        if (listing !== undefined) {
          listing.lo = lo;
          for (const l of read) {
            listing.seqOf.set(l.runId, l.seq);
            if (l.parent === undefined) named = false;
            else if (l.parent !== null) {
              const kids = listing.kids.get(l.parent);
              if (kids === undefined) listing.kids.set(l.parent, [l.runId]);
              else kids.push(l.runId);
            }
          }
        }
        // Runs whose list message names another parent are not fetched: they cannot match.
        const ids = read.filter((l) => mayMatch(l.parent, filter.parent)).map((l) => l.runId);
        const found = await ctx.summaries(ids);
        for (const id of ids) {
          const s = found.get(id);
          if (s !== undefined && matches(s, filter)) out.push(s);
          if (out.length >= limit) break;
        }
        hi = lo - 1;
        // A sparse filter: widen the window (up to 10,000 messages a read).
        width = Math.min(width * 2, 10_000);
      }
      if (listing !== undefined) lastListing = named ? listing : undefined;
      return out;
    },
  };
  return list;
}
