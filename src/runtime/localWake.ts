/**
 * The embedded runtime's own wake-up sweep: with no worker and no bus, the runtime that lets
 * runs go (long backoffs, sleeps, waits with a timeout) drives them on itself when their time
 * comes. It knows the pipelines it has driven, by name; a due run of another pipeline is left
 * for a process that loads it (a worker, `plumbline resume`).
 */
import { serializeError } from '../errors.js';
import { isTerminal } from '../machines/fold.js';
import type { Store } from '../store/types.js';
import type { Logger } from './logger.js';
import type { Prepared } from './prepare.js';
import { WakeSweep } from './wakeSweep.js';

/** Options of {@link LocalWake}. */
export interface LocalWakeOptions {
  store: Store;
  logger: Logger;
  /** The runtime's clock (a due time is judged on it). */
  now: () => number;
  /** Drives a due run (under its lease: a run driven elsewhere is left alone). */
  drive: (prepared: Prepared, runId: string) => Promise<unknown>;
  /** How often to look (default 1 s). */
  everyMs?: number;
  /** At most this many woken runs driven at once (default 64); the sweep waits for room. */
  concurrency?: number;
}

/** Wakes due runs of the pipelines this runtime drove, driving each here. */
export class LocalWake {
  private readonly pipelines = new Map<string, Prepared>();
  private readonly sweep: WakeSweep;
  private inFlight = 0;
  private room: (() => void) | null = null;

  constructor(private readonly o: LocalWakeOptions) {
    this.sweep = new WakeSweep({
      store: o.store,
      logger: o.logger,
      now: o.now,
      ...(o.everyMs !== undefined ? { everyMs: o.everyMs } : {}),
      wake: (runId) => this.wake(runId),
    });
    this.sweep.start();
  }

  /** Remembers a pipeline this runtime drives, so its due runs can be woken here. */
  note(prepared: Prepared): void {
    if (this.pipelines.get(prepared.pipeline.name) !== prepared)
      this.pipelines.set(prepared.pipeline.name, prepared);
  }

  /** One look now (tests; the timer looks every `everyMs`); returns how many runs it woke. */
  tick(): Promise<number> {
    return this.sweep.tick();
  }

  /** Stops waking runs here (a worker wakes them through its bus instead). */
  stop(): void {
    this.sweep.stop();
  }

  private async wake(runId: string): Promise<boolean> {
    const run = await this.o.store.log.getRun(runId);
    // Ended without taking its wake-up off the schedule (killed by another path): drop it.
    if (run !== undefined && isTerminal(run.status)) {
      await this.o.store.waits.clearWaiting(runId);
      return true;
    }
    const prepared = run !== undefined ? this.pipelines.get(run.pipeline) : undefined;
    // Not a pipeline this runtime knows: left for another process (or until `wakes` names it).
    if (prepared === undefined) return false;
    // Bounded: a thousand runs due at once are driven `concurrency` at a time, not all at once.
    while (this.inFlight >= (this.o.concurrency ?? 64))
      await new Promise<void>((r) => (this.room = r));
    this.inFlight++;
    void this.o
      .drive(prepared, runId)
      .catch((e: unknown) => {
        this.o.logger.error(
          { runId, err: serializeError(e), decision: 'leave' },
          'waking a due run failed: it stays scheduled and is tried again',
        );
      })
      .finally(() => {
        this.inFlight--;
        const r = this.room;
        this.room = null;
        r?.();
      });
    return true;
  }
}
