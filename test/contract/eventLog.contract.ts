/**
 * The store contract: every adapter (SQLite, JetStream) runs this same suite.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isVersionConflict, VersionConflictError } from '../../src/errors.js';
import type { RunFilter, Store } from '../../src/store/types.js';
import { started, stepDone } from '../helpers/envelopes.js';
import { describeDefinitions } from './definitions.contract.js';
import { describePools } from './pools.contract.js';
import { describeRateLimits } from './rateLimits.contract.js';

let counter = 0;
const rid = (): string => `run-${Date.now().toString(36)}-${(counter++).toString(36)}`;

/** Registers the contract suite for a store factory. */
export function describeStore(
  name: string,
  open: () => Promise<Store>,
  close?: () => Promise<void>,
): void {
  describe(`store contract: ${name}`, () => {
    let store: Store;
    beforeAll(async () => {
      store = await open();
    });
    afterAll(async () => {
      await store.close();
      await close?.();
    });

    describePools(() => store);
    describeRateLimits(() => store);

    it('appends a new run and reads it back in order, with the run index updated', async () => {
      const id = rid();
      const last = await store.log.append(
        id,
        [started('contract-a'), stepDone(1), stepDone(2, 'completed', 0.5)],
        'no_stream',
      );
      expect(last).toBe(3);
      const events = await store.log.read(id);
      expect(events.map((e) => e.seq)).toEqual([1, 2, 3]);
      expect(events.map((e) => e.event.type)).toEqual(['run.started', 'STEP_DONE', 'STEP_DONE']);
      expect(events[1]?.runId).toBe(id);
      expect(events[2]?.state.status).toBe('completed');
      expect((await store.log.read(id, 3)).map((e) => e.seq)).toEqual([3]);
      const run = await store.log.getRun(id);
      expect(run).toMatchObject({
        runId: id,
        pipeline: 'contract-a',
        status: 'completed',
        lastSeq: 3,
        costUsd: 0.5,
        step: 's2',
      });
      expect(run?.endedAt).not.toBeNull();
    });

    describeDefinitions(() => store, rid);

    it('reads nothing for an unknown run', async () => {
      expect(await store.log.read(rid())).toEqual([]);
      expect(await store.log.getRun(rid())).toBeUndefined();
    });

    it('refuses a stale expected version with VersionConflictError', async () => {
      const id = rid();
      await store.log.append(id, [started()], 'no_stream');
      await store.log.append(id, [stepDone(1)], 1);
      await expect(store.log.append(id, [stepDone(2)], 1)).rejects.toBeInstanceOf(
        VersionConflictError,
      );
      await expect(store.log.append(id, [started()], 'no_stream')).rejects.toBeInstanceOf(
        VersionConflictError,
      );
      await expect(store.log.append(id, [stepDone(2)], 5)).rejects.toBeInstanceOf(
        VersionConflictError,
      );
      expect((await store.log.read(id)).length).toBe(2);
    });

    it('lets exactly one of 20 concurrent appends with the same expectation win', async () => {
      const id = rid();
      await store.log.append(id, [started()], 'no_stream');
      const results = await Promise.allSettled(
        Array.from({ length: 20 }, (_, i) => store.log.append(id, [stepDone(i)], 1)),
      );
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
      const rejected = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
      expect(rejected.every((r) => isVersionConflict(r.reason))).toBe(true);
      expect((await store.log.read(id)).length).toBe(2);
    });

    it('refuses a first event that is not run.started, and an invalid envelope', async () => {
      const id = rid();
      await expect(store.log.append(id, [stepDone(1)], 'no_stream')).rejects.toThrow(
        /run\.started/,
      );
      const bad = { ...stepDone(1), v: 2 } as unknown as ReturnType<typeof stepDone>;
      await store.log.append(id, [started()], 'no_stream');
      await expect(store.log.append(id, [bad], 1)).rejects.toThrow();
      expect((await store.log.read(id)).length).toBe(1);
    });

    it('tails every run in append order with increasing positions', async () => {
      const before = await store.log.readAll(0, 100_000);
      const from = before.length ? (before[before.length - 1]?.pos ?? 0) : 0;
      const a = rid();
      const b = rid();
      await store.log.append(a, [started()], 'no_stream');
      await store.log.append(b, [started()], 'no_stream');
      await store.log.append(a, [stepDone(1)], 1);
      const tail = await store.log.readAll(from);
      expect(tail.map((e) => `${e.runId === a ? 'a' : 'b'}${e.seq}`)).toEqual(['a1', 'b1', 'a2']);
      const pos = tail.map((e) => e.pos);
      expect([...pos].sort((x, y) => x - y)).toEqual(pos);
      expect(await store.log.readAll(from, 1)).toHaveLength(1);
    });

    it('lists runs with filters', async () => {
      const pipeline = `list-${rid()}`;
      const a = rid();
      const b = rid();
      await store.log.append(a, [started(pipeline, 1000)], 'no_stream');
      await store.log.append(
        b,
        [started(pipeline, 2000), stepDone(1, 'failed', 0, 3000)],
        'no_stream',
      );
      const all = await store.log.listRuns({ pipeline });
      expect(all.map((r) => r.runId).sort()).toEqual([a, b].sort());
      expect(
        (await store.log.listRuns({ pipeline, status: 'failed' })).map((r) => r.runId),
      ).toEqual([b]);
      expect(
        (await store.log.listRuns({ pipeline, status: ['running', 'parked'] })).map((r) => r.runId),
      ).toEqual([a]);
      expect(
        (await store.log.listRuns({ pipeline, updatedBefore: 2000 })).map((r) => r.runId),
      ).toEqual([a]);
    });

    it('pages the run index: first page, after a cursor, the last page, a status filter', async () => {
      const pipeline = `page-${rid()}`;
      const ids: string[] = [];
      // Seven runs started one after another; every third one failed, the others still running.
      for (let i = 0; i < 7; i++) {
        const id = rid();
        ids.push(id);
        const events = [started(pipeline, 5_000 + i)];
        if (i % 3 === 0) events.push(stepDone(1, 'failed', 0, 6_000 + i));
        await store.log.append(id, events, 'no_stream');
      }
      const newest = [...ids].reverse();
      const page = (f: Omit<RunFilter, 'pipeline'>): Promise<string[]> =>
        store.log.listRuns({ pipeline, ...f }).then((rs) => rs.map((r) => r.runId));
      expect(await page({ limit: 3 })).toEqual(newest.slice(0, 3));
      expect(await page({ limit: 3, after: newest[2] })).toEqual(newest.slice(3, 6));
      // The last page is short, and a cursor at the oldest run lists nothing.
      expect(await page({ limit: 3, after: newest[5] })).toEqual(newest.slice(6));
      expect(await page({ limit: 3, after: newest[6] })).toEqual([]);
      expect(await page({})).toEqual(newest);
      // Failed: runs 0, 3, 6 (newest first); a page of one, then the rest after it.
      const failed = [ids[6], ids[3], ids[0]];
      expect(await page({ status: 'failed', limit: 1 })).toEqual(failed.slice(0, 1));
      expect(await page({ status: 'failed', limit: 5, after: failed[0] })).toEqual(failed.slice(1));
      const running = newest.filter((id) => !failed.includes(id));
      expect(await page({ status: 'running', limit: 2 })).toEqual(running.slice(0, 2));
      expect(await page({ status: 'running', after: running[1] })).toEqual(running.slice(2));
      await expect(store.log.listRuns({ limit: 3, after: rid() })).rejects.toThrow(
        /no such run; pass the last run id of the previous page/,
      );
    });

    it('claims an effect once, reports an unrecorded claim, and returns the recorded result', async () => {
      const id = rid();
      expect(await store.ledger.claim(id, 'send', 'k1', 1)).toEqual({ status: 'claimed' });
      expect(await store.ledger.claim(id, 'send', 'k1', 2)).toMatchObject({
        status: 'unrecorded',
        claimedAt: 1,
      });
      await store.ledger.record(id, 'send', 'k1', { sent: 1 }, 3);
      await store.ledger.record(id, 'send', 'k1', { sent: 2 }, 4);
      expect(await store.ledger.claim(id, 'send', 'k1', 5)).toEqual({
        status: 'done',
        result: { sent: 1 },
      });
      const racers = await Promise.all(
        Array.from({ length: 20 }, () => store.ledger.claim(id, 'send', 'k2', 6)),
      );
      expect(racers.filter((r) => r.status === 'claimed')).toHaveLength(1);
    });

    it('records an effect never claimed, once: the first result stays', async () => {
      const id = rid();
      await store.ledger.record(id, 'send', 'k1', { sent: 1 }, 3);
      await store.ledger.record(id, 'send', 'k1', { sent: 2 }, 4);
      expect(await store.ledger.claim(id, 'send', 'k1', 5)).toEqual({
        status: 'done',
        result: { sent: 1 },
      });
    });

    it('names the lease an effect was claimed under, so a newer driver knows the claimer', async () => {
      const id = rid();
      expect(await store.ledger.claim(id, 'send', 'k1', 1, 'host/1/a#1')).toEqual({
        status: 'claimed',
      });
      expect(await store.ledger.claim(id, 'send', 'k1', 2, 'host/2/b#2')).toMatchObject({
        status: 'unrecorded',
        claimer: 'host/1/a#1',
      });
      // The second claimer's name is kept for whoever looks next.
      expect(await store.ledger.claim(id, 'send', 'k1', 3, 'host/3/c#3')).toMatchObject({
        status: 'unrecorded',
        claimer: 'host/2/b#2',
      });
    });

    it('leases a run to one owner at a time; the fencing token grows with each take-over', async () => {
      const id = rid();
      const a = await store.leases.acquire(id, 'nohost/1/a', 60_000);
      expect(a.ok).toBe(true);
      if (!a.ok) return;
      expect(a.lease.token).toBe(1);
      const b = await store.leases.acquire(id, 'nohost/2/b', 60_000);
      expect(b).toMatchObject({ ok: false, holder: { owner: 'nohost/1/a', token: 1 } });
      // The same owner cannot take it twice either (a second drive in one process).
      expect((await store.leases.acquire(id, 'nohost/1/a', 60_000)).ok).toBe(false);
      expect(await store.leases.renew(a.lease)).toBe(true);
      expect([...(await store.leases.holders([id, rid()])).keys()]).toEqual([id]);
      await store.leases.release(a.lease);
      expect((await store.leases.holders([id])).size).toBe(0);
      expect(await store.leases.renew(a.lease)).toBe(false);
      const c = await store.leases.acquire(id, 'nohost/2/b', 60_000);
      expect(c).toMatchObject({ ok: true, lease: { token: 2, owner: 'nohost/2/b' } });
    });

    it('lets exactly one of 10 concurrent acquirers win a free lease', async () => {
      const id = rid();
      const r = await Promise.all(
        Array.from({ length: 10 }, (_, i) => store.leases.acquire(id, `nohost/${i}/x`, 60_000)),
      );
      expect(r.filter((x) => x.ok)).toHaveLength(1);
    });

    it('hands over a lease whose holder stopped renewing for a TTL, and the old holder cannot renew', async () => {
      const id = rid();
      const a = await store.leases.acquire(id, 'nohost/1/a', 2_000);
      if (!a.ok) throw new Error('first acquire refused');
      // A renewing holder keeps it however long the other side waits.
      const first = await store.leases.acquire(id, 'nohost/2/b', 2_000);
      expect(first.ok).toBe(false);
      for (let i = 0; i < 4; i++) {
        await new Promise((r) => setTimeout(r, 100));
        expect(await store.leases.renew(a.lease)).toBe(true);
        expect((await store.leases.acquire(id, 'nohost/2/b', 2_000)).ok).toBe(false);
      }
      // Silent from now on: the other side takes it once it has seen no change for 2 s.
      let taken: Awaited<ReturnType<typeof store.leases.acquire>> | undefined;
      for (let i = 0; i < 200 && !taken?.ok; i++) {
        taken = await store.leases.acquire(id, 'nohost/2/b', 2_000);
        if (!taken.ok) await new Promise((r) => setTimeout(r, 100));
      }
      expect(taken).toMatchObject({ ok: true, lease: { token: 2 } });
      expect(await store.leases.renew(a.lease)).toBe(false);
    });

    it('takes over at once from an owner whose process on this host is gone', async () => {
      const { spawnSync } = await import('node:child_process');
      const { hostname } = await import('node:os');
      const dead = spawnSync(process.execPath, ['-e', 'console.log(process.pid)'], {
        encoding: 'utf8',
      });
      const pid = Number(dead.stdout.trim());
      const id = rid();
      expect((await store.leases.acquire(id, `${hostname()}/${pid}/z`, 600_000)).ok).toBe(true);
      expect(
        await store.leases.acquire(id, `${hostname()}/${process.pid}/y`, 600_000),
      ).toMatchObject({ ok: true, lease: { token: 2 } });
    });

    it('keeps kill flags and compare-and-sets breaker records', async () => {
      const id = rid();
      expect(await store.control.getKill(id)).toBeUndefined();
      await store.control.setKill({ runId: id, reason: 'operator', at: 7 });
      expect(await store.control.getKill(id)).toEqual({ runId: id, reason: 'operator', at: 7 });
      const key = `breaker-${rid()}`;
      expect(await store.control.getBreaker(key)).toEqual({ value: undefined, revision: 0 });
      expect(await store.control.casBreaker(key, { s: 'open' }, 0)).toBe(true);
      expect(await store.control.casBreaker(key, { s: 'x' }, 0)).toBe(false);
      const cur = await store.control.getBreaker(key);
      expect(cur.value).toEqual({ s: 'open' });
      expect(await store.control.casBreaker(key, { s: 'closed' }, cur.revision)).toBe(true);
      expect(await store.control.casBreaker(key, { s: 'stale' }, cur.revision)).toBe(false);
      expect((await store.control.getBreaker(key)).value).toEqual({ s: 'closed' });
    });

    it('stores an event larger than a NATS message (2 MB output) and reads it back whole', async () => {
      const id = rid();
      const big = 'x'.repeat(2 * 1024 * 1024);
      const ev = {
        ...stepDone(1),
        event: { type: 'STEP_DONE' as const, step: 's1', output: { big } },
      };
      await store.log.append(id, [started(), ev, stepDone(2)], 'no_stream');
      const events = await store.log.read(id);
      expect(events).toHaveLength(3);
      expect((events[1]?.event as { output: { big: string } }).output.big).toHaveLength(big.length);
      const all = await store.log.readAll(0, 1_000_000);
      expect(all.filter((e) => e.runId === id)).toHaveLength(3);
    });

    it('saves and loads the newest snapshot', async () => {
      const id = rid();
      expect(await store.log.loadSnapshot(id)).toBeUndefined();
      await store.log.saveSnapshot(id, { seq: 3, machineHash: 'h', snapshot: { value: 'x' } });
      await store.log.saveSnapshot(id, { seq: 9, machineHash: 'h', snapshot: { value: 'y' } });
      expect(await store.log.loadSnapshot(id)).toEqual({
        seq: 9,
        machineHash: 'h',
        snapshot: { value: 'y' },
      });
    });

    it('behaves like an in-memory model for any sequence of appends (property)', async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.array(fc.tuple(fc.integer({ min: -1, max: 6 }), fc.integer({ min: 1, max: 3 })), {
            maxLength: 12,
          }),
          async (ops) => {
            const id = rid();
            const model: string[] = [];
            for (const [exp, n] of ops) {
              const expected = exp < 0 ? ('no_stream' as const) : exp;
              const batch =
                model.length === 0 && expected === 'no_stream'
                  ? [started(), ...Array.from({ length: n - 1 }, (_, i) => stepDone(i))]
                  : Array.from({ length: n }, (_, i) => stepDone(i));
              const ok =
                expected === 'no_stream'
                  ? model.length === 0
                  : model.length > 0 && expected === model.length;
              const r = await store.log.append(id, batch, expected).then(
                () => true,
                (e: unknown) => {
                  if (!isVersionConflict(e)) throw e;
                  return false;
                },
              );
              expect(r).toBe(ok);
              if (ok) model.push(...batch.map((b) => b.event.type));
            }
            expect((await store.log.read(id)).map((e) => e.event.type)).toEqual(model);
          },
        ),
        { numRuns: 30 },
      );
    });
  });
}
