/**
 * Circuit breakers shared across runs and processes: one breaker machine per model, persisted
 * in the store's control state and updated with compare-and-set, so every worker sees one state;
 * each process keeps it in memory between transitions, so a healthy model costs no store I/O.
 */
import { initialTransition, transition } from 'xstate';
import {
  breakerMachine,
  stayClosed,
  type BreakerConfig,
  type BreakerContext,
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
  context: BreakerContext;
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

/** How a process keeps its breakers in memory. */
export interface BreakerCacheOptions {
  /**
   * How long a breaker read from the store is trusted, ms (default 1 s): a transition made by
   * another process is seen within this time, or at once by a write that loses its CAS.
   */
  refreshMs?: number;
  /** The clock the cache ages by (default `performance.now`; tests pass their own). */
  now?: () => number;
}

/** A breaker as this process knows it: the store's record (`revision`) plus its own outcomes. */
interface Cached {
  p: Persisted;
  /** The store revision `p` was read at; -1 after a write whose revision is unknown. */
  revision: number;
  /** When the store was read (by `now`); -Infinity when the entry must be read again. */
  readAt: number;
}

/**
 * A {@link BreakerGate} over a control store, cached in the process: calls on a closed breaker
 * touch no store (outcomes are counted in memory); the store is written only on transitions
 * (closed→open, the half-open probe's grant and release, its verdict), each by compare-and-set
 * so one probe is granted across processes, and it is re-read every `refreshMs` and after every
 * lost compare-and-set.
 */
export class Breakers implements BreakerGate {
  private readonly cache = new Map<string, Cached>();
  private readonly reading = new Map<string, Promise<Cached>>();
  /** Write-throughs per key, so a read that raced one is not taken for the newer state. */
  private readonly writes = new Map<string, number>();
  private readonly refreshMs: number;
  private readonly now: () => number;
  private initial: Persisted | undefined;

  constructor(
    private readonly control: ControlStore,
    private readonly config: Partial<BreakerConfig> = {},
    private readonly logger?: Logger,
    options: BreakerCacheOptions = {},
  ) {
    this.refreshMs = options.refreshMs ?? 1_000;
    this.now = options.now ?? (() => performance.now());
  }

  /** A stored record with this gate's settings over the persisted ones (a fresh breaker if none). */
  private adopt(p: Persisted | undefined): Persisted {
    if (p === undefined) {
      if (this.initial === undefined) {
        const s = initialTransition(breakerMachine, this.config)[0] as BreakerSnapshot;
        this.initial = { value: String(s.value), context: s.context };
      }
      return this.initial;
    }
    return {
      value: p.value,
      context: { ...p.context, config: { ...p.context.config, ...this.config } },
    };
  }

  /** The cached breaker if it is fresh enough to act on without the store. */
  private fresh(key: string): Cached | undefined {
    const c = this.cache.get(key);
    return c !== undefined && c.revision >= 0 && this.now() - c.readAt < this.refreshMs
      ? c
      : undefined;
  }

  /** Reads the store's record into the cache (concurrent readers of a key share one read). */
  private read(key: string): Promise<Cached> {
    let p = this.reading.get(key);
    if (p === undefined) {
      p = this.readOnce(key).finally(() => this.reading.delete(key));
      this.reading.set(key, p);
    }
    return p;
  }

  private async readOnce(key: string): Promise<Cached> {
    for (;;) {
      const writes = this.writes.get(key) ?? 0;
      const readAt = this.now();
      const { value, revision } = await this.control.getBreaker(key);
      // A write-through landed while reading: this answer may predate it, read again.
      if ((this.writes.get(key) ?? 0) !== writes) continue;
      // The same record as cached: keep the outcomes this process counted since.
      const cur = this.cache.get(key);
      const p =
        cur !== undefined && cur.revision === revision
          ? cur.p
          : this.adopt(value as Persisted | undefined);
      const c: Cached = { p, revision, readAt };
      this.cache.set(key, c);
      return c;
    }
  }

  /** Applies `event` to the breaker of `model`, writing transitions with compare-and-set. */
  private async apply(
    model: string,
    event: BreakerEvent,
  ): Promise<{ before: Persisted; after: Persisted }> {
    const key = `model:${model}`;
    for (let i = 0; i < 50; i++) {
      // A retry follows a lost compare-and-set: the cache is stale, read the store.
      const c = (i === 0 ? this.fresh(key) : undefined) ?? (await this.read(key));
      const before = c.p;
      // Closed and staying closed (every call to a healthy model): counted here, no store I/O.
      const kept = before.value === 'closed' ? stayClosed(before.context, event) : null;
      if (kept !== null) {
        const after = kept === before.context ? before : { value: 'closed', context: kept };
        if (after !== before && this.cache.get(key) === c) this.cache.set(key, { ...c, p: after });
        return { before, after };
      }
      const next = transition(
        breakerMachine,
        breakerMachine.resolveState({ value: before.value as never, context: before.context }),
        event,
      )[0] as BreakerSnapshot;
      const after: Persisted = { value: String(next.value), context: next.context };
      if (
        after.value === before.value &&
        JSON.stringify(after.context) === JSON.stringify(before.context)
      )
        return { before, after: before };
      if (await this.control.casBreaker(key, after, c.revision)) {
        // The store gave the record a revision this process does not know: read it next call.
        this.cache.set(key, { p: after, revision: -1, readAt: -Infinity });
        this.writes.set(key, (this.writes.get(key) ?? 0) + 1);
        if (after.value !== before.value) this.logTransition(key, event, before, after);
        return { before, after };
      }
    }
    throw new Error(`breaker ${key}: too much contention`);
  }

  private logTransition(key: string, event: BreakerEvent, before: Persisted, after: Persisted) {
    const o = after.context.outcomes;
    this.logger?.warn(
      {
        breaker: key,
        from: before.value,
        to: after.value,
        event: event.type,
        decision: `breaker-${after.value}`,
        reason: `failures ${o.filter((x) => !x).length}/${o.length}, streak ${after.context.streak}`,
      },
      `breaker ${key}: ${before.value} → ${after.value}`,
    );
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

  /** The state of a model's breaker, read from the store (with this process's own outcomes). */
  async state(model: string): Promise<BreakerState> {
    const key = `model:${model}`;
    const s = (await this.read(key)).p;
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
