/**
 * The rules every lease adapter shares: who an owner is, when its process is known to be gone,
 * and when a lease whose holder is silent may be taken over. Expiry is decided by the asker's
 * monotonic clock from its first sight of a record revision — a revision that has not changed
 * for a whole TTL was not renewed — so neither clock skew between machines nor a wall-clock
 * jump can hand a live holder's run to a second driver.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Lease } from './types.js';

const HOST = hostname();

/** A new owner id for this process: `host/pid/nonce` (one per runtime). */
export function leaseOwner(): string {
  return `${HOST}/${process.pid}/${randomBytes(6).toString('hex')}`;
}

/** How a ledger claim names the lease it was made under: `owner#token`. */
export function leaseClaimer(lease: Pick<Lease, 'owner' | 'token'>): string {
  return `${lease.owner}#${lease.token}`;
}

/** The token of a claimer string (0 when it is not one). */
export function claimerToken(claimer: string | null): number {
  if (claimer === null) return 0;
  const t = Number(claimer.slice(claimer.lastIndexOf('#') + 1));
  return Number.isInteger(t) ? t : 0;
}

/**
 * True when `owner` is a process on this host that no longer exists. Anything else (another
 * host, a malformed id, a live pid, or a pid we may not signal) is treated as alive: the safe side.
 */
export function ownerIsDead(owner: string): boolean {
  const [host, pidText] = owner.split('/');
  if (host !== HOST) return false;
  const pid = Number(pidText);
  if (!Number.isInteger(pid) || pid <= 0) return false;
  if (pid === process.pid) return false;
  try {
    process.kill(pid, 0);
    return false;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

/**
 * True when `holder` may still be driving its run: not a dead process on this host, and its
 * record changed within a TTL of this observer's first sight of its revision.
 */
export function leaseIsLive(
  runId: string,
  holder: { owner: string; revision: number; ttlMs: number },
  observer: LeaseObserver,
): boolean {
  if (ownerIsDead(holder.owner)) return false;
  return observer.remaining(runId, holder.revision, holder.ttlMs) > 0;
}

/**
 * For listing only (a one-shot command has watched nothing): true when a running run has no
 * driver — no lease, or one released, held by a dead process on this host, or not renewed for
 * its TTL plus `marginMs` by the store's clock against ours (the margin absorbs clock skew).
 */
export function lapsedForListing(
  holder: { owner: string; renewedAt: number; ttlMs: number } | undefined,
  now: number,
  marginMs: number,
): boolean {
  if (holder === undefined || ownerIsDead(holder.owner)) return true;
  return holder.renewedAt + holder.ttlMs + marginMs < now;
}

/** Monotonic milliseconds (never goes back, unaffected by wall-clock changes). */
export const monotonicNow = (): number => performance.now();

/**
 * Remembers when this process first saw each run's lease revision, to tell a silent holder
 * (no renewal for a TTL) from a live one.
 */
export class LeaseObserver {
  private readonly seen = new Map<string, { revision: number; at: number }>();

  constructor(private readonly now: () => number = monotonicNow) {}

  /** How long until the lease at `revision` counts as expired (0: it has). */
  remaining(runId: string, revision: number, ttlMs: number): number {
    const now = this.now();
    const s = this.seen.get(runId);
    if (s === undefined || s.revision !== revision) {
      if (this.seen.size >= 100_000) this.prune(now);
      this.seen.set(runId, { revision, at: now });
      return ttlMs;
    }
    return Math.max(0, ttlMs - (now - s.at));
  }

  /** Forgets a run (after this process took its lease). */
  forget(runId: string): void {
    this.seen.delete(runId);
  }

  private prune(now: number): void {
    for (const [k, v] of this.seen) if (now - v.at > 3_600_000) this.seen.delete(k);
    if (this.seen.size >= 100_000) this.seen.clear();
  }
}
