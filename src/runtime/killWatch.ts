/**
 * One kill-flag watcher per runtime: every `pollMs` it asks the store once for the flags of the
 * runs that are waiting or calling (one query for all of them where the store can, else one
 * lookup per run), and wakes the runs whose flag is set. Parked-in-backoff runs then cost a
 * timer each, not a query each every 200 ms.
 */
import type { ControlStore, KillFlag } from '../store/types.js';

type Listener = (flag: KillFlag) => void;

/** Watches kill flags for a set of runs. */
export class KillWatcher {
  private readonly listeners = new Map<string, Set<Listener>>();
  private timer: NodeJS.Timeout | undefined;
  private busy = false;

  constructor(
    private readonly control: ControlStore,
    private readonly pollMs: number,
  ) {}

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
      if (this.listeners.size === 0 && this.timer !== undefined) {
        clearInterval(this.timer);
        this.timer = undefined;
      }
    };
    if (this.timer === undefined) {
      this.timer = setInterval(() => void this.tick(), this.pollMs);
      this.timer.unref?.();
    }
    return stop;
  }

  private async tick(): Promise<void> {
    if (this.busy || this.listeners.size === 0) return;
    this.busy = true;
    try {
      const ids = [...this.listeners.keys()];
      const flags =
        this.control.getKills !== undefined
          ? await this.control.getKills(ids)
          : (await Promise.all(ids.map((id) => this.control.getKill(id)))).filter(
              (f): f is KillFlag => f !== undefined,
            );
      for (const f of flags) for (const l of [...(this.listeners.get(f.runId) ?? [])]) l(f);
    } catch {
      // A failed poll is retried on the next tick; the driver checks the flag itself before acting.
    } finally {
      this.busy = false;
    }
  }
}
