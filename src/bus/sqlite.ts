/**
 * The embedded command bus: a durable work queue in a SQLite table beside the event log, shared
 * by every process on the machine. A claimed command is invisible for `ackWaitMs` (default
 * 1.5 s), extended for all of a consumer's unsettled commands in one write every ack wait / 5;
 * a worker that dies stops extending them and they reappear for another. Starts are
 * deduplicated by run id; a command past `maxDeliver` deliveries, or malformed, is
 * dead-lettered with the reason. A full, read-only or vanished database file never breaks the
 * consume loop: it is reported to `onError` as a StoreUnavailableError, claims back off, and a
 * delivery that failed because of it does not count towards `maxDeliver`.
 */
import type Database from 'better-sqlite3';
import { isStoreUnavailable } from '../errors.js';
import { sleep } from '../runtime/clock.js';
import { asStoreFault, fileIdentity, openSqliteFile } from '../store/sqliteFaults.js';
import { Heartbeat } from './heartbeat.js';
import {
  DEFAULT_ACK_WAIT_MS,
  decodeCommand,
  encodeCommand,
  heartbeatEveryMs,
  MAX_COMMAND_BYTES,
  runHandler,
  type CommandBus,
  type DeadLetter,
} from './types.js';

/** Options of {@link openSqliteBus}. */
export interface SqliteBusOptions {
  /** A claimed command reappears this long after its consumer's last heartbeat (default 1.5 s). */
  ackWaitMs?: number;
  maxDeliver?: number;
  maxCommandBytes?: number;
  /** How often an idle consumer looks for work (default 100 ms). */
  pollMs?: number;
  /** Longest wait between claims while the database refuses them (default 10 s). */
  maxBackoffMs?: number;
  /** Called with the connection once it is set up: for PRAGMAs such as `max_page_count`. */
  connection?: (db: Database.Database) => void;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS commands (
  id INTEGER PRIMARY KEY AUTOINCREMENT, dedup TEXT UNIQUE, kind TEXT NOT NULL, data BLOB NOT NULL,
  deliveries INTEGER NOT NULL DEFAULT 0, visible_at INTEGER NOT NULL, done_at INTEGER,
  dead_reason TEXT, dead_at INTEGER);
CREATE INDEX IF NOT EXISTS commands_ready ON commands (done_at, dead_at, visible_at);
`;

interface Row {
  id: number;
  kind: string;
  data: Buffer;
  deliveries: number;
}

/**
 * Opens the SQLite command bus in the database file at `path` (creating its directory, as the
 * store does); an unusable file is a StoreUnavailableError naming the path and the fix.
 */
export function openSqliteBus(path: string, opts: SqliteBusOptions = {}): CommandBus {
  const ackWait = opts.ackWaitMs ?? DEFAULT_ACK_WAIT_MS;
  const maxDeliver = opts.maxDeliver ?? 5;
  const maxBytes = opts.maxCommandBytes ?? MAX_COMMAND_BYTES;
  const pollMs = opts.pollMs ?? 100;
  const db = openSqliteFile(path, (c) => {
    c.exec(SCHEMA);
    opts.connection?.(c);
  });
  const identity = fileIdentity(path);
  /** Runs a write; whole-file faults (and the file gone from under us) as StoreUnavailableError. */
  const write = <R>(f: () => R): R => {
    try {
      const r = f();
      identity.check();
      return r;
    } catch (e) {
      throw asStoreFault(e, path);
    }
  };
  const q = {
    insert: db.prepare(
      'INSERT OR IGNORE INTO commands (dedup, kind, data, visible_at) VALUES (?, ?, ?, ?)',
    ),
    claim: db.prepare<[number, number, number], Row>(
      `UPDATE commands SET deliveries = deliveries + 1, visible_at = ?
       WHERE id = (SELECT id FROM commands WHERE done_at IS NULL AND dead_at IS NULL AND visible_at <= ? ORDER BY id LIMIT 1)
       AND visible_at <= ? RETURNING id, kind, data, deliveries`,
    ),
    touch: db.prepare(
      'UPDATE commands SET visible_at = ? WHERE id = ? AND done_at IS NULL AND dead_at IS NULL',
    ),
    // A delivery the store itself failed is given back: it does not bring the command nearer
    // to the dead-letter queue.
    refund: db.prepare(
      'UPDATE commands SET visible_at = ?, deliveries = MAX(0, deliveries - 1) WHERE id = ? AND done_at IS NULL AND dead_at IS NULL',
    ),
    ack: db.prepare('UPDATE commands SET done_at = ? WHERE id = ?'),
    bury: db.prepare(
      'UPDATE commands SET dead_reason = ?, dead_at = ? WHERE id = ? AND done_at IS NULL',
    ),
    dead: db.prepare<
      [],
      { kind: string; data: Buffer; deliveries: number; dead_reason: string; dead_at: number }
    >(
      'SELECT kind, data, deliveries, dead_reason, dead_at FROM commands WHERE dead_at IS NOT NULL ORDER BY dead_at, id',
    ),
  };
  const claimTx = db.transaction((now: number) => q.claim.get(now + ackWait, now, now));
  /** One heartbeat for every unsettled claim of a consumer: one commit, whatever their number. */
  const touchAll = db.transaction((ids: number[]) => {
    const until = Date.now() + ackWait;
    for (const id of ids) q.touch.run(until, id);
  });

  const publish = (
    cmd: { type: string; runId: string },
    dedup: string | null,
  ): { duplicate: boolean } => {
    const data = encodeCommand(cmd, maxBytes);
    return {
      duplicate:
        write(() => q.insert.run(dedup, cmd.type, Buffer.from(data), Date.now())).changes === 0,
    };
  };

  return {
    kind: 'local',
    async publishStart(cmd) {
      return publish({ ...cmd, type: 'start' }, `start:${cmd.runId}`);
    },
    async publishResume(cmd) {
      return publish({ ...cmd, type: 'resume' }, null);
    },
    async consume(handler, o) {
      const inFlight = new Set<Promise<void>>();
      /** Reports a failed bus write without ever throwing out of the loop or a timer. */
      const report = (e: unknown, cmd?: Parameters<NonNullable<typeof o.onError>>[1]): void =>
        o.onError?.(asStoreFault(e, path), cmd);
      const beats = new Heartbeat<number>(
        heartbeatEveryMs(ackWait),
        (ids) => write(() => touchAll.immediate(ids)),
        (e) => report(e),
      );
      let idleMs = pollMs;
      while (!o.signal.aborted) {
        if (inFlight.size >= o.concurrency) {
          await Promise.race(inFlight);
          continue;
        }
        let row: Row | undefined;
        try {
          row = write(() => claimTx.immediate(Date.now()));
          idleMs = pollMs;
        } catch (e) {
          report(e);
          // The database refuses writes: back off instead of failing every poll.
          idleMs = Math.min(Math.max(idleMs, pollMs) * 2, opts.maxBackoffMs ?? 10_000);
          await sleep(idleMs, o.signal);
          continue;
        }
        if (row === undefined) {
          await sleep(pollMs, o.signal);
          continue;
        }
        const { id, deliveries } = row;
        const data = new Uint8Array(row.data);
        const bury = (reason: string): void => {
          try {
            write(() => q.bury.run(reason, Date.now(), id));
          } catch (e) {
            report(e); // Still claimed: it reappears after the ack wait and is buried then.
          }
        };
        if (deliveries > maxDeliver) {
          bury(
            `delivered ${deliveries - 1} times without being acknowledged (max_deliver ${maxDeliver})`,
          );
          continue;
        }
        const decoded = decodeCommand(data, maxBytes);
        if (!decoded.ok) {
          bury(decoded.reason);
          continue;
        }
        const cmd = decoded.cmd;
        let storeFailed = false;
        const ctl = {
          deliveries,
          working: () => {
            try {
              write(() => q.touch.run(Date.now() + ackWait, id));
            } catch (e) {
              report(e, cmd);
            }
          },
          ack: async () => {
            beats.delete(id);
            write(() => q.ack.run(Date.now(), id));
          },
          nak: (delayMs = 0) => {
            beats.delete(id);
            try {
              if (storeFailed) write(() => q.refund.run(Date.now() + delayMs, id));
              else if (deliveries >= maxDeliver)
                write(() =>
                  q.bury.run(`nak'ed on the last of ${maxDeliver} deliveries`, Date.now(), id),
                );
              else write(() => q.touch.run(Date.now() + delayMs, id));
            } catch (e) {
              report(e, cmd); // Still claimed: it reappears after the ack wait.
            }
          },
          deadLetter: async (reason: string) => {
            beats.delete(id);
            write(() => q.bury.run(reason, Date.now(), id));
          },
          // Leave it claimed, unbeaten: it reappears after the ack wait unless its new holder
          // (which beats it) acks it.
          release: () => beats.delete(id),
        };
        const onError = (e: unknown, c: typeof cmd | undefined): void => {
          if (isStoreUnavailable(asStoreFault(e, path))) storeFailed = true;
          o.onError?.(e, c);
        };
        beats.add(id);
        const p = runHandler(handler, cmd, ctl, onError)
          .catch((e: unknown) => report(e, cmd))
          .finally(() => {
            beats.delete(id);
            inFlight.delete(p);
          });
        inFlight.add(p);
      }
      await Promise.allSettled(inFlight);
      beats.stop();
    },
    async deadLetters(): Promise<DeadLetter[]> {
      let rows;
      try {
        rows = q.dead.all();
      } catch (e) {
        throw asStoreFault(e, path);
      }
      return rows.map((r) => ({
        reason: r.dead_reason,
        subject: r.kind,
        data: new Uint8Array(r.data),
        deliveries: r.deliveries,
        at: r.dead_at,
      }));
    },
    async close() {
      if (db.open) db.close();
    },
  };
}
