/**
 * The JetStream store's run-index writes, off the append's critical path. An append returns
 * once its events are acked (durable, in order, version-checked by the stream); the index
 * entry that maps the run's seqs to stream sequences is brought up to them afterwards, by one
 * queue per run:
 *
 * - what is written when: an update that starts a run, ends it, changes its status (running,
 *   parked, waiting …: listings by status and the worker's stranded-run scan must see those
 *   at once) or follows a failed append is written at once. Any other update (a run's middle
 *   appends) is held, up to `delayMs` (1 s by default; 0: never held), and goes to KV
 *   together with the run's next updates: the next one written at once, or those pending when
 *   the delay passes (so a long step's progress still reaches the index within about the
 *   delay). `settled` / `settledAll` write held updates first;
 * - a run's updates are applied in order, one at a time, so a later append never races its
 *   own earlier update; updates that piled up meanwhile go to KV as one compare-and-set;
 * - every update is a fold of acked events over the entry it was built on (a stale base makes
 *   the compare-and-set fail and the run catch up from the stream): the index lags the stream,
 *   it is never ahead of it, and a failure leaves it behind, as a writer's crash would;
 * - the writer remembers the tail it published (seq, stream sequence), so its next append
 *   publishes without reading the index first.
 *
 * Readers elsewhere already catch up when the stream is ahead of the index; readers in this
 * process wait for the run's queue ({@link IndexQueue.settled}) so they see their own writes.
 * A crash while an update is held leaves the index behind the stream by the held appends:
 * exactly what a crash between a publish and its index update leaves, which every reader
 * already handles (appends ask the stream, reads and `getRun` catch the index up).
 */
import type { RunStatus } from '../machines/events.js';
import { foldIndex, type IndexEntry, type Located } from './jetstreamIndex.js';

/** A run's index entry and its KV revision. */
export interface Head {
  entry: IndexEntry;
  revision: number;
}

/** What this process last published to a run: where its next append continues. */
export interface Tail {
  lastSeq: number;
  lastStreamSeq: number;
  firstStreamSeq: number;
  status: RunStatus;
}

/** Events one append published, for the index. */
export interface Published {
  /**
   * The index entry the append built on: as read from KV, `undefined` (no entry: a new run),
   * or `'tail'` (it continued this process's own {@link Tail}: the entry is whatever this
   * queue wrote last).
   */
  base: Head | undefined | 'tail';
  /** The stream sequence the append's first event expected (0: an empty subject). */
  builtOn: number;
  written: Located[];
  /** Runs after the entry is written (run list, in order with the run's other updates). */
  after?: () => Promise<unknown>;
  /**
   * May wait, coalesced with the run's next updates (a middle append that left the run's
   * status as it was); otherwise it is written at once, with any update held before it.
   */
  hold?: boolean;
}

/** What the queue needs from the store. */
export interface IndexQueueDeps {
  /** Compare-and-set of the run's entry (revision 0: create); the new revision, or null. */
  cas(runId: string, entry: IndexEntry, revision: number): Promise<number | null>;
  /** Brings the entry up to the stream (reading both); the entry written or found. */
  catchUp(runId: string): Promise<Head | undefined>;
  /** Called with every entry written on the fast path (cost rollups on a run's end). */
  written(entry: IndexEntry): Promise<unknown>;
}

/** Options of {@link indexQueue}. */
export interface IndexQueueOptions {
  /** How long a held update may wait for the run's next ones (default 1,000 ms; 0: none held). */
  delayMs?: number;
  /** Calls `fire` after `ms` without keeping the process alive; returns a cancel (tests fake it). */
  setTimer?: (fire: () => void, ms: number) => () => void;
}

/** The per-run queues of index updates (see the module comment). */
export interface IndexQueue {
  /** Where this process's last append of the run ended, if it knows. */
  tail(runId: string): Tail | undefined;
  /** Queues the index update of an append; `tail` is where it ended (undefined: it failed). */
  published(runId: string, p: Published, tail: Tail | undefined): void;
  /** Forgets the run's tail (an append failed: the next one reads the index). */
  forget(runId: string): void;
  /** Writes the run's held updates and resolves when its queued ones are applied (or given up). */
  settled(runId: string): Promise<void>;
  /** Writes every held update; resolves when those queued before the call are applied (or given up). */
  settledAll(): Promise<void>;
}

interface Writer {
  tail: Tail | undefined;
  /** What KV holds as far as this queue knows (null: unknown, read it). */
  kv: Head | undefined | null;
  /** Updates not applied yet, in order: the first `due` are to be written now, the rest held. */
  queue: Published[];
  due: number;
  running: Promise<void> | undefined;
  /** Cancels the timer that writes the held updates (armed while any is held). */
  cancelTimer: (() => void) | undefined;
}

