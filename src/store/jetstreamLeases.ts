/**
 * Run leases in a JetStream KV bucket: one key per run, every write a compare-and-set on the
 * key's revision. The revision is what a waiting process watches (unchanged for a TTL: the
 * holder stopped renewing); the entry's server timestamp is shown, never used to decide.
 */
import type { KV } from '@nats-io/kv';
import { checkRunId, jsSchemas, kvKey } from './jetstreamIndex.js';
import type { LeaseRecord } from './jetstreamSchemas.js';
import { LeaseObserver, ownerIsDead } from './leaseRules.js';
import { isWrongLastSequence, type NatsLink } from './natsConnect.js';
import type { Lease, LeaseAcquired, LeaseHolder, LeaseStore } from './types.js';

type Value = LeaseRecord;

const SEEN_MAX = 10_000;

/** The lease port over the `<prefix>_leases` bucket. */
export function kvLeases(link: NatsLink, kv: KV, observer = new LeaseObserver()): LeaseStore {
  const get = async (
    runId: string,
  ): Promise<{ value: Value; revision: number; at: number } | undefined> => {
    const e = await link.retry(() => kv.get(kvKey(runId)));
    if (e === null || e.operation !== 'PUT') return undefined;
    const value = (await jsSchemas()).LeaseRecord.parse(e.json());
    return { value, revision: e.revision, at: e.created.getTime() };
  };
  const holderOf = (v: Value, at: number, revision: number): LeaseHolder => ({
    owner: v.owner,
    token: v.token,
    renewedAt: at,
    ttlMs: v.ttlMs,
    revision,
  });
  const same = (a: Value) => (b: unknown) => {
    const v = b as Partial<Value>;
    return v.owner === a.owner && v.token === a.token && v.n === a.n && v.released === a.released;
  };
  /**
   * Writes `value` over `revision` (0: create; `'empty'`: only if the key never had a value,
   * one request); the new revision, or null when someone else wrote first. A retried write
   * whose first attempt landed is recognised by its value.
   */
  const write = async (
    runId: string,
    value: Value,
    revision: number | 'empty',
  ): Promise<number | null> => {
    const body = JSON.stringify(value);
    let attempts = 0;
    try {
      return await link.retry(() => {
        attempts++;
        return revision === 'empty'
          ? kv.put(kvKey(runId), body, { previousSeq: 0 })
          : revision === 0
            ? kv.create(kvKey(runId), body)
            : kv.update(kvKey(runId), body, revision);
      });
    } catch (e) {
      if (!isWrongLastSequence(e)) throw e;
      if (attempts === 1) return null;
      const now = await get(runId);
      return now !== undefined && same(value)(now.value) ? now.revision : null;
    }
  };

  /** Runs whose lease key this process saw written (a bounded hint: skip the create-first try). */
  const seen = new Set<string>();
  const saw = (runId: string): void => {
    seen.add(runId);
    if (seen.size > SEEN_MAX) seen.delete(seen.values().next().value as string);
  };

  return {
    async acquire(runId, owner, ttlMs): Promise<LeaseAcquired> {
      checkRunId(runId);
      if (!seen.has(runId)) {
        // Most acquires are of a new run: try the first lease without reading the key first.
        const value: Value = { owner, token: 1, ttlMs, released: false, n: 0 };
        const revision = await write(runId, value, 'empty');
        saw(runId);
        if (revision !== null) {
          observer.forget(runId);
          return { ok: true, lease: { runId, owner, token: 1, ttlMs, revision } };
        }
      }
      for (;;) {
        const cur = await get(runId);
        const token = (cur?.value.token ?? 0) + 1;
        if (cur !== undefined) {
          const v = cur.value;
          const left =
            v.released || ownerIsDead(v.owner)
              ? 0
              : observer.remaining(runId, cur.revision, v.ttlMs);
          if (left > 0)
            return { ok: false, holder: holderOf(v, cur.at, cur.revision), retryInMs: left };
        }
        const value: Value = { owner, token, ttlMs, released: false, n: cur?.revision ?? 0 };
        const revision = await write(runId, value, cur?.revision ?? 0);
        if (revision === null) {
          // Someone else took or renewed it between our read and our write: look again.
          const now = await get(runId);
          if (now !== undefined && !now.value.released)
            return {
              ok: false,
              holder: holderOf(now.value, now.at, now.revision),
              retryInMs: observer.remaining(runId, now.revision, now.value.ttlMs),
            };
          continue;
        }
        observer.forget(runId);
        return { ok: true, lease: { runId, owner, token, ttlMs, revision } };
      }
    },
    async renew(lease: Lease) {
      // Over the revision this holder last wrote: any other write in between means it lost.
      const { owner, token, ttlMs } = lease;
      const value: Value = { owner, token, ttlMs, released: false, n: lease.revision };
      const revision = await write(lease.runId, value, lease.revision);
      if (revision === null) return false;
      lease.revision = revision;
      return true;
    },
    async release(lease: Lease) {
      // Over the revision this holder last wrote, without reading it: any write since means
      // the lease changed hands (or a renewal raced this), and the read below decides.
      const { owner, token, ttlMs } = lease;
      const mine: Value = { owner, token, ttlMs, released: true, n: lease.revision };
      if ((await write(lease.runId, mine, lease.revision)) !== null) return;
      const cur = await get(lease.runId);
      if (cur === undefined || cur.value.owner !== lease.owner || cur.value.token !== lease.token)
        return;
      if (cur.value.released) return;
      await write(lease.runId, { ...cur.value, released: true, n: cur.revision }, cur.revision);
    },
    async holders(runIds) {
      const out = new Map<string, LeaseHolder>();
      await Promise.all(
        runIds.map(async (id) => {
          const cur = await get(id);
          if (cur !== undefined && !cur.value.released)
            out.set(id, holderOf(cur.value, cur.at, cur.revision));
        }),
      );
      return out;
    },
  };
}
