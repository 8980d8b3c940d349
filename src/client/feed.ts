/**
 * Run events as async iterators: the history first, then live events, each once and in seq order
 * per run. One shared tail of the store (`readAll` after the last position seen, the visualizer's
 * `StoreTail`) feeds every subscription of a client, on SQLite and on JetStream alike: a
 * subscription registers with the tail first, then reads its history, so nothing appended in
 * between is lost, and duplicates are dropped by seq (one run) or store position (a filter).
 */
import { isTerminal } from '../machines/fold.js';
import type { RunStatus, StoredEnvelope } from '../machines/events.js';
import type { Logger } from '../runtime/logger.js';
import type { EventLog, PositionedEnvelope } from '../store/types.js';
import { StoreTail } from '../viz/tail.js';
import { Channel } from './channel.js';

/** Which runs' events a filtered subscription yields. */
export interface SubscribeFilter {
  /** Only runs of this pipeline. */
  pipeline?: string;
  /** Only events after which the run has one of these statuses (`['failed']`: each failure). */
  status?: RunStatus | RunStatus[];
  /** Start with the events already in the store (default true); false: live events only. */
  history?: boolean;
}

/** A run event as a subscription yields it. */
export type RunEventEnvelope = StoredEnvelope;

/** The events of one run (ends at its terminal event) or of a filter (never ends by itself). */
export type RunSubscription = AsyncIterableIterator<StoredEnvelope>;

const PAGE = 1000;

/** The envelope as the log's `read` gives it (the store position is the feed's business). */
const stored = (env: StoredEnvelope): StoredEnvelope => {
  if (!('pos' in env)) return env;
  const { pos: _pos, ...rest } = env as PositionedEnvelope;
  return rest;
};

/** Every subscription of one client, over one tail of its store. */
export class EventFeed {
  private readonly tail: StoreTail;
  private readonly open = new Set<Channel<StoredEnvelope>>();

  constructor(
    private readonly log: EventLog,
    pollMs: number,
    logger: Logger,
  ) {
    this.tail = new StoreTail(log, pollMs, logger);
  }

  /** The events of `runId` (known yet or not): history, then live, until its terminal event. */
  run(runId: string): RunSubscription {
    let last = 0;
    let unsubscribe = (): void => undefined;
    const ch = this.channel(() => unsubscribe());
    const emit = (env: StoredEnvelope): void => {
      if (ch.done || env.seq <= last) return;
      last = env.seq;
      ch.push(stored(env));
      if (isTerminal(env.state.status)) ch.end();
    };
    /** A live event; a gap (not expected: the tail reads in store order) is filled from the log. */
    const live = async (env: StoredEnvelope): Promise<void> => {
      if (ch.done || env.seq <= last) return;
      if (env.seq > last + 1) for (const e of await this.log.read(runId, last + 1)) emit(e);
      emit(env);
    };
    void this.serve(
      ch,
      (env) => env.runId === runId,
      live,
      async () => {
        for (const env of await this.log.read(runId)) emit(env);
      },
      (u) => (unsubscribe = u),
    );
    return ch;
  }

  /** The events of every run matching `filter`, in store order: history, then live. */
  filtered(filter: SubscribeFilter): RunSubscription {
    const statuses =
      filter.status === undefined
        ? undefined
        : new Set(Array.isArray(filter.status) ? filter.status : [filter.status]);
    const pipelineOf = new Map<string, string>();
    let lastPos = 0;
    let unsubscribe = (): void => undefined;
    const ch = this.channel(() => unsubscribe());
    const emit = async (env: PositionedEnvelope): Promise<void> => {
      if (ch.done || env.pos <= lastPos) return;
      lastPos = env.pos;
      if (env.event.type === 'run.started') pipelineOf.set(env.runId, env.event.pipeline);
      if (filter.pipeline !== undefined) {
        let p = pipelineOf.get(env.runId);
        if (p === undefined) {
          // Live from now: this run started before the subscription.
          p = (await this.log.getRun(env.runId))?.pipeline ?? '';
          pipelineOf.set(env.runId, p);
        }
        if (p !== filter.pipeline) return;
      }
      if (statuses !== undefined && !statuses.has(env.state.status)) return;
      ch.push(stored(env));
    };
    const history = async (): Promise<void> => {
      if (filter.history === false) return;
      for (let pos = 0; !ch.done;) {
        const page = await this.log.readAll(pos, PAGE);
        for (const env of page) await emit(env);
        if (page.length < PAGE) break;
        pos = page[page.length - 1]?.pos ?? pos;
      }
    };
    void this.serve(
      ch,
      () => true,
      emit,
      history,
      (u) => (unsubscribe = u),
    );
    return ch;
  }

  /** Ends every open subscription and stops polling. */
  close(): void {
    for (const ch of this.open) ch.end();
    this.tail.close();
  }

  private channel(cleanup: () => void): Channel<StoredEnvelope> {
    const ch: Channel<StoredEnvelope> = new Channel(() => {
      this.open.delete(ch);
      cleanup();
    });
    this.open.add(ch);
    return ch;
  }

  /**
   * Registers with the tail, then reads the history; live envelopes wait for the history and
   * are handled one at a time, in store order. Hands the unsubscribe function to `registered`
   * (or calls it at once when the subscription ended meanwhile); never rejects: a failure ends
   * the subscription with that error.
   */
  private async serve(
    ch: Channel<StoredEnvelope>,
    wanted: (env: PositionedEnvelope) => boolean,
    live: (env: PositionedEnvelope) => Promise<void>,
    history: () => Promise<void>,
    registered: (unsubscribe: () => void) => void,
  ): Promise<void> {
    let opened!: () => void;
    let chain: Promise<void> = new Promise<void>((r) => (opened = r)).then(history);
    const fail = (e: unknown): void => ch.fail(e);
    chain = chain.catch(fail);
    try {
      const { unsubscribe } = await this.tail.subscribe((env) => {
        if (ch.done || !wanted(env)) return;
        chain = chain.then(() => live(env)).catch(fail);
      });
      if (ch.done) unsubscribe();
      else registered(unsubscribe);
    } catch (e) {
      fail(e);
    } finally {
      opened();
    }
  }
}
