/**
 * The embedded store: one SQLite file (better-sqlite3, WAL). Appends are one IMMEDIATE
 * transaction that checks the expected version, inserts the events and updates the run index,
 * so two processes can never both extend one run.
 */
import { mkdirSync, readFileSync, writeFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import type Database from 'better-sqlite3';
import { CorruptEventError, UsageError, VersionConflictError } from '../errors.js';
import type * as EventSchemaModule from '../machines/events.js';
import type { NewEnvelope, RunStarted, StoredEnvelope } from '../machines/events.js';
import { asStoreFault, fileIdentity, openSqliteFile, type FileIdentity } from './sqliteFaults.js';
import { sqliteDefinitions } from './sqliteDefinitions.js';
import { groupCommit } from './sqliteGroupCommit.js';
import { sqliteLeases } from './sqliteLeases.js';
import { sqliteWaits } from './sqliteWaits.js';
import { sqlitePools } from './sqlitePools.js';
import { sqliteRateLimits } from './sqliteRateLimits.js';
import { LIST_INDEXES, ensureParentColumns, hasParentColumn, listRunRows } from './sqliteList.js';
import { sqliteRollup } from './sqliteRollup.js';
import type {
  ControlStore,
  DefinitionStore,
  EffectClaim,
  EffectLedger,
  EventLog,
  ExpectedVersion,
  KillFlag,
  LeaseStore,
  PoolStore,
  PositionedEnvelope,
  RateLimitStore,
  RunFilter,
  RunSummary,
  SavedSnapshot,
  Store,
  WaitStore,
} from './types.js';

/** Options of {@link openSqliteStore}. */
export interface SqliteOptions {
  /** Event bodies larger than this many bytes go to a file beside the database (default 512 KiB). */
  largePayloadBytes?: number;
  /**
   * `FULL` (default: an fsync per commit — one per group commit batch — so a commit survives a
   * power loss) or `NORMAL` (survives a crash of the process, not of the machine).
   */
  synchronous?: 'NORMAL' | 'FULL';
  /**
   * Group commit (default true): appends made in the same tick, by any run, share one
   * transaction; false: one transaction per append.
   */
  groupCommit?: boolean;
  /** Open the file read-only (it must exist): for readers; any write fails with `E_STORE_READ_ONLY`. */
  readonly?: boolean;
  /** Called with the connection once it is set up: for PRAGMAs such as `max_page_count` (a size cap). */
  connection?: (db: Database.Database) => void;
  /**
   * Check every appended envelope against the schema (default false: the runtime builds them
   * itself, and reads always check). Tests turn it on to catch a malformed envelope at the port.
   */
  validateAppends?: boolean;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS events (
  pos INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, seq INTEGER NOT NULL,
  at INTEGER NOT NULL, type TEXT NOT NULL, body TEXT NOT NULL, UNIQUE (run_id, seq));
CREATE TABLE IF NOT EXISTS runs (
  run_id TEXT PRIMARY KEY, pipeline TEXT NOT NULL, version TEXT NOT NULL, machine_hash TEXT NOT NULL,
  module TEXT, status TEXT NOT NULL, step TEXT, cost_usd REAL NOT NULL, last_seq INTEGER NOT NULL,
  started_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, ended_at INTEGER);
CREATE INDEX IF NOT EXISTS runs_status ON runs (status, updated_at);
CREATE TABLE IF NOT EXISTS effects (
  run_id TEXT NOT NULL, step TEXT NOT NULL, key TEXT NOT NULL, claimed_at INTEGER NOT NULL,
  done_at INTEGER, result TEXT, PRIMARY KEY (run_id, step, key));
CREATE TABLE IF NOT EXISTS kills (run_id TEXT PRIMARY KEY, reason TEXT NOT NULL, at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS breakers (key TEXT PRIMARY KEY, value TEXT NOT NULL, revision INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS snapshots (run_id TEXT PRIMARY KEY, seq INTEGER NOT NULL, machine_hash TEXT NOT NULL, body TEXT NOT NULL);
`;

interface RunRow {
  run_id: string;
  pipeline: string;
  version: string;
  machine_hash: string;
  module: string | null;
  status: RunSummary['status'];
  step: string | null;
  cost_usd: number;
  last_seq: number;
  started_at: number;
  updated_at: number;
  ended_at: number | null;
  /** Absent on a read-only connection to a store made before child runs. */
  parent?: string | null;
  parent_step?: string | null;
  parent_part?: string | null;
}

function toSummary(r: RunRow): RunSummary {
  return {
    runId: r.run_id,
    pipeline: r.pipeline,
    version: r.version,
    machineHash: r.machine_hash,
    module: r.module,
    status: r.status,
    step: r.step,
    costUsd: r.cost_usd,
    lastSeq: r.last_seq,
    startedAt: r.started_at,
    updatedAt: r.updated_at,
    endedAt: r.ended_at,
    ...(r.parent != null
      ? {
          parent: {
            runId: r.parent,
            step: r.parent_step ?? '',
            part: JSON.parse(r.parent_part ?? 'null') as number | string | null,
          },
        }
      : {}),
  };
}

const BLOB_PREFIX = '{"$blob":';

/** Reads a body that may have been moved to a blob file. */
function resolveBody(blobDir: string | null, runId: string, seq: number, body: string): string {
  if (!body.startsWith(BLOB_PREFIX)) return body;
  const { $blob } = JSON.parse(body) as { $blob: string };
  if (blobDir === null)
    throw new CorruptEventError(runId, seq, 'large payload reference in an in-memory store');
  try {
    return readFileSync(join(blobDir, $blob), 'utf8');
  } catch (e) {
    throw new CorruptEventError(
      runId,
      seq,
      `large payload file ${$blob} is missing (${(e as Error).message})`,
    );
  }
}

/** The event schemas module. */
type EventSchemas = typeof EventSchemaModule;

/** The event schemas (zod), loaded at the first read: a verb that reads no event never loads them. */
let schemas: EventSchemas | undefined;
const loadSchemas = async (): Promise<EventSchemas> =>
  (schemas ??= await import('../machines/events.js'));

function parseStored(
  { StoredEnvelope }: EventSchemas,
  runId: string,
  seq: number,
  body: string,
): StoredEnvelope {
  let raw: unknown;
  try {
    raw = JSON.parse(body);
  } catch (e) {
    throw new CorruptEventError(runId, seq, `not JSON (${(e as Error).message})`);
  }
  const r = StoredEnvelope.safeParse({ ...(raw as object), runId, seq });
  if (!r.success)
    throw new CorruptEventError(
      runId,
      seq,
      r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; '),
    );
  return r.data;
}

const TERMINAL = new Set(['completed', 'failed', 'killed']);

/** Names of the port methods that only read (every other method is checked as a write). */
const READS = new Set([
  'read',
  'readAll',
  'getRun',
  'listRuns',
  'costRollup',
  'unconfirmedUsd',
  'loadSnapshot',
  'getKills',
  'getKill',
  'getBreaker',
  'holders',
  'get',
  'wakeTimes',
]);

/**
 * The port with its methods' whole-file SQLite faults turned into a StoreUnavailableError naming
 * `path`, and each write followed by a check that `path` still names the file written to (else
 * the write went to a deleted file nobody will read, and the caller must not count on it).
 */
function guarded<T extends object>(
  port: T,
  path: string,
  identity: FileIdentity,
  checkedInBatch: ReadonlySet<string> = new Set(),
): T {
  const out: Record<string, unknown> = {};
  for (const [name, f] of Object.entries(port)) {
    if (typeof f !== 'function') {
      out[name] = f;
      continue;
    }
    // Writes made through the group commit are checked once per committed batch instead.
    const write = !READS.has(name) && !checkedInBatch.has(name);
    out[name] = async (...args: unknown[]): Promise<unknown> => {
      try {
        const r: unknown = await (f as (...a: unknown[]) => Promise<unknown>).apply(port, args);
        if (write) identity.check();
        return r;
      } catch (e) {
        throw asStoreFault(e, path);
      }
    };
  }
  return out as T;
}

/**
 * Opens (creating if needed) the SQLite store at `path` (`:memory:` for tests). A full disk, a
 * read-only file, or the file deleted or replaced while open fail with a StoreUnavailableError
 * (`E_STORE_FULL`, `E_STORE_READ_ONLY`, `E_STORE_GONE`) naming the path and the fix.
 */
export function openSqliteStore(path: string, options: SqliteOptions = {}): Store {
  const readonly = options.readonly === true;
  const db = openSqliteFile(
    path,
    (c) => {
      if (!readonly) {
        c.pragma(`synchronous = ${options.synchronous ?? 'FULL'}`);
        c.exec(SCHEMA);
        c.exec(LIST_INDEXES);
        // The claimer column came with run leases: add it to a store made before them.
        const effectCols = c.prepare<[], { name: string }>('PRAGMA table_info(effects)').all();
        if (!effectCols.some((col) => col.name === 'claimer'))
          c.exec('ALTER TABLE effects ADD COLUMN claimer TEXT');
        ensureParentColumns(c);
      }
      options.connection?.(c);
    },
    { readonly },
  );
  const identity = fileIdentity(path);
  const validate = options.validateAppends === true;
  const blobDir = path === ':memory:' ? null : `${path}.blobs`;
  const largeBytes = options.largePayloadBytes ?? 512 * 1024;
  /** Moves an oversized body to a file (written before the row that points to it). */
  const bodyFor = (runId: string, seq: number, body: string): string => {
    if (blobDir === null || Buffer.byteLength(body) <= largeBytes) return body;
    mkdirSync(blobDir, { recursive: true });
    const name = `${runId}.${seq}.${Date.now().toString(36)}.json`;
    const tmp = join(blobDir, `.${name}.tmp`);
    writeFileSync(tmp, body);
    renameSync(tmp, join(blobDir, name));
    return JSON.stringify({ $blob: name });
  };

  // A read-only connection to a store made before child runs has no parent columns.
  const withParent = hasParentColumn(db);
  const q = {
    lastSeq: db.prepare<[string], { last_seq: number }>(
      'SELECT last_seq FROM runs WHERE run_id = ?',
    ),
    insert: db.prepare('INSERT INTO events (run_id, seq, at, type, body) VALUES (?, ?, ?, ?, ?)'),
    // Positional parameters: binding by name costs a property look-up per parameter (≈ 0.7 µs
    // more per append in better-sqlite3), and these two run on every append.
    createRun: db.prepare(
      withParent
        ? `INSERT INTO runs (run_id, pipeline, version, machine_hash, module, status, step, cost_usd, last_seq, started_at, updated_at, ended_at, parent, parent_step, parent_part)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
        : `INSERT INTO runs (run_id, pipeline, version, machine_hash, module, status, step, cost_usd, last_seq, started_at, updated_at, ended_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ),
    updateRun: db.prepare(
      `UPDATE runs SET status = ?, step = ?, cost_usd = ?, last_seq = ?, updated_at = ?,
       ended_at = COALESCE(ended_at, ?) WHERE run_id = ? AND last_seq = ?`,
    ),
    read: db.prepare<[string, number], { seq: number; body: string }>(
      'SELECT seq, body FROM events WHERE run_id = ? AND seq >= ? ORDER BY seq',
    ),
    readAll: db.prepare<
      [number, number],
      { pos: number; run_id: string; seq: number; body: string }
    >('SELECT pos, run_id, seq, body FROM events WHERE pos > ? ORDER BY pos LIMIT ?'),
    getRun: db.prepare<[string], RunRow>('SELECT * FROM runs WHERE run_id = ?'),
    claim: db.prepare(
      'INSERT OR IGNORE INTO effects (run_id, step, key, claimed_at, claimer) VALUES (?, ?, ?, ?, ?)',
    ),
    reclaim: db.prepare(
      'UPDATE effects SET claimer = ?, claimed_at = ? WHERE run_id = ? AND step = ? AND key = ? AND done_at IS NULL',
    ),
    getEffect: db.prepare<
      [string, string, string],
      { claimed_at: number; done_at: number | null; result: string | null; claimer: string | null }
    >(
      'SELECT claimed_at, done_at, result, claimer FROM effects WHERE run_id = ? AND step = ? AND key = ?',
    ),
    record: db.prepare(
      'UPDATE effects SET done_at = ?, result = ? WHERE run_id = ? AND step = ? AND key = ? AND done_at IS NULL',
    ),
    setKill: db.prepare('INSERT OR IGNORE INTO kills (run_id, reason, at) VALUES (?, ?, ?)'),
    getKill: db.prepare<[string], { reason: string; at: number }>(
      'SELECT reason, at FROM kills WHERE run_id = ?',
    ),
    getBreaker: db.prepare<[string], { value: string; revision: number }>(
      'SELECT value, revision FROM breakers WHERE key = ?',
    ),
    insertBreaker: db.prepare(
      'INSERT OR IGNORE INTO breakers (key, value, revision) VALUES (?, ?, 1)',
    ),
    updateBreaker: db.prepare(
      'UPDATE breakers SET value = ?, revision = revision + 1 WHERE key = ? AND revision = ?',
    ),
    saveSnapshot: db.prepare(
      'INSERT OR REPLACE INTO snapshots (run_id, seq, machine_hash, body) VALUES (?, ?, ?, ?)',
    ),
    loadSnapshot: db.prepare<[string], { seq: number; machine_hash: string; body: string }>(
      'SELECT seq, machine_hash, body FROM snapshots WHERE run_id = ?',
    ),
  };

  const rollup = sqliteRollup(db, readonly, (runId, seq, body) =>
    resolveBody(blobDir, runId, seq, body),
  );

  const appendRows = (runId: string, events: NewEnvelope[], expected: ExpectedVersion): number => {
    /** The version conflict, with the run's actual last seq (read only on this path). */
    const conflict = (): VersionConflictError =>
      new VersionConflictError(runId, expected, q.lastSeq.get(runId)?.last_seq ?? 'unknown');
    const base = expected === 'no_stream' ? 0 : expected;
    const seq = base + events.length;
    const last = events[events.length - 1] as NewEnvelope;
    const { status, step, costUsd } = last.state;
    const endedAt = TERMINAL.has(status) ? last.at : null;
    // The run index row is the version check: created only if absent, advanced only from
    // `expected` (one statement each, no read of last_seq first).
    if (expected === 'no_stream') {
      const first = events[0] as NewEnvelope;
      if (first.event.type !== 'run.started') {
        // A conflict is reported before a malformed batch.
        if (q.lastSeq.get(runId) !== undefined) throw conflict();
        throw new UsageError(
          `run ${runId}: the first event of a run must be run.started, got ${first.event.type}`,
        );
      }
      const s = first.event as RunStarted;
      const row = [
        runId,
        s.pipeline,
        s.version,
        s.machineHash,
        s.module ?? null,
        status,
        step,
        costUsd,
        seq,
        first.at,
        last.at,
        endedAt,
      ];
      try {
        q.createRun.run(
          ...(withParent
            ? [
                ...row,
                s.parent?.runId ?? null,
                s.parent?.step ?? null,
                s.parent === undefined ? null : JSON.stringify(s.parent.part),
              ]
            : row),
        );
      } catch (e) {
        if ((e as { code?: string }).code === 'SQLITE_CONSTRAINT_PRIMARYKEY') throw conflict();
        throw e;
      }
      rollup.created(runId, s.forkedFrom?.seq ?? 0);
    } else if (
      q.updateRun.run(status, step, costUsd, seq, last.at, endedAt, runId, base).changes !== 1
    ) {
      throw conflict();
    }
    let n = base;
    for (const e of events) {
      n += 1;
      q.insert.run(runId, n, e.at, e.event.type, bodyFor(runId, n, JSON.stringify(e)));
    }
    if (endedAt !== null) rollup.ended(runId, seq);
    return seq;
  };
  const appendTx = db.transaction(appendRows);

  /** A constraint error from an append is a version conflict, whatever the backend said. */
  const asConflict = (e: unknown, runId: string, expected: ExpectedVersion): unknown =>
    (e as { code?: string }).code === 'SQLITE_CONSTRAINT_UNIQUE' ||
    (e as { code?: string }).code === 'SQLITE_CONSTRAINT_PRIMARYKEY'
      ? new VersionConflictError(runId, expected, 'unknown', { cause: e })
      : e;
  // Group commit: the appends of every run made in one tick, and the lease and effect-ledger
  // writes beside them, go to SQLite in one IMMEDIATE transaction (one commit, one fsync under
  // synchronous=FULL), each in its own savepoint so one run's version conflict fails that write
  // only; each caller still waits for its own write to be durable before it acts, and the file's
  // identity is checked once per commit.
  const group = options.groupCommit !== false ? groupCommit(db, () => identity.check()) : undefined;
  const immediateTx = db.transaction(<T>(op: () => T): T => op());
  /**
   * Runs a small write in the next group commit (or its own IMMEDIATE transaction without one);
   * `replayable` when it has no effect outside the database.
   */
  const write = <T>(op: () => T, replayable = false): Promise<T> =>
    group !== undefined
      ? group.run(op, replayable)
      : Promise.resolve().then(() => immediateTx.immediate(op) as T);
  /** The methods whose writes go through the group commit (their file check is per batch). */
  const batched = new Set(
    group !== undefined ? ['append', 'claim', 'record', 'acquire', 'renew', 'release'] : [],
  );

  const log: EventLog = {
    async append(runId, events, expected) {
      if (events.length === 0) throw new UsageError('append needs at least one event');
      let checked = events;
      if (validate) {
        const { NewEnvelope } = schemas ?? (await loadSchemas());
        checked = events.map((e) => NewEnvelope.parse(e));
      }
      // Replayable: its only effect outside the database is a large body's file, and a second
      // run writes another (the first one, unreferenced, is left as a failed append leaves it).
      if (group !== undefined)
        return group.run(() => {
          try {
            return appendRows(runId, checked, expected);
          } catch (e) {
            throw asConflict(e, runId, expected);
          }
        }, true);
      try {
        return appendTx.immediate(runId, checked, expected);
      } catch (e) {
        throw asConflict(e, runId, expected);
      }
    },
    async read(runId, fromSeq = 1) {
      const z = schemas ?? (await loadSchemas());
      return q.read
        .all(runId, fromSeq)
        .map((r) => parseStored(z, runId, r.seq, resolveBody(blobDir, runId, r.seq, r.body)));
    },
    async readAll(afterPos, limit = 1000) {
      const z = schemas ?? (await loadSchemas());
      return q.readAll.all(afterPos, limit).map((r): PositionedEnvelope => ({
        ...parseStored(z, r.run_id, r.seq, resolveBody(blobDir, r.run_id, r.seq, r.body)),
        pos: r.pos,
      }));
    },
    async getRun(runId) {
      const r = q.getRun.get(runId);
      return r === undefined ? undefined : toSummary(r);
    },
    async listRuns(filter: RunFilter = {}) {
      return listRunRows<RunRow>(db, filter).map(toSummary);
    },
    async costRollup() {
      return rollup.read();
    },
    async unconfirmedUsd(runIds) {
      // The runs' lost calls found by the events' type column, their bodies parsed without the
      // schemas: `runs` shows the column without reading logs or loading zod (issue 14). A body
      // that does not parse leaves its run out: the caller reads that log and reports the fault.
      const out = new Map<string, number>();
      const bad = new Set<string>();
      for (let i = 0; i < runIds.length; i += 500) {
        const chunk = runIds.slice(i, i + 500);
        for (const id of chunk) out.set(id, 0);
        const rows = db
          .prepare(
            `SELECT run_id, seq, body FROM events WHERE type = 'MODEL_ERROR' AND run_id IN (${chunk.map(() => '?').join(',')})`,
          )
          .all(...chunk) as Array<{ run_id: string; seq: number; body: string }>;
        for (const r of rows) {
          try {
            const env = JSON.parse(resolveBody(blobDir, r.run_id, r.seq, r.body)) as {
              event?: { unconfirmed?: unknown; costUsd?: unknown };
            };
            if (env.event?.unconfirmed !== true) continue;
            const usd = env.event.costUsd;
            if (typeof usd !== 'number' || !Number.isFinite(usd)) throw new Error('no costUsd');
            out.set(r.run_id, (out.get(r.run_id) ?? 0) + usd);
          } catch {
            bad.add(r.run_id);
          }
        }
      }
      for (const id of bad) out.delete(id);
      return out;
    },
    async saveSnapshot(runId, s: SavedSnapshot) {
      q.saveSnapshot.run(runId, s.seq, s.machineHash, JSON.stringify(s.snapshot));
    },
    async loadSnapshot(runId) {
      const r = q.loadSnapshot.get(runId);
      return r === undefined
        ? undefined
        : { seq: r.seq, machineHash: r.machine_hash, snapshot: JSON.parse(r.body) as unknown };
    },
  };

  const ledger: EffectLedger = {
    claim(runId, step, key, at, claimer): Promise<EffectClaim> {
      return write((): EffectClaim => {
        const inserted = q.claim.run(runId, step, key, at, claimer ?? null).changes === 1;
        if (inserted) return { status: 'claimed' };
        const r = q.getEffect.get(runId, step, key);
        if (r === undefined) return { status: 'claimed' };
        if (r.done_at === null) {
          // The new claimer's name goes on the entry, so the next look says who tried last.
          if (claimer !== undefined) q.reclaim.run(claimer, at, runId, step, key);
          return { status: 'unrecorded', claimedAt: r.claimed_at, claimer: r.claimer };
        }
        return {
          status: 'done',
          result: r.result === null ? undefined : (JSON.parse(r.result) as unknown),
        };
      }, true);
    },
    async record(runId, step, key, result, at) {
      const body = JSON.stringify(result ?? null);
      await write(() => {
        // The claimed entry (the common case) is recorded by one statement; an entry never
        // claimed is made first. One already recorded is left as it is either way.
        if (q.record.run(at, body, runId, step, key).changes === 1) return;
        if (q.claim.run(runId, step, key, at, null).changes === 1)
          q.record.run(at, body, runId, step, key);
      }, true);
    },
  };

  const control: ControlStore = {
    async setKill(flag: KillFlag) {
      q.setKill.run(flag.runId, flag.reason, flag.at);
    },
    async getKills(runIds) {
      const out: KillFlag[] = [];
      // Chunks keep the statement under SQLite's parameter limit.
      for (let i = 0; i < runIds.length; i += 500) {
        const chunk = runIds.slice(i, i + 500);
        const rows = db
          .prepare(
            `SELECT run_id, reason, at FROM kills WHERE run_id IN (${chunk.map(() => '?').join(',')})`,
          )
          .all(...chunk) as Array<{ run_id: string; reason: string; at: number }>;
        for (const r of rows) out.push({ runId: r.run_id, reason: r.reason, at: r.at });
      }
      return out;
    },
    async getKill(runId) {
      const r = q.getKill.get(runId);
      return r === undefined ? undefined : { runId, reason: r.reason, at: r.at };
    },
    async getBreaker(key) {
      const r = q.getBreaker.get(key);
      return r === undefined
        ? { value: undefined, revision: 0 }
        : { value: JSON.parse(r.value) as unknown, revision: r.revision };
    },
    async casBreaker(key, value, revision) {
      const body = JSON.stringify(value);
      if (revision === 0) return q.insertBreaker.run(key, body).changes === 1;
      return q.updateBreaker.run(body, key, revision).changes === 1;
    },
  };

  let leases: LeaseStore;
  let pools: PoolStore;
  let definitions: DefinitionStore;
  let waits: WaitStore;
  let rateLimits: RateLimitStore;
  try {
    leases = sqliteLeases(db, undefined, write);
    pools = sqlitePools(db);
    definitions = sqliteDefinitions(db, readonly);
    waits = sqliteWaits(db, readonly);
    rateLimits = sqliteRateLimits(db);
  } catch (e) {
    db.close();
    throw asStoreFault(e, path);
  }
  return {
    kind: 'sqlite',
    log: guarded(log, path, identity, batched),
    ledger: guarded(ledger, path, identity, batched),
    control: guarded(control, path, identity),
    leases: guarded(leases, path, identity, batched),
    waits: guarded(waits, path, identity),
    pools: guarded(pools, path, identity),
    definitions: guarded(definitions, path, identity),
    rateLimits: guarded(rateLimits, path, identity),
    async close() {
      if (db.open) db.close();
    },
  };
}
