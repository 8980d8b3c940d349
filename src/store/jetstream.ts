/**
 * The clustered store: NATS JetStream. One stream `<PREFIX>_EVENTS` holds every run's events,
 * one subject per run (`<prefix>.run.<runId>.ev`); KV buckets hold the run index, snapshots,
 * the effect ledger, kill flags and breakers.
 *
 * Expected version ↔ stream sequence: the port speaks per-run seqs (1, 2, 3 …) but JetStream's
 * optimistic check (`expect.lastSubjectSequence`) takes the *stream* sequence of the subject's
 * last message. The run index (KV `<prefix>_runs`) maps one to the other: it records the stream
 * sequence of the run's last event. An append whose expectation matches the index publishes
 * with that stream sequence; the server refuses it (10071) if anyone appended since, which is
 * exactly a version conflict. When the index lags the log (a writer died between publishing
 * and updating it), the append asks the stream itself (`last_by_subj` direct get) and the
 * index catches up afterwards. Reads start at the run's first event (or a mark near `fromSeq`)
 * with a consumer filtered on the run's subject, so they never scan the whole stream.
 * An append returns once its events are acked; the index follows it in a per-run queue
 * (`jetstreamIndexQueue.ts`), except at a run's start and end, which wait for the index. What
 * is written when: the start, the end and every change of the run's status (running, parked,
 * waiting …) at once; the middle appends that leave the status as it was are held and
 * coalesced with the run's next update, or written when `indexDelayMs` (1 s) passes, so
 * another process may see a running run's step and seq up to that delay behind its log (never
 * its status). Readers in this process and `close` write held updates first. A crash while an
 * update is held leaves the index behind the stream, as a crash between a publish and its
 * index update always could: appends then ask the stream, reads catch the index up.
 * The effect ledger, kill flags and breakers live in `jetstreamKv.ts`.
 *
 * Batches: NATS 2.9 has no atomic batch publish. A multi-event append publishes the events
 * one by one, each expecting the previous one; a crash in the middle leaves a prefix of the
 * batch in the log (every event is self-contained, so the run stays foldable), and the index
 * catches up on the next append or read of that run.
 *
 * Large events: an encoded envelope over `largePayloadBytes` (512 KiB) would not fit in a NATS
 * message; it goes to the object store and the log keeps a reference (`jetstreamBlobs.ts`).
 */
import type { JetStreamClient, JetStreamManager, MsgRequest, StoredMsg } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import type { MsgHdrs, NatsConnection } from '@nats-io/transport-node';
import { CorruptEventError, UsageError, VersionConflictError } from '../errors.js';
import type { NewEnvelope, RunStarted, StoredEnvelope } from '../machines/events.js';
import {
  checkRunId,
  foldIndex,
  jsSchemas,
  kvKey,
  parseIndexEntry,
  type IndexEntry,
  type JsSchemas,
  startFor,
  toSummary,
  type Located,
} from './jetstreamIndex.js';
import {
  isWrongLastSequence,
  jsErrorCode,
  openNatsLink,
  type NatsConnectOptions,
} from './natsConnect.js';
import { BLOB_HEADER, jetstreamBlobs } from './jetstreamBlobs.js';
import { kvDefinitions } from './jetstreamDefinitions.js';
import { indexQueue, type Head } from './jetstreamIndexQueue.js';
import { kvKillScan } from './jetstreamKills.js';
import { kvCasRevision, kvControl } from './jetstreamKv.js';
import { kvLeases } from './jetstreamLeases.js';
import { jetstreamRunList, parentMatches } from './jetstreamList.js';
import { kvPools } from './jetstreamPools.js';
import { kvRateLimits } from './jetstreamRateLimits.js';
import { jetstreamRollup } from './jetstreamRollup.js';
import { kvWaits } from './jetstreamWaits.js';
import { guardReads, lazyBucket, type ReadOnlyContext } from './jetstreamReadOnly.js';
import { readRange, type ReadStats } from './natsRead.js';
import type {
  EventLog,
  ExpectedVersion,
  PositionedEnvelope,
  RunFilter,
  RunSummary,
  SavedSnapshot,
  Store,
} from './types.js';
import { natsCore, natsJetStream, natsKv } from './natsLib.js';

const { jetstream, jetstreamManager, DiscardPolicy, RetentionPolicy, StorageType } = natsJetStream;
const { Kvm } = natsKv;
const { headers, nanos, nuid } = natsCore;

