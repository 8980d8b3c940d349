/**
 * The runtime's clock: injected so tests can accelerate time. Only the driver reads it; the
 * times it reads are written into event payloads, never read by guards.
 */

/** A clock: the time now, and a sleep that an abort signal cuts short. */
export interface Clock {
  now(): number;
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

/** Sleeps `ms` on the real timer, resolving early (without throwing) when `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted || ms <= 0) return resolve();
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

/** The wall clock. */
export const systemClock: Clock = { now: () => Date.now(), sleep };

/**
 * A clock whose time runs `factor` times faster than real time (sleeps are divided by it):
 * backoffs of seconds take milliseconds, and the recorded timestamps stay consistent.
 */
export function acceleratedClock(factor: number, start = Date.now()): Clock {
  const t0 = Date.now();
  return {
    now: () => start + (Date.now() - t0) * factor,
    sleep: (ms, signal) => sleep(ms / factor, signal),
  };
}

/**
 * A virtual clock for tests: time moves only when someone sleeps, by exactly the time slept,
 * so recorded delays and deadlines can be asserted to the millisecond without waiting.
 */
export function virtualClock(start = Date.UTC(2026, 0, 1)): Clock {
  let t = start;
  return {
    now: () => t,
    sleep: (ms, signal) => {
      if (signal?.aborted !== true) t += Math.max(0, ms);
      return new Promise((resolve) => setImmediate(resolve));
    },
  };
}
