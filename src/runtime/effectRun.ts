/**
 * One attempt of an effect under a timeout, the run's kill flag and the drive's signal. When one
 * of them fires, the effect's `signal` is aborted and it gets a grace period to stop; an effect
 * still running after it is abandoned: the driver stops waiting (its promise is left to settle
 * unobserved, its result never recorded) so the run, and the worker's slot, are not held by it.
 * Times are real (timers), not the runtime's clock: user code runs in real time even when the
 * recorded times come from a virtual or accelerated clock.
 */
import { sleep } from './clock.js';
import type { KillWatcher } from './killWatch.js';

/** How the effect's function settled. */
export type Settled = { ok: true; value: unknown } | { ok: false; error: unknown };

/** Why the effect was asked to stop. */
export type StopReason =
  | { kind: 'timeout'; timeoutMs: number }
  | { kind: 'killed'; reason: string }
  /** The drive's own signal: the worker is shutting down or the run's lease was lost. */
  | { kind: 'aborted' };

/** How a guarded attempt ended. */
export type Guarded =
  /** The function settled before anything asked it to stop. */
  | { end: 'settled'; settled: Settled }
  /** Asked to stop; `late` is how it settled within the grace, null if it did not (abandoned). */
  | { end: 'stopped'; why: StopReason; late: Settled | null };

/** Options of {@link runGuarded}. */
export interface GuardOptions {
  runId: string;
  timeoutMs: number;
  graceMs: number;
  /** The drive's signal. */
  signal: AbortSignal;
  kills: KillWatcher;
}

/** An effect's grace after its signal is aborted, unless the runtime says otherwise: 5 s. */
export const DEFAULT_EFFECT_GRACE_MS = 5_000;

/**
 * Runs `f` with a signal aborted on timeout, kill or the drive's abort, and waits for it to
 * settle — at most `graceMs` once that signal is aborted.
 */
export async function runGuarded(
  f: (signal: AbortSignal) => unknown,
  o: GuardOptions,
): Promise<Guarded> {
  const ac = new AbortController();
  // Written by callbacks, so kept in an object (not narrowed away by the compiler).
  const st: { why: StopReason | null; settled: Settled | null } = { why: null, settled: null };
  let wake: () => void = () => undefined;
  const stopped = new Promise<void>((resolve) => (wake = resolve));
  const halt = (w: StopReason, reason: unknown): void => {
    if (st.why !== null) return;
    st.why = w;
    ac.abort(reason);
    wake();
  };
  const timer = setTimeout(
    () =>
      halt(
        { kind: 'timeout', timeoutMs: o.timeoutMs },
        new DOMException(`timed out after ${o.timeoutMs} ms`, 'TimeoutError'),
      ),
    o.timeoutMs,
  );
  const unwatch = o.kills.watch(o.runId, (flag) =>
    halt(
      { kind: 'killed', reason: flag.reason },
      new DOMException(`run killed: ${flag.reason}`, 'AbortError'),
    ),
  );
  const onAbort = (): void => halt({ kind: 'aborted' }, o.signal.reason);
  o.signal.addEventListener('abort', onAbort, { once: true });
  if (o.signal.aborted) onAbort();
  // Never rejects: an abandoned function's late failure is not an unhandled rejection.
  const done = (async () => f(ac.signal))().then(
    (value) => void (st.settled = { ok: true, value }),
    (error: unknown) => void (st.settled = { ok: false, error }),
  );
  try {
    await Promise.race([done, stopped]);
    // Not stopped: it settled. (Aborting its signal may settle it at once, so a stop is looked
    // at first: then how it settled is its answer to the stop.)
    if (st.why === null && st.settled !== null) return { end: 'settled', settled: st.settled };
    const grace = new AbortController();
    await Promise.race([done.then(() => grace.abort()), sleep(o.graceMs, grace.signal)]);
    grace.abort();
    return { end: 'stopped', why: st.why ?? { kind: 'aborted' }, late: st.settled };
  } finally {
    clearTimeout(timer);
    unwatch();
    o.signal.removeEventListener('abort', onAbort);
  }
}

/** An effect that ignored its aborted signal past the grace: reported, then not waited for. */
export interface AbandonedEffect {
  runId: string;
  pipeline: string;
  step: string;
  key: string;
  /** What asked it to stop. */
  reason: StopReason['kind'];
  graceMs: number;
}

const NOT_JSON = '$plumbline:not-json';

/**
 * The ledger entry of an effect that ran but returned something that is not JSON: the effect
 * happened (a resume must not run it again), and the step fails with `message`.
 */
export function notJsonMarker(message: string): Record<string, string> {
  return { [NOT_JSON]: message };
}

/** The message of a {@link notJsonMarker} found in the ledger, or null for a real result. */
export function notJsonMessage(result: unknown): string | null {
  if (typeof result !== 'object' || result === null) return null;
  const m = (result as Record<string, unknown>)[NOT_JSON];
  return typeof m === 'string' ? m : null;
}