/** Options of {@link openJetStreamStore}. */
export interface JetStreamStoreOptions extends NatsConnectOptions {
  /** Stream and bucket replicas (default 1; 3 in a 3-node cluster). */
  replicas?: number;
  /** Names everything: stream `<PREFIX>_EVENTS`, subjects `<prefix>.run.*.ev`, buckets `<prefix>_*`. */
  prefix?: string;
  /** How long one JetStream request waits for its answer (default 5 s). */
  timeoutMs?: number;
  /**
   * Encoded events larger than this many bytes are stored in the object store bucket
   * `<prefix>_blobs` and referenced from the log (default 512 KiB; clamped below the server's
   * max payload).
   */
  largePayloadBytes?: number;
  /**
   * Check every appended envelope against the schema (default false: the runtime builds them
   * itself, and reads always check). Tests turn it on to catch a malformed envelope at the port.
   */
  validateAppends?: boolean;
  /** Fold the cost journal into the rollup key at every this many run ends (default 64). */
  rollupCompactEvery?: number;
  /**
   * How long a run's index update may wait to be coalesced with its next ones, when its append
   * neither starts nor ends the run nor changes its status (default 1,000 ms; 0: every append's
   * update is written at once). Another process may see a running run's progress (step, seq,
   * cost) up to this much behind its log; its status and its start and end are never held.
   */
  indexDelayMs?: number;
  /**
   * Open for reading only (the CLI's `runs` and `cost`): nothing is checked or created at open;
   * each bucket is bound on its first use, nothing is written (no index catch-up, no rollup
   * compaction, no active-set cleanup), and a store that is not there gives a
   * StoreNotFoundError naming the fix. Appends are not for such a store.
   */
  readOnly?: boolean;
}

/** The JetStream store, with read counters for tests and metrics. */
export interface JetStreamStore extends Store {
  readonly kind: 'jetstream';
  /** How many read consumers were created and messages delivered, and the last range read. */
  readonly stats: ReadStats;
  readonly connection: NatsConnection;
}

const WRITER = 'Plumbline-Writer';
const FIRST = 'Plumbline-First';
const MSG_ID = 'Nats-Msg-Id';
const PREFIX = /^[A-Za-z0-9_-]{1,32}$/;
const READ_CONSUMER_TIMEOUT_MS = 2_000;
/** After a read consumer failed, runs are read from the stream leader alone for this long. */
const CONSUMER_BACKOFF_MS = 10_000;

const TERMINAL_STATUSES = new Set<string>(['completed', 'failed', 'killed']);

/** Creates the events stream, or checks and fixes the one that is there. */
async function ensureStream(
  jsm: JetStreamManager,
  name: string,
  subject: string,
  replicas: number,
): Promise<void> {
  const cfg = {
    name,
    subjects: [subject],
    storage: StorageType.File,
    retention: RetentionPolicy.Limits,
    discard: DiscardPolicy.Old,
    num_replicas: replicas,
    allow_direct: true,
    duplicate_window: nanos(120_000),
  };
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const info = await jsm.streams.info(name);
      if (!info.config.subjects?.includes(subject)) {
        throw new UsageError(
          `stream ${name} exists but does not capture ${subject}: delete it or pick another --nats-prefix`,
        );
      }
      // Without allow_direct every `last_by_subj` lookup would time out (5 s).
      if (!info.config.allow_direct)
        await jsm.streams.update(name, { ...info.config, allow_direct: true });
      return;
    } catch (e) {
      if (jsErrorCode(e) !== 10059) throw e;
    }
    try {
      await jsm.streams.add(cfg);
      return;
    } catch (e) {
      // 10058: someone created it between our info and add; look again.
      if (jsErrorCode(e) !== 10058) throw e;
    }
  }
}

