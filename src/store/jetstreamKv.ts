/**
 * The JetStream store's small shared state in KV buckets: the effect ledger (`kv.create` is
 * the atomic claim, `update` with the revision records the result), kill flags (first one
 * wins) and breaker records (compare-and-set on the KV revision).
 */
import type { KV } from '@nats-io/kv';
import { checkRunId, hashKey, jsSchemas, kvKey } from './jetstreamIndex.js';
import type { EffectRecord } from './jetstreamSchemas.js';
import { isWrongLastSequence, type NatsLink } from './natsConnect.js';
import type { ControlStore, EffectClaim, EffectLedger } from './types.js';
import { natsCore } from './natsLib.js';

const { nuid } = natsCore;

type Effect = EffectRecord;

/**
 * Compare-and-set on a KV key (revision 0: create); false when someone else won. After a
 * retried attempt, "wrong last sequence" may be our own first attempt that did land:
 * `isOurs` tells by looking at the stored value.
 */
export async function kvCas(
  link: NatsLink,
  kv: KV,
  key: string,
  value: unknown,
  revision: number,
  isOurs?: (current: unknown) => boolean,
): Promise<boolean> {
  return (await kvCasRevision(link, kv, key, value, revision, isOurs)) !== null;
}

/** {@link kvCas} that returns the key's new revision (null when someone else won). */
export async function kvCasRevision(
  link: NatsLink,
  kv: KV,
  key: string,
  value: unknown,
  revision: number,
  isOurs?: (current: unknown) => boolean,
): Promise<number | null> {
  const body = JSON.stringify(value);
  let attempts = 0;
  try {
    return await link.retry(() => {
      attempts++;
      return revision === 0 ? kv.create(key, body) : kv.update(key, body, revision);
    });
  } catch (e) {
    if (!isWrongLastSequence(e)) throw e;
    if (attempts > 1 && isOurs) {
      const cur = await link.retry(() => kv.get(key));
      return cur !== null && cur.operation === 'PUT' && isOurs(cur.json()) ? cur.revision : null;
    }
    return null;
  }
}

/** The effect ledger and control store over three KV buckets. */
export function kvControl(
  link: NatsLink,
  buckets: { effects: KV; kills: KV; breakers: KV },
): { ledger: EffectLedger; control: ControlStore } {
  const { effects, kills, breakers } = buckets;

  const getEffect = async (k: string): Promise<{ value: Effect; revision: number } | undefined> => {
    const e = await link.retry(() => effects.get(k));
    if (e === null || e.operation !== 'PUT') return undefined;
    return { value: (await jsSchemas()).EffectRecord.parse(e.json()), revision: e.revision };
  };

  const contended = (runId: string, step: string, key: string): Error =>
    new Error(`effect ${step}/${key} of run ${runId}: the ledger entry kept changing; try again`);

  /**
   * Claims this process made and has not recorded yet (key → the claim and its revision), so
   * the record is one compare-and-set with no read; bounded (a missing one is read instead).
   */
  const claims = new Map<string, { value: Effect; revision: number }>();
  const CLAIMS_MAX = 10_000;

  const ledger: EffectLedger = {
    async claim(runId, step, key, at, lease): Promise<EffectClaim> {
      const k = hashKey([runId, step, key]);
      // A unique suffix tells a retried create of ours from someone else's claim.
      const claimer = `${lease ?? ''}@${nuid.next()}`;
      const value: Effect = {
        runId,
        step,
        key,
        claimedAt: at,
        claimer,
        done: false,
        doneAt: null,
        result: null,
      };
      const ours = (v: unknown): boolean => (v as Effect).claimer === claimer;
      for (let attempt = 0; attempt < 5; attempt++) {
        const revision = await kvCasRevision(link, effects, k, value, 0, ours);
        if (revision !== null) {
          claims.delete(k);
          claims.set(k, { value, revision });
          if (claims.size > CLAIMS_MAX) claims.delete(claims.keys().next().value as string);
          return { status: 'claimed' };
        }
        const cur = await getEffect(k);
        if (cur === undefined) continue;
        if (cur.value.done) return { status: 'done', result: cur.value.result };
        const at_ = cur.value.claimer.lastIndexOf('@');
        const by = at_ > 0 ? cur.value.claimer.slice(0, at_) : '';
        // The new claimer's name goes on the entry, so the next look says who tried last.
        if (lease !== undefined)
          await kvCas(link, effects, k, { ...cur.value, claimer, claimedAt: at }, cur.revision);
        return { status: 'unrecorded', claimedAt: cur.value.claimedAt, claimer: by || null };
      }
      throw contended(runId, step, key);
    },

    async record(runId, step, key, result, at) {
      const k = hashKey([runId, step, key]);
      const mine = claims.get(k);
      claims.delete(k);
      // Over our own claim, unread: anyone's write since (a later claimer, a record) makes it
      // fail, and the loop below reads and decides as usual.
      if (
        mine !== undefined &&
        (await kvCas(
          link,
          effects,
          k,
          { ...mine.value, done: true, doneAt: at, result: result ?? null },
          mine.revision,
        ))
      )
        return;
      for (let attempt = 0; attempt < 10; attempt++) {
        const cur = await getEffect(k);
        // A second record keeps the first result (as the SQLite ledger does).
        if (cur?.value.done) return;
        const value: Effect = {
          runId,
          step,
          key,
          claimedAt: cur?.value.claimedAt ?? at,
          claimer: cur?.value.claimer ?? '',
          done: true,
          doneAt: at,
          result: result ?? null,
        };
        if (await kvCas(link, effects, k, value, cur?.revision ?? 0)) return;
      }
      throw contended(runId, step, key);
    },
  };

  const control: ControlStore = {
    async setKill(flag) {
      checkRunId(flag.runId);
      // The first kill wins (later ones keep its reason), as in the SQLite store.
      const value = { runId: flag.runId, reason: flag.reason, at: flag.at };
      await kvCas(link, kills, kvKey(flag.runId), value, 0);
    },
    async getKill(runId) {
      checkRunId(runId);
      const e = await link.retry(() => kills.get(kvKey(runId)));
      if (e === null || e.operation !== 'PUT') return undefined;
      return (await jsSchemas()).KillRecord.parse(e.json());
    },
    async getBreaker(key) {
      const e = await link.retry(() => breakers.get(kvKey(key)));
      if (e === null || e.operation !== 'PUT') return { value: undefined, revision: 0 };
      return {
        value: (await jsSchemas()).BreakerRecord.parse(e.json()).value,
        revision: e.revision,
      };
    },
    async casBreaker(key, value, revision) {
      const w = nuid.next();
      const ours = (v: unknown): boolean => (v as { w?: unknown }).w === w;
      return kvCas(link, breakers, kvKey(key), { w, value }, revision, ours);
    },
  };

  return { ledger, control };
}
