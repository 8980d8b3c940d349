/**
 * Circuit breakers shared across runs and processes: one breaker machine per model, persisted
 * in the store's control state and updated with compare-and-set, so every worker sees one state.
 */
import { initialTransition, transition } from 'xstate';
import {
  breakerMachine,
  type BreakerConfig,
  type BreakerEvent,
  type BreakerSnapshot,
} from '../machines/breaker.js';
import type { ControlStore } from '../store/types.js';
import type { BreakerGate } from './env.js';
import type { Logger } from './logger.js';

/**
 * Failure kinds that count against a model's breaker: the provider is down or overloaded.
 * A 429 (`rate_limit`) is not one: the provider is up and says when to come back, so the run
 * waits its `retry-after`; counting it would let a burst of rate limiting park every run.
 */
export const BREAKER_KINDS = new Set([
  'overloaded',
  'server',
  'timeout',
  'connection',
  'request_timeout',
]);

interface Persisted {
  value: string;
  context: BreakerSnapshot['context'];
}

/** What a breaker looks like now. */
export interface BreakerState {
  key: string;
  state: 'closed' | 'open' | 'halfOpen';
  openedAt: number | null;
  /** When the half-open probe was granted (null: none is out, the next caller takes it). */
  probeAt: number | null;
  opens: number;
  outcomes: boolean[];
  /** The breaker's own timings, as persisted by the last writer. */
  coolDownMs: number;
  probeTimeoutMs: number;
}

/** A {@link BreakerGate} over a control store. */
export class Breakers implements BreakerGate {
  constructor(
    private readonly control: ControlStore,
    private readonly config: Partial<BreakerConfig> = {},
    private readonly logger?: Logger,
  ) {}

  private restore(p: Persisted | undefined): BreakerSnapshot {
    if (p === undefined)
      return initialTransition(breakerMachine, this.config)[0] as BreakerSnapshot;
    return breakerMachine.resolveState({
      value: p.value as never,
      context: { ...p.context, config: { ...p.context.config, ...this.config } },
    }) as BreakerSnapshot;
  }

  /** Applies `event` to the breaker of `model` with compare-and-set; returns before and after. */
  private async apply(
    model: string,
    event: BreakerEvent,
  ): Promise<{ before: BreakerSnapshot; after: BreakerSnapshot }> {
    const key = `model:${model}`;
    for (let i = 0; i < 50; i++) {
      const { value, revision } = await this.control.getBreaker(key);
      const before = this.restore(value as Persisted | undefined);
      const after = transition(breakerMachine, before, event)[0] as BreakerSnapshot;
      if (
        after.value === before.value &&
        JSON.stringify(after.context) === JSON.stringify(before.context)
      )
        return { before, after };
      const ok = await this.control.casBreaker(
        key,
        { value: after.value, context: after.context } satisfies Persisted,
        revision,
      );
      if (ok) {
        if (after.value !== before.value)
          this.logger?.warn(
            {
              breaker: key,
              from: before.value,
              to: after.value,
              event: event.type,
              decision: `breaker-${String(after.value)}`,
              reason: `failures ${after.context.outcomes.filter((o: boolean) => !o).length}/${after.context.outcomes.length}, streak ${after.context.streak}`,
            },
            `breaker ${key}: ${String(before.value)} → ${String(after.value)}`,
          );
        return { before, after };
      }
    }
    throw new Error(`breaker ${key}: too much contention`);
  }

  async acquire(model: string, now: number): Promise<'closed' | 'open' | 'half_open'> {
    const { before, after } = await this.apply(model, { type: 'ACQUIRE', now });
    if (after.value === 'closed') return 'closed';
    // This caller took the probe: the state entered halfOpen (or a lost probe was re-taken).
    if (
      after.value === 'halfOpen' &&
      after.context.probeAt === now &&
      (before.value !== 'halfOpen' || before.context.probeAt !== now)
    )
      return 'half_open';
    return 'open';
  }

  async record(model: string, ok: boolean, kind: string, now: number): Promise<void> {
    // A failure that does not count (a 429, a 400) says nothing about the provider's health:
    // it only hands back a half-open probe, so the next caller probes instead of waiting out
    // the probe timeout.
    const type = ok ? 'SUCCESS' : BREAKER_KINDS.has(kind) ? 'FAILURE' : 'RELEASE';
    await this.apply(model, { type, now });
  }

  /** The state of a model's breaker. */
  async state(model: string): Promise<BreakerState> {
    const key = `model:${model}`;
    const s = this.restore((await this.control.getBreaker(key)).value as Persisted | undefined);
    return {
      key,
      state: s.value as BreakerState['state'],
      openedAt: s.context.openedAt,
      probeAt: s.context.probeAt,
      opens: s.context.opens,
      outcomes: s.context.outcomes,
      coolDownMs: s.context.config.coolDownMs,
      probeTimeoutMs: s.context.config.probeTimeoutMs,
    };
  }
}
