/**
 * The circuit breaker, as a small XState machine shared by every run of a deployment:
 * `closed` counts outcomes in a sliding window and opens on a failure rate or a streak;
 * `open` refuses calls until its cool-down ends; then one caller becomes the `halfOpen` probe,
 * whose success closes the breaker and whose failure opens it again; a probe that ends without
 * a verdict (a 429) or is never heard of again (after `probeTimeoutMs`) is handed to the next
 * caller. Pure: times are in events.
 */
import { assign, setup, type AnyMachineSnapshot } from 'xstate';

/** Breaker settings. */
export interface BreakerConfig {
  /** Outcomes kept in the window (default 10). */
  window: number;
  /** Minimum outcomes in the window before the rate applies (default 5). */
  minCalls: number;
  /** Failure rate in the window that opens the breaker (default 0.5). */
  failureRate: number;
  /** Consecutive failures that open the breaker regardless of the window (default 5). */
  consecutive: number;
  /** How long the breaker stays open before a probe is let through, ms (default 30 s). */
  coolDownMs: number;
  /** A probe that has not reported within this time is presumed lost, ms (default 60 s). */
  probeTimeoutMs: number;
}

/** Defaults for {@link BreakerConfig}. */
export const DEFAULT_BREAKER: BreakerConfig = {
  window: 10,
  minCalls: 5,
  failureRate: 0.5,
  consecutive: 5,
  coolDownMs: 30_000,
  probeTimeoutMs: 60_000,
};

/** The breaker's context (persisted as JSON). */
export interface BreakerContext {
  config: BreakerConfig;
  outcomes: boolean[];
  streak: number;
  openedAt: number | null;
  probeAt: number | null;
  opens: number;
}

/** Events the breaker receives. */
export type BreakerEvent =
  | { type: 'ACQUIRE'; now: number }
  | { type: 'SUCCESS'; now: number }
  | { type: 'FAILURE'; now: number }
  /** A call ended in a way that does not count (a 429, a 400): a probe it held is free again. */
  | { type: 'RELEASE'; now: number };

const tripped = ({ context }: { context: BreakerContext }): boolean => {
  const c = context.config;
  if (context.streak >= c.consecutive) return true;
  const n = context.outcomes.length;
  if (n < c.minCalls) return false;
  return context.outcomes.filter((ok) => !ok).length / n >= c.failureRate;
};

const push = (ctx: BreakerContext, ok: boolean): Partial<BreakerContext> => ({
  outcomes: [...ctx.outcomes, ok].slice(-ctx.config.window),
  streak: ok ? 0 : ctx.streak + 1,
});

/**
 * What a `closed` breaker does with `event` without running the machine (the hot path of every
 * model call): the context it stays closed with, or null when the outcome trips it and the
 * machine must take the transition. Closed ignores ACQUIRE and RELEASE and only counts outcomes,
 * exactly as {@link breakerMachine}'s `closed` state does.
 */
export function stayClosed(context: BreakerContext, event: BreakerEvent): BreakerContext | null {
  if (event.type === 'ACQUIRE' || event.type === 'RELEASE') return context;
  const next = { ...context, ...push(context, event.type === 'SUCCESS') };
  return event.type === 'FAILURE' && tripped({ context: next }) ? null : next;
}

/** The breaker machine. */
export const breakerMachine = setup({
  types: {} as {
    context: BreakerContext;
    events: BreakerEvent;
    input: Partial<BreakerConfig> | undefined;
  },
  guards: {
    tripped,
    coolDownOver: ({ context, event }) =>
      context.openedAt !== null && event.now - context.openedAt >= context.config.coolDownMs,
    probeFree: ({ context, event }) =>
      context.probeAt === null || event.now - context.probeAt >= context.config.probeTimeoutMs,
  },
  actions: {
    recordSuccess: assign(({ context }) => push(context, true)),
    recordFailure: assign(({ context }) => push(context, false)),
    open: assign(({ context, event }) => ({
      openedAt: event.now,
      probeAt: null,
      opens: context.opens + 1,
    })),
    takeProbe: assign(({ event }) => ({ probeAt: event.now })),
    freeProbe: assign({ probeAt: null }),
    reset: assign({ outcomes: [], streak: 0, openedAt: null, probeAt: null }),
  },
}).createMachine({
  id: 'breaker',
  context: ({ input }) => ({
    config: { ...DEFAULT_BREAKER, ...input },
    outcomes: [],
    streak: 0,
    openedAt: null,
    probeAt: null,
    opens: 0,
  }),
  initial: 'closed',
  states: {
    closed: {
      on: {
        SUCCESS: { actions: 'recordSuccess' },
        FAILURE: { target: 'checking', actions: 'recordFailure' },
      },
    },
    checking: {
      always: [{ guard: 'tripped', target: 'open', actions: 'open' }, { target: 'closed' }],
    },
    open: { on: { ACQUIRE: { guard: 'coolDownOver', target: 'halfOpen', actions: 'takeProbe' } } },
    halfOpen: {
      on: {
        SUCCESS: { target: 'closed', actions: 'reset' },
        FAILURE: { target: 'open', actions: 'open' },
        ACQUIRE: { guard: 'probeFree', actions: 'takeProbe' },
        RELEASE: { actions: 'freeProbe' },
      },
    },
  },
});

/** A breaker snapshot. */
export type BreakerSnapshot = AnyMachineSnapshot & { context: BreakerContext };