/** Connects to NATS and opens (creating if needed) the JetStream store. */
export async function openJetStreamStore(opts: JetStreamStoreOptions): Promise<JetStreamStore> {
  const prefix = opts.prefix ?? 'plumbline';
  if (!PREFIX.test(prefix))
    throw new UsageError(
      `NATS prefix ${JSON.stringify(prefix)} is invalid: use 1–32 letters, digits, '-' or '_'`,
    );
  const replicas = opts.replicas ?? 1;
  if (!Number.isInteger(replicas) || replicas < 1 || replicas > 5)
    throw new UsageError(`replicas must be an integer from 1 to 5, got ${replicas}`);
  const indexDelayMs = opts.indexDelayMs ?? 1_000;
  if (!Number.isFinite(indexDelayMs) || indexDelayMs < 0)
    throw new UsageError(
      `indexDelayMs must be a number of milliseconds ≥ 0 (0: no delay), got ${indexDelayMs}`,
    );
  const timeout = opts.timeoutMs ?? 5_000;
  const STREAM = `${prefix.toUpperCase()}_EVENTS`;
  const subjectOf = (runId: string): string => `${prefix}.run.${runId}.ev`;
  const runOfSubject = (subject: string): string => subject.slice(prefix.length + 5, -3);

  const readOnly = opts.readOnly === true;
  const link = await openNatsLink({ ...opts, name: opts.name ?? 'plumbline-store' });
  const nc = link.nc;
  let ro: ReadOnlyContext | undefined;
  let js: JetStreamClient;
  let jsm: JetStreamManager;
  let jsmRead: JetStreamManager;
  let poolBucket: KV;
  let waitBucket: KV;
  let rateBucket: KV;
  let runs: KV, snaps: KV, effects: KV, kills: KV, breakers: KV, leaseBucket: KV, defs: KV;
  let costBucket: KV, parentBucket: KV;
  try {
    js = jetstream(nc, { timeout });
    // A reader asks nothing at open: no account info, no stream or bucket check (`readOnly`).
    const check = readOnly ? { checkAPI: false } : {};
    try {
      jsm = await jetstreamManager(nc, { timeout, ...check });
    } catch (e) {
      throw new UsageError(
        `the NATS server has no JetStream (${(e as Error).message}): start nats-server with -js`,
        { cause: e },
      );
    }
    // Read consumers are created with a short timeout: creating one normally takes
    // milliseconds, and when it hangs (placed on a dead peer) the read retries or falls back.
    jsmRead = await jetstreamManager(nc, {
      timeout: Math.min(timeout, READ_CONSUMER_TIMEOUT_MS),
      ...check,
    });
    const kvm = new Kvm(js);
    const servers = [opts.servers].flat().join(',');
    if (readOnly) ro = { jsm, kvm, prefix, servers, eventsStream: STREAM };
    else await ensureStream(jsm, STREAM, `${prefix}.run.*.ev`, replicas);
    const reader = ro;
    const bucket = (n: string): Promise<KV> =>
      reader !== undefined
        ? Promise.resolve(lazyBucket(reader, `${prefix}_${n}`))
        : kvm.create(`${prefix}_${n}`, {
            history: 1,
            replicas,
            storage: StorageType.File,
            timeout,
          });
    [runs, snaps, effects, kills, breakers, leaseBucket, defs] = await Promise.all([
      bucket('runs'),
      bucket('snapshots'),
      bucket('effects'),
      bucket('kills'),
      bucket('breakers'),
      bucket('leases'),
      bucket('definitions'),
    ]);
    [poolBucket, waitBucket, rateBucket, costBucket, parentBucket] = await Promise.all([
      bucket('pools'),
      bucket('waits'),
      bucket('ratelimits'),
      bucket('costs'),
      bucket('parents'),
    ]);
  } catch (e) {
    await nc.close();
    throw e;
  }

  const stats: ReadStats = { consumers: 0, delivered: 0 };
  const cleanups = new Set<Promise<unknown>>();
  const track = (p: Promise<unknown>): void => {
    cleanups.add(p);
    void p.finally(() => cleanups.delete(p));
  };
  const retry = <T>(op: () => Promise<T>): Promise<T> => link.retry(op);
  const blobs = jetstreamBlobs({
    link,
    js,
    jsm,
    bucket: `${prefix}_blobs`,
    replicas,
    readOnly,
    ...(opts.largePayloadBytes !== undefined ? { thresholdBytes: opts.largePayloadBytes } : {}),
    stats,
    track,
  });

  const parseEvent = (
    { StoredEnvelope }: JsSchemas,
    runId: string,
    streamSeq: number,
    data: Uint8Array,
  ): StoredEnvelope => {
    let raw: unknown;
    try {
      raw = JSON.parse(new TextDecoder().decode(data));
    } catch (e) {
      throw new CorruptEventError(
        runId,
        0,
        `stream position ${streamSeq} is not JSON (${(e as Error).message})`,
      );
    }
    const r = StoredEnvelope.safeParse(raw);
    const seq =
      typeof (raw as { seq?: unknown } | null)?.seq === 'number' ? (raw as { seq: number }).seq : 0;
    if (!r.success)
      throw new CorruptEventError(
        runId,
        seq,
        r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; '),
      );
    if (r.data.runId !== runId)
      throw new CorruptEventError(
        runId,
        seq,
        `stream position ${streamSeq} belongs to run ${r.data.runId}`,
      );
    return r.data;
  };

  /** Parses a log message, fetching its event from the object store when it is a reference. */
  const decode = async (
    runId: string,
    m: { seq: number; data: Uint8Array },
    hdrs: MsgHdrs | undefined,
  ): Promise<StoredEnvelope> =>
    parseEvent(await jsSchemas(), runId, m.seq, await blobs.resolve(runId, m.seq, m.data, hdrs));

  /** The run's index entry and its KV revision. */
  const getIndex = async (
    runId: string,
  ): Promise<{ entry: IndexEntry; revision: number } | undefined> => {
    const e = await retry(() => runs.get(kvKey(runId)));
    if (e === null || e.operation !== 'PUT') return undefined;
    const r = parseIndexEntry(e.json());
    if (!r.ok) throw new CorruptEventError(runId, 0, `run index entry is invalid: ${r.issues}`);
    return { entry: r.entry, revision: e.revision };
  };

  /** Every run's index entry (a read of the whole run index: for full listings). */
  const scanIndex = async (): Promise<IndexEntry[]> => {
    const msgs = await retry(() =>
      readRange(
        js,
        jsmRead,
        { stream: `KV_${prefix}_runs`, filter: `$KV.${prefix}_runs.>`, lastPerSubject: true },
        stats,
        track,
      ),
    );
    const out: IndexEntry[] = [];
    for (const m of msgs) {
      const op = m.headers?.get('KV-Operation');
      if (op === 'DEL' || op === 'PURGE') continue;
      const r = parseIndexEntry(m.json());
      if (r.ok) out.push(r.entry);
    }
    return out;
  };

  /**
   * The index entries a read-only store's listing just read: `runs` asks for the same page's
   * unconfirmed USD right after (one KV get per run fewer). Only a reader keeps them: it lives for
   * one verb, and a writer's entries change under it.
   */
  const listed = new Map<string, IndexEntry>();
  const LISTED_MAX = 10_000;

  const runList = jetstreamRunList({
    js,
    jsm,
    link,
    prefix,
    replicas,
    stats,
    track,
    readOnly,
    parents: parentBucket,
    // An ended run still listed: its writer may have died between its index entry and its cost
    // contribution (adding it again is idempotent).
    async beforeUnlisting(runId) {
      const cur = await getIndex(runId);
      if (cur !== undefined) await rollup.ended(cur.entry);
    },
    async summaries(ids) {
      const out = new Map<string, RunSummary>();
      const todo = [...new Set(ids)];
      const worker = async (): Promise<void> => {
        for (let id = todo.shift(); id !== undefined; id = todo.shift()) {
          const cur = await getIndex(id).catch(() => undefined);
          if (cur === undefined) {
            // Listed with no index entry: a run whose writer died as it started (its events
            // are folded now), or a listing with no run (left out).
            const s = await log.getRun(id).catch(() => undefined);
            if (s !== undefined) out.set(id, s);
            continue;
          }
          out.set(id, toSummary(cur.entry));
          if (readOnly) {
            if (listed.size >= LISTED_MAX) listed.clear();
            listed.set(id, cur.entry);
          }
        }
      };
      await Promise.all(Array.from({ length: 64 }, worker));
      return out;
    },
  });
  const rollup = jetstreamRollup({
    js,
    jsm,
    link,
    kv: costBucket,
    prefix,
    replicas,
    stats,
    track,
    readOnly,
    ...(opts.rollupCompactEvery !== undefined ? { compactEvery: opts.rollupCompactEvery } : {}),
  });
  try {
    const empty = async (): Promise<boolean> =>
      (await retry(() => jsm.streams.info(STREAM))).state.messages === 0;
    // A store made before the run list: list its runs once, oldest first (marking parents).
    // A reader checks, creates and backfills nothing (see `readOnly`).
    const fresh = !readOnly && (await runList.ensure());
    if (fresh)
      for (const e of (await scanIndex()).sort((a, b) => a.summary.startedAt - b.summary.startedAt))
        await runList.added(
          e.summary.runId,
          TERMINAL_STATUSES.has(e.summary.status),
          e.summary.parent?.runId,
        );
    if (!readOnly) await runList.parentsMarked(fresh || (await empty()));
    if (!readOnly) await rollup.ensure(empty);
  } catch (e) {
    await link.close();
    throw e;
  }

  /**
   * One message as the stream leader has it. Not a direct get: in a cluster any replica answers
   * those, and a lagging one would report an older tail (a false version conflict, a short read).
   */
  const leaderGet = (
    query: { seq: number } | { last_by_subj: string } | { next_by_subj: string; seq: number },
  ): Promise<StoredMsg | null> =>
    // `next_by_subj` is accepted by the server's STREAM.MSG.GET (2.9+) though not typed there.
    retry(() => jsm.streams.getMessage(STREAM, query as MsgRequest));

  /** The run's last event in the stream (authoritative, unlike the index). */
  const lastOf = async (runId: string): Promise<(Located & { first: number }) | undefined> => {
    const m = await leaderGet({ last_by_subj: subjectOf(runId) });
    if (m === null) return undefined;
    const env = await decode(runId, m, m.header);
    const first = env.seq === 1 ? m.seq : Number(m.header.get(FIRST));
    if (!Number.isInteger(first) || first < 1)
      throw new CorruptEventError(
        runId,
        env.seq,
        `stream position ${m.seq} has no ${FIRST} header`,
      );
    return { env, streamSeq: m.seq, first };
  };

  /**
   * Events of one run from stream sequence `start` on, checked to be contiguous. The bulk comes
   * from a short-lived consumer; the stream leader then confirms the end (usually one request
   * answering "nothing more"). That covers a consumer placed on a lagging replica, one whose
   * node died mid-read, and one that could not be created at all (in a cluster with a node
   * down, 2.9 still places some consumers on the dead peer): then the leader serves every event.
   */
  let consumersFailingUntil = 0;
  const readRun = async (runId: string, start: number): Promise<Located[]> => {
    const subject = subjectOf(runId);
    let msgs: Array<{ seq: number; data: Uint8Array; headers?: MsgHdrs | undefined }> = [];
    if (Date.now() >= consumersFailingUntil) {
      try {
        msgs = await readRange(
          js,
          jsmRead,
          { stream: STREAM, filter: subject, startSeq: start },
          stats,
          track,
        );
      } catch {
        // No consumer (timed out, node down, reconnecting): the leader serves every event
        // below, and surfaces any error that is not about the consumer. Skip consumers for a
        // while rather than wait for each one to time out.
        consumersFailingUntil = Date.now() + CONSUMER_BACKOFF_MS;
      }
    }
    for (let seq = (msgs[msgs.length - 1]?.seq ?? start - 1) + 1; ;) {
      const m = await leaderGet({ next_by_subj: subject, seq });
      if (m === null) break;
      msgs.push({ seq: m.seq, data: m.data, headers: m.header });
      seq = m.seq + 1;
    }
    const out: Located[] = [];
    for (const m of msgs) {
      const env = await decode(runId, m, m.headers);
      const prev = out[out.length - 1];
      if (prev !== undefined && env.seq !== prev.env.seq + 1)
        throw new CorruptEventError(runId, env.seq, `follows seq ${prev.env.seq} in the stream`);
      out.push({ env, streamSeq: m.seq });
    }
    return out;
  };

  /** Brings the run index up to the log (after a writer died between publish and index update). */
  const catchUpHead = async (runId: string): Promise<Head | undefined> => {
    for (let attempt = 0; attempt < 10; attempt++) {
      const cur = await getIndex(runId);
      let start: number;
      if (cur !== undefined) {
        start = cur.entry.lastStreamSeq + 1;
      } else {
        const tail = await lastOf(runId);
        if (tail === undefined) return undefined;
        start = tail.first;
      }
      const events = await readRun(runId, start);
      if (events.length === 0) return cur;
      const next = foldIndex(runId, cur?.entry, events);
      const revision = await kvCasRevision(link, runs, kvKey(runId), next, cur?.revision ?? 0);
      if (revision !== null) {
        // Its creator died before listing it (or before its index entry): list it now.
        if (cur === undefined)
          await runList.added(
            runId,
            TERMINAL_STATUSES.has(next.summary.status),
            next.summary.parent?.runId,
          );
        // Its end may not be in the cost rollups yet (its writer died): adding it is idempotent.
        await rollup.ended(next);
        return { entry: next, revision };
      }
    }
    throw new Error(`run ${runId}: the run index kept changing while catching up; try again`);
  };
  const catchUp = async (runId: string): Promise<IndexEntry | undefined> =>
    (await catchUpHead(runId))?.entry;

  /** Index updates, applied per run in order after the appends return (jetstreamIndexQueue.ts). */
  const index = indexQueue(
    {
      cas: (runId, entry, revision) => kvCasRevision(link, runs, kvKey(runId), entry, revision),
      catchUp: catchUpHead,
      written: (entry) => rollup.ended(entry),
    },
    { delayMs: indexDelayMs },
  );

  /** Publishes one event expecting `prev` as the subject's last stream sequence; returns its stream sequence. */
  const publishEvent = async (
    env: StoredEnvelope,
    prev: number,
    first: number | undefined,
    nonce: string,
    expected: ExpectedVersion,
  ): Promise<number> => {
    const h = headers();
    h.set(WRITER, nonce);
    if (first !== undefined) h.set(FIRST, String(first));
    const body = await blobs.encode(env.runId, env.seq, nonce, JSON.stringify(env));
    if (body.blob !== undefined) h.set(BLOB_HEADER, body.blob);
    const subject = subjectOf(env.runId);
    const msgID = `${env.runId}:${env.seq}`;
    let attempts = 0;
    let ack;
    try {
      ack = await retry(() => {
        attempts++;
        return js.publish(subject, body.data, {
          msgID,
          expect: { lastSubjectSequence: prev },
          headers: h,
        });
      });
    } catch (e) {
      if (!isWrongLastSequence(e)) throw e;
      // After a retry, the event in the way may be our own first attempt: it was stored but
      // its ack was lost (a leader died), and the new leader did not know its msgID.
      if (attempts > 1) {
        const m = await leaderGet({ next_by_subj: subject, seq: prev + 1 });
        if (m !== null && m.header.get(WRITER) === nonce && m.header.get(MSG_ID) === msgID)
          return m.seq;
      }
      throw new VersionConflictError(env.runId, expected, 'unknown', { cause: e });
    }
    if (ack.duplicate) {
      // Same msgID seen in the dedup window: our own retried publish, or another writer's
      // event with this seq (the dedup check runs before the expectation check).
      const m = await leaderGet({ seq: ack.seq });
      if (m === null || m.header.get(WRITER) !== nonce)
        throw new VersionConflictError(env.runId, expected, 'unknown');
    }
    return ack.seq;
  };

  const log: EventLog = {
    async append(runId, events, expected) {
      checkRunId(runId);
      if (events.length === 0) throw new UsageError('append needs at least one event');
      let checked = events;
      if (opts.validateAppends === true) {
        const { NewEnvelope } = await jsSchemas();
        checked = events.map((e) => NewEnvelope.parse(e));
      }
      const head = checked[0] as NewEnvelope;
      // No KV get when this process's last append of the run ended at `expected`, nor for a
      // new run (its first publish expects an empty subject: an existing run makes it a
      // version conflict).
      const tail = expected === 'no_stream' ? undefined : index.tail(runId);
      const mine = tail !== undefined && tail.lastSeq === expected;
      const cur = expected === 'no_stream' || mine ? undefined : await getIndex(runId);
      let prev = 0;
      let first: number | undefined;
      let before: string | undefined;
      if (expected === 'no_stream') {
        // A conflict is reported before a malformed batch, as the SQLite store does.
        if (head.event.type !== 'run.started') {
          const last = await lastOf(runId);
          if (last !== undefined) throw new VersionConflictError(runId, expected, last.env.seq);
          throw new UsageError(
            `run ${runId}: the first event of a run must be run.started, got ${head.event.type}`,
          );
        }
      } else if (mine) {
        prev = tail.lastStreamSeq;
        first = tail.firstStreamSeq;
        before = tail.status;
      } else if (cur !== undefined && cur.entry.summary.lastSeq === expected) {
        prev = cur.entry.lastStreamSeq;
        first = cur.entry.firstStreamSeq;
        before = cur.entry.summary.status;
      } else if (cur !== undefined && expected < cur.entry.summary.lastSeq) {
        // The index never runs ahead of the log.
        throw new VersionConflictError(runId, expected, cur.entry.summary.lastSeq);
      } else {
        const last = await lastOf(runId);
        if (last === undefined || last.env.seq !== expected)
          throw new VersionConflictError(runId, expected, last?.env.seq ?? 'unknown');
        prev = last.streamSeq;
        first = last.first;
        before = cur?.entry.summary.status;
      }
      const base = expected === 'no_stream' ? 0 : expected;
      const builtOn = prev;
      // An append that starts or ends a run returns once the index and the cost rollups have it
      // (the run list had it before its first event): a run seen ended anywhere is in the
      // rollups.
      const urgent =
        expected === 'no_stream' ||
        TERMINAL_STATUSES.has((checked[checked.length - 1] as NewEnvelope).state.status);
      const nonce = nuid.next();
      const written: Located[] = [];
      let failed = true;
      if (expected === 'no_stream') {
        // Listed before its first event exists: a writer that dies right after publishing it
        // would otherwise leave a run no listing shows (`stranded` and `resume` included). A
        // listing with no run (the publish fails, or a second start of an id) is left out of
        // pages; a run already listed keeps its place.
        const lastStatus = (checked[checked.length - 1] as NewEnvelope).state.status;
        await runList.added(
          runId,
          TERMINAL_STATUSES.has(lastStatus),
          (head.event as RunStarted).parent?.runId,
        );
      }
      try {
        for (const [i, e] of checked.entries()) {
          const env: StoredEnvelope = { ...e, runId, seq: base + i + 1 };
          prev = await publishEvent(env, prev, first, nonce, expected);
          first ??= prev;
          written.push({ env, streamSeq: prev });
        }
        failed = false;
      } finally {
        const last = written[written.length - 1];
        if (last === undefined) index.forget(runId);
        else {
          // Durable once acked: the index follows in the background (never ahead of the log).
          const ended = TERMINAL_STATUSES.has(last.env.state.status);
          // An ended run leaves the unfinished set after its entry says so (a failure here only
          // leaves a stale entry that listings check against the index and drop).
          const after =
            ended && before !== undefined && !TERMINAL_STATUSES.has(before)
              ? () => runList.ended(runId)
              : undefined;
          // A middle append that leaves the status as it was may wait for the run's next
          // updates (listings by status must see every change at once).
          const hold = !urgent && !failed && before === last.env.state.status;
          index.published(
            runId,
            {
              base: mine ? 'tail' : cur,
              builtOn,
              written,
              ...(after !== undefined ? { after } : {}),
              ...(hold ? { hold } : {}),
            },
            failed
              ? undefined
              : {
                  lastSeq: last.env.seq,
                  lastStreamSeq: last.streamSeq,
                  firstStreamSeq: first ?? last.streamSeq,
                  status: last.env.state.status,
                },
          );
        }
      }
      if (urgent) await index.settled(runId);
      return base + checked.length;
    },

    async read(runId, fromSeq = 1) {
      checkRunId(runId);
      await index.settled(runId);
      const cur = await getIndex(runId);
      let start: number;
      if (cur !== undefined) {
        start = startFor(cur.entry, fromSeq);
      } else {
        const tail = await lastOf(runId);
        if (tail === undefined) return [];
        start = tail.first;
      }
      const events = await readRun(runId, start);
      const last = events[events.length - 1];
      if (
        !readOnly &&
        last !== undefined &&
        (cur === undefined || last.streamSeq > cur.entry.lastStreamSeq)
      )
        await catchUp(runId).catch(() => undefined);
      return events.filter((e) => e.env.seq >= fromSeq).map((e) => e.env);
    },

    async readAll(afterPos, limit = 1000) {
      const msgs = await retry(() =>
        readRange(js, jsmRead, { stream: STREAM, startSeq: afterPos + 1, limit }, stats, track),
      );
      const out: PositionedEnvelope[] = [];
      for (const m of msgs)
        out.push({ ...(await decode(runOfSubject(m.subject), m, m.headers)), pos: m.seq });
      return out;
    },

    async getRun(runId) {
      checkRunId(runId);
      await index.settled(runId);
      const [cur, tail] = await Promise.all([getIndex(runId), lastOf(runId)]);
      if (tail !== undefined && (cur === undefined || tail.streamSeq > cur.entry.lastStreamSeq)) {
        // A reader folds the missing events into its answer without writing the index.
        const caught = readOnly
          ? foldIndex(
              runId,
              cur?.entry,
              await readRun(runId, cur === undefined ? tail.first : cur.entry.lastStreamSeq + 1),
            )
          : await catchUp(runId);
        return caught === undefined ? undefined : toSummary(caught);
      }
      return cur === undefined ? undefined : toSummary(cur.entry);
    },

    async listRuns(filter: RunFilter = {}) {
      await index.settledAll();
      const statuses = filter.status === undefined ? undefined : [filter.status].flat();
      // Pages, the unfinished runs and a run's children come from the run list (jetstreamList.ts).
      if (
        filter.limit !== undefined ||
        filter.after !== undefined ||
        typeof filter.parent === 'string' ||
        (statuses !== undefined && statuses.every((x) => x === 'running' || x === 'parked'))
      )
        return runList.page(filter);
      const out = [];
      const all = (await scanIndex()).map(toSummary);
      // An unfinished run with no index entry yet (its writer died as it started) is in the
      // unfinished set: folded from its events, as pages do.
      const indexed = new Set(all.map((s) => s.runId));
      for (const id of await runList.activeIds()) {
        if (indexed.has(id)) continue;
        const s = await log.getRun(id).catch(() => undefined);
        if (s !== undefined) all.push(s);
      }
      for (const s of all) {
        if (statuses !== undefined && !statuses.includes(s.status)) continue;
        if (filter.pipeline !== undefined && s.pipeline !== filter.pipeline) continue;
        if (filter.updatedBefore !== undefined && !(s.updatedAt < filter.updatedBefore)) continue;
        if (!parentMatches(s, filter)) continue;
        out.push(s);
      }
      out.sort(
        (a, b) => b.startedAt - a.startedAt || (a.runId < b.runId ? 1 : a.runId > b.runId ? -1 : 0),
      );
      return out;
    },

    async costRollup() {
      await index.settledAll();
      return rollup.read(async () => {
        const entries = await Promise.all(
          (await runList.activeIds()).map((id) => getIndex(id).catch(() => undefined)),
        );
        return entries.flatMap((e) => (e === undefined ? [] : [e.entry]));
      });
    },

    async unconfirmedUsd(runIds) {
      const out = new Map<string, number>();
      await Promise.all(
        runIds.map(async (id) => {
          await index.settled(id);
          const entry = listed.get(id) ?? (await getIndex(id).catch(() => undefined))?.entry;
          if (entry?.unconfirmedUsd !== undefined) out.set(id, entry.unconfirmedUsd);
        }),
      );
      return out;
    },

    async saveSnapshot(runId, s: SavedSnapshot) {
      checkRunId(runId);
      await retry(() =>
        snaps.put(
          kvKey(runId),
          JSON.stringify({ seq: s.seq, machineHash: s.machineHash, snapshot: s.snapshot }),
        ),
      );
    },

    async loadSnapshot(runId) {
      checkRunId(runId);
      const e = await retry(() => snaps.get(kvKey(runId)));
      if (e === null || e.operation !== 'PUT') return undefined;
      const r = (await jsSchemas()).SnapshotRecord.safeParse(e.json());
      if (!r.success)
        throw new CorruptEventError(runId, 0, `saved snapshot is invalid: ${r.error.message}`);
      return { seq: r.data.seq, machineHash: r.data.machineHash, snapshot: r.data.snapshot };
    },
  };

  const kv = kvControl(link, { effects, kills, breakers });
  const ledger = kv.ledger;
  // One request per kill-watcher tick for all the runs it watches (jetstreamKills.ts).
  const control = {
    ...kv.control,
    ...kvKillScan(link, jsm, `${prefix}_kills`, kvKey, (id) => kv.control.getKill(id)),
  };
  const port = ro === undefined ? log : guardReads(ro, log);

  return {
    kind: 'jetstream',
    log: port,
    ledger,
    control,
    leases: kvLeases(link, leaseBucket),
    pools: kvPools(link, poolBucket),
    waits: kvWaits(link, waitBucket),
    rateLimits: kvRateLimits(link, rateBucket),
    definitions: kvDefinitions(link, defs),
    stats,
    connection: nc,
    async close() {
      if (link.closed) return;
      await index.settledAll();
      await Promise.allSettled([...cleanups]);
      await link.close();
    },
  };
}
