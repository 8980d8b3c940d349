/**
 * One kill-flag watcher per runtime: every `pollMs` it asks the store once for the flags of the
 * runs it watches (one query for all of them where the store can, else one lookup per run) and
 * wakes the runs whose flag is set. Runs that wait or call register a listener; runs that are
 * about to act ask {@link KillWatcher.current}, answered from the last poll, so a step's `ready`
 * costs no store read. Parked-in-backoff runs cost a timer each, not a query each every 200 ms.
 */
import type { ControlStore, KillFlag } from '../store/types.js';

type Listener = (flag: KillFlag) => void;

/** What the watcher knows of a run that asked {@link KillWatcher.current}. */
interface Known {
  flag: KillFlag | undefined;
  /** When the store was asked (`performance.now()`): the answer is at least this recent. */
  checkedAt: number;
  /** When the run last asked: runs that stopped asking leave the watched set. */
  askedAt: number;
}

/** Options of {@link KillWatcher}. */
export interface KillWatcherOptions {
  /**
   * How old a polled answer may be before `current` reads the store itself, ms (default
   * `pollMs`): a kill is seen within one poll interval even when polls fall behind.
   */
  maxAgeMs?: number;
  /** Runs that have not asked for this long stop being polled, ms (default max(2 s, 10 polls)). */
  idleMs?: number;
}

/** Watches kill flags for a set of runs. */
export class KillWatcher {
  private readonly listeners = new Map<string, Set<Listener>>();
  private readonly known = new Map<string, Known>();
  private timer: NodeJS.Timeout | undefined;
  private busy = false;
  private readonly maxAgeMs: number;
  private readonly idleMs: number;
  /** Store reads `current` made itself (a run new to the watcher, or a poll fallen behind). */
  reads = 0;

  constructor(
    private readonly control: ControlStore,
    private readonly pollMs: number,
    options: KillWatcherOptions = {},
  ) {
    this.maxAgeMs = options.maxAgeMs ?? pollMs;
    this.idleMs = options.idleMs ?? Math.max(2_000, 10 * pollMs);
  }

  /**
   * The run's kill flag as of the last poll (at most `maxAgeMs` old), and the run is polled from
   * now on. The first call for a run reads the store, so a kill set before it started is seen,
   * unless the store checked every run's flag within `maxAgeMs` (`ControlStore.killAsOf`): then
   * that check answers, and a kill set since is seen as any polled run's is, within `maxAgeMs`.
   */
  async current(runId: string): Promise<KillFlag | undefined> {
    const now = performance.now();
    const k = this.known.get(runId);
    // A flag, once set, is never cleared: a known one needs no fresher answer.
    if (k !== undefined && (k.flag !== undefined || now - k.checkedAt <= this.maxAgeMs)) {
      k.askedAt = now;
      return k.flag;
    }
    // A store that checked every run's flag within `maxAgeMs` answers from that check: the
    // answer is as old as a polled one may be.
    const asOf = await this.control.killAsOf?.(runId, now - this.maxAgeMs);
    let checkedAt = now;
    let found: KillFlag | undefined;
    if (asOf !== undefined) {
      found = asOf.flag;
      checkedAt = Math.min(asOf.at, now);
    } else {
      this.reads += 1;
      found = await this.control.getKill(runId);
    }
    const flag = found ?? this.known.get(runId)?.flag;
    const cur = this.known.get(runId);
    if (cur === undefined || cur.checkedAt <= checkedAt)
      this.known.set(runId, { flag, checkedAt, askedAt: now });
    this.arm();
    return flag;
  }

  /** Calls `onKill` once if the run's flag is set while watched; returns the unwatch function. */
  watch(runId: string, onKill: Listener): () => void {
    let set = this.listeners.get(runId);
    if (set === undefined) this.listeners.set(runId, (set = new Set()));
    const once: Listener = (f) => {
      stop();
      onKill(f);
    };
    set.add(once);
    const stop = (): void => {
      const s = this.listeners.get(runId);
      s?.delete(once);
      if (s?.size === 0) this.listeners.delete(runId);
      this.disarmIfIdle();
    };
    this.arm();
    return stop;
  }

  private arm(): void {
    if (this.timer !== undefined) return;
    this.timer = setInterval(() => void this.tick(), this.pollMs);
    this.timer.unref?.();
  }

  private disarmIfIdle(): void {
    if (this.listeners.size === 0 && this.known.size === 0 && this.timer !== undefined) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  /**
   * The runs to poll: every listener's, and every run that asked lately and is not yet killed
   * when the store answers them in one query (else a poll would cost a read per run per tick,
   * more than the asks it saves: `current` then reads the store once its answer is stale).
   */
  private watched(now: number): string[] {
    const ids = new Set(this.listeners.keys());
    const batched = this.control.getKills !== undefined;
    for (const [id, k] of this.known) {
      if (now - k.askedAt > this.idleMs) this.known.delete(id);
      else if (batched && k.flag === undefined) ids.add(id);
    }
    return [...ids];
  }

  private async tick(): Promise<void> {
    if (this.busy) return;
    const now = performance.now();
    const ids = this.watched(now);
    if (ids.length === 0) return this.disarmIfIdle();
    this.busy = true;
    try {
      const flags =
        this.control.getKills !== undefined
          ? await this.control.getKills(ids)
          : (await Promise.all(ids.map((id) => this.control.getKill(id)))).filter(
              (f): f is KillFlag => f !== undefined,
            );
      for (const id of ids) {
        const k = this.known.get(id);
        if (k !== undefined && k.checkedAt < now) k.checkedAt = now;
      }
      for (const f of flags) {
        const k = this.known.get(f.runId);
        if (k !== undefined) k.flag = f;
        for (const l of [...(this.listeners.get(f.runId) ?? [])]) l(f);
      }
    } catch {
      // A failed poll is retried on the next tick; `current` reads the store once answers age.
    } finally {
      this.busy = false;
    }
  }
}
