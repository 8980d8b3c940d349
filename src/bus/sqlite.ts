/**
 * The embedded command bus: a durable work queue in a SQLite table beside the event log, shared
 * by every process on the machine. A claimed command is invisible for `ackWaitMs` (restarted by
 * `working()`); a worker that dies leaves it to reappear for another. Starts are deduplicated by
 * run id; a command past `maxDeliver` deliveries, or malformed, is dead-lettered with the reason.
 */
import Database from 'better-sqlite3';
import { sleep } from '../runtime/clock.js';
import {
  decodeCommand,
  encodeCommand,
  MAX_COMMAND_BYTES,
  runHandler,
  type CommandBus,
  type DeadLetter,
} from './types.js';

/** Options of {@link openSqliteBus}. */
export interface SqliteBusOptions {
  ackWaitMs?: number;
  maxDeliver?: number;
  maxCommandBytes?: number;
  /** How often an idle consumer looks for work (default 100 ms). */
  pollMs?: number;
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

/** Opens the SQLite command bus in the database file at `path`. */
export function openSqliteBus(path: string, opts: SqliteBusOptions = {}): CommandBus {
  const ackWait = opts.ackWaitMs ?? 30_000;
  const maxDeliver = opts.maxDeliver ?? 5;
  const maxBytes = opts.maxCommandBytes ?? MAX_COMMAND_BYTES;
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.pragma('busy_timeout = 10000');
  db.exec(SCHEMA);
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

  const publish = (
    cmd: { type: string; runId: string },
    dedup: string | null,
  ): { duplicate: boolean } => {
    const data = encodeCommand(cmd, maxBytes);
    return {
      duplicate: q.insert.run(dedup, cmd.type, Buffer.from(data), Date.now()).changes === 0,
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
      while (!o.signal.aborted) {
        if (inFlight.size >= o.concurrency) {
          await Promise.race(inFlight);
          continue;
        }
        let row: Row | undefined;
        try {
          row = claimTx.immediate(Date.now());
        } catch (e) {
          o.onError?.(e, undefined);
        }
        if (row === undefined) {
          await sleep(opts.pollMs ?? 100, o.signal);
          continue;
        }
        const { id, deliveries } = row;
        const data = new Uint8Array(row.data);
        if (deliveries > maxDeliver) {
          q.bury.run(
            `delivered ${deliveries - 1} times without being acknowledged (max_deliver ${maxDeliver})`,
            Date.now(),
            id,
          );
          continue;
        }
        const decoded = decodeCommand(data, maxBytes);
        if (!decoded.ok) {
          q.bury.run(decoded.reason, Date.now(), id);
          continue;
        }
        const ctl = {
          deliveries,
          working: () => void q.touch.run(Date.now() + ackWait, id),
          ack: async () => void q.ack.run(Date.now(), id),
          nak: (delayMs = 0) => {
            if (deliveries >= maxDeliver)
              q.bury.run(`nak'ed on the last of ${maxDeliver} deliveries`, Date.now(), id);
            else q.touch.run(Date.now() + delayMs, id);
          },
          deadLetter: async (reason: string) => void q.bury.run(reason, Date.now(), id),
          // Leave it claimed: it reappears after the ack wait unless its new holder acks it.
          release: () => undefined,
        };
        const p = runHandler(handler, decoded.cmd, ctl, o.onError).finally(() =>
          inFlight.delete(p),
        );
        inFlight.add(p);
      }
      await Promise.allSettled(inFlight);
    },
    async deadLetters(): Promise<DeadLetter[]> {
      return q.dead.all().map((r) => ({
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
