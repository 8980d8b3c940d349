/**
 * A long backoff (a 429's `retry-after: 60`, say) need not hold the run in memory: like a
 * durable sleep, its end is written to the store's wake-up schedule and the driver lets the run
 * go (its lease released, no promise, timer or listener left behind); the wake-up sweep drives
 * it on at its `retryAt`. Nothing new is logged: the TIMER appended when it is driven again is
 * the event a resident run would have appended, so the machine and its log are unchanged.
 */
import type { DriverEnv } from './env.js';

/** The default threshold workers use: backoffs at least this long let the run go. */
export const DEFAULT_UNLOAD_BACKOFF_MS = 10_000;

/** What {@link unloadBackoff} decided. */
export type Unload =
  /** Waited out here (short, or unloading is off). */
  | { unload: false }
  /** The run's kill flag is set: record the KILL instead of letting it go. */
  | { unload: false; killed: string }
  /** Scheduled to wake at `until`: the driver lets the run go. */
  | { unload: true };

/**
 * Lets a run in backoff until `until` go when the wait is at least `env.unloadBackoffMs` long:
 * records `until` as its wake-up time (replacing any earlier one) and says so.
 */
export async function unloadBackoff(env: DriverEnv, runId: string, until: number): Promise<Unload> {
  const min = env.unloadBackoffMs;
  const now = env.clock.now();
  if (min === undefined || until - now < min) return { unload: false };
  // A run killed meanwhile records its KILL now rather than at its wake-up.
  const flag = await env.kills.current(runId);
  if (flag !== undefined) return { unload: false, killed: flag.reason };
  await env.store.waits.setWaiting({ runId, signal: null, wakeAt: until, since: now });
  return { unload: true };
}
