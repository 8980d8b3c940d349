/**
 * One lease keeper per runtime: takes run leases, renews every lease it holds on one timer
 * (a third of the TTL), and before a model call or an effect makes sure the lease is still
 * this process's — renewing at once when the last renewal is older than half the TTL (after
 * a long GC pause, a stalled event loop or a suspended VM). A lease found lost aborts its run's
 * drive: the run then has another driver, and this one must not act for it again.
 */
import { serializeError } from '../errors.js';
import { monotonicNow } from '../store/leaseRules.js';
import type { Lease, LeaseHolder, LeaseStore } from '../store/types.js';
import type { Logger } from './logger.js';

/** A lease this process holds, with the signal that fires when it is lost. */
export interface HeldLease {
  readonly lease: Lease;
  /** Aborted when the lease is found lost (taken over after this process went silent). */
  readonly lost: AbortSignal;
}

interface Entry extends HeldLease {
  /** Monotonic time the last successful renewal was sent (its effect starts no earlier). */
  sentAt: number;
  abort: AbortController;
  renewing: Promise<boolean> | null;
}

/** What {@link LeaseKeeper.take} got. */
export type Taken =
  { ok: true; held: HeldLease } | { ok: false; holder: LeaseHolder; retryInMs: number };

/** Takes, renews and checks the run leases of one runtime. */
export class LeaseKeeper {
  private readonly held = new Map<string, Entry>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly store: LeaseStore,
    readonly owner: string,
    readonly ttlMs: number,
    private readonly logger: Logger,
    private readonly now: () => number = monotonicNow,
  ) {}

  /** Takes the run's lease for this runtime, or says who holds it. */
  async take(runId: string): Promise<Taken> {
    const sentAt = this.now();
    const r = await this.store.acquire(runId, this.owner, this.ttlMs);
    if (!r.ok) return r;
    const abort = new AbortController();
    const e: Entry = { lease: r.lease, lost: abort.signal, sentAt, abort, renewing: null };
    this.held.set(runId, e);
    if (this.timer === undefined) {
      this.timer = setInterval(() => void this.tick(), Math.max(10, Math.floor(this.ttlMs / 3)));
      this.timer.unref?.();
    }
    return { ok: true, held: e };
  }

  /**
   * True when the lease is still held and safe to act under: renewed now if the last renewal is
   * older than half the TTL. False (and the run's `lost` signal aborted) when it was lost.
   */
  async ensure(h: HeldLease): Promise<boolean> {
    const e = this.held.get(h.lease.runId);
    if (e === undefined || e !== h || e.lost.aborted) return false;
    if (this.now() - e.sentAt < this.ttlMs / 2) return true;
    return this.renew(e);
  }

  /** Gives the lease up (after the drive ended); a store error is logged, the lease then expires. */
  async release(h: HeldLease): Promise<void> {
    const e = this.held.get(h.lease.runId);
    if (e !== h) return;
    this.held.delete(h.lease.runId);
    if (this.held.size === 0 && this.timer !== undefined) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
    if (e.lost.aborted) return;
    try {
      await this.store.release(e.lease);
    } catch (err) {
      this.logger.warn(
        { runId: e.lease.runId, err: serializeError(err), decision: 'release-failed' },
        'lease release failed: it expires after its TTL',
      );
    }
  }

  /** Runs whose leases this runtime holds. */
  get size(): number {
    return this.held.size;
  }

  private renew(e: Entry): Promise<boolean> {
    if (e.renewing !== null) return e.renewing;
    const sentAt = this.now();
    e.renewing = this.store
      .renew(e.lease)
      .then(
        (ok) => {
          if (ok) e.sentAt = sentAt;
          else this.lose(e, 'another process took the lease over');
          return ok;
        },
        (err: unknown) => {
          // The store did not answer: keep the lease while it may still be valid, and say so.
          this.logger.warn(
            { runId: e.lease.runId, err: serializeError(err), decision: 'renew-failed' },
            'lease renewal failed: retrying',
          );
          if (this.now() - e.sentAt >= this.ttlMs) {
            this.lose(e, 'could not renew the lease within its TTL');
            return false;
          }
          return this.now() - e.sentAt < this.ttlMs / 2;
        },
      )
      .finally(() => {
        e.renewing = null;
      });
    return e.renewing;
  }

  private lose(e: Entry, reason: string): void {
    if (e.lost.aborted) return;
    this.logger.warn(
      {
        runId: e.lease.runId,
        owner: this.owner,
        token: e.lease.token,
        decision: 'stop',
        reason: `lease lost: ${reason}`,
      },
      'lease lost',
    );
    e.abort.abort();
  }

  private async tick(): Promise<void> {
    const due = this.now() - this.ttlMs / 3;
    await Promise.all(
      [...this.held.values()].filter((e) => e.sentAt <= due + 5).map((e) => this.renew(e)),
    );
  }
}