const TERMINAL = new Set<string>(['completed', 'failed', 'killed']);
/** Idle writers kept (their tails spare a KV get on the run's next append). */
const WRITERS_MAX = 10_000;
const DELAY_MS = 1_000;

/** A real timer that never keeps the process alive (a held update is not worth waiting for). */
function unrefTimer(fire: () => void, ms: number): () => void {
  const t = setTimeout(fire, ms);
  t.unref();
  return () => clearTimeout(t);
}

/** Creates the per-run index queues over `deps`. */
export function indexQueue(deps: IndexQueueDeps, opts: IndexQueueOptions = {}): IndexQueue {
  const writers = new Map<string, Writer>();
  const delayMs = Math.max(0, opts.delayMs ?? DELAY_MS);
  const setTimer = opts.setTimer ?? unrefTimer;

  const apply = async (runId: string, w: Writer, job: Published): Promise<void> => {
    const base = job.base === 'tail' ? w.kv : job.base;
    try {
      let head: Head | undefined | null = null;
      const fast =
        base !== null &&
        (base === undefined ? job.builtOn === 0 : base.entry.lastStreamSeq === job.builtOn);
      if (fast) {
        const entry = foldIndex(runId, base?.entry, job.written);
        const revision = await deps.cas(runId, entry, base?.revision ?? 0);
        if (revision !== null) {
          head = { entry, revision };
          w.kv = head;
          await deps.written(entry).catch(() => undefined);
        }
      }
      if (head === null) w.kv = (await deps.catchUp(runId)) ?? null;
    } catch {
      // The events are durable; the index stays behind until someone catches it up.
      w.kv = null;
    }
    if (job.after !== undefined) await job.after().catch(() => undefined);
  };

  const drain = async (runId: string, w: Writer): Promise<void> => {
    // The due updates, and those held behind them that continue them (one compare-and-set).
    for (let job = w.due > 0 ? w.queue.shift() : undefined; job !== undefined;) {
      w.due--;
      // Appends that continued this one (from the tail) go to KV together with it.
      const afters = job.after !== undefined ? [job.after] : [];
      let written = job.written;
      for (
        let next = w.queue[0];
        next !== undefined &&
        next.base === 'tail' &&
        next.builtOn === written[written.length - 1]?.streamSeq;
        next = w.queue[0]
      ) {
        w.queue.shift();
        w.due = Math.max(0, w.due - 1);
        written = [...written, ...next.written];
        if (next.after !== undefined) afters.push(next.after);
      }
      await apply(runId, w, {
        base: job.base,
        builtOn: job.builtOn,
        written,
        ...(afters.length > 0
          ? {
              after: async () => {
                for (const a of afters) await a().catch(() => undefined);
              },
            }
          : {}),
      });
      job = w.due > 0 ? w.queue.shift() : undefined;
    }
    w.running = undefined;
    if (w.queue.length > 0) return; // held: its timer writes it
    w.cancelTimer?.();
    w.cancelTimer = undefined;
    // An ended run is not appended to again (nearly ever): forget it.
    if (w.tail === undefined || TERMINAL.has(w.tail.status))
      if (writers.get(runId) === w) writers.delete(runId);
  };

  /** Makes every queued update of the run due, and starts writing them. */
  const flush = (runId: string, w: Writer): Promise<void> | undefined => {
    w.due = w.queue.length;
    if (w.running === undefined && w.due > 0) w.running = drain(runId, w);
    return w.running;
  };

  const evictIdle = (): void => {
    if (writers.size <= WRITERS_MAX) return;
    for (const [id, w] of writers) {
      if (w.running === undefined && w.queue.length === 0) {
        writers.delete(id);
        if (writers.size <= WRITERS_MAX) return;
      }
    }
  };

  return {
    tail: (runId) => writers.get(runId)?.tail,
    published(runId, p, tail) {
      let w = writers.get(runId);
      if (w === undefined) {
        w = {
          tail: undefined,
          kv: null,
          queue: [],
          due: 0,
          running: undefined,
          cancelTimer: undefined,
        };
        writers.set(runId, w);
      }
      w.tail = tail;
      w.queue.push(p);
      if (p.hold !== true || delayMs === 0 || tail === undefined) void flush(runId, w);
      else if (w.cancelTimer === undefined) {
        const held = w;
        held.cancelTimer = setTimer(() => {
          held.cancelTimer = undefined;
          void flush(runId, held);
        }, delayMs);
      }
      evictIdle();
    },
    forget(runId) {
      const w = writers.get(runId);
      if (w !== undefined) w.tail = undefined;
    },
    async settled(runId) {
      const w = writers.get(runId);
      if (w !== undefined) await flush(runId, w);
    },
    async settledAll() {
      // A run's drain covers what queues behind it; later runs' updates are not waited for
      // (under steady appends a loop could wait forever).
      await Promise.all([...writers].map(([id, w]) => flush(id, w)));
    },
  };
}
