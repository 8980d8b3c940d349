/**
 * Waiting runs in a JetStream KV bucket (`<prefix>_waits`): a kept signal under
 * `sig.<run>.<name>` (created once: the first of a name is kept until the run records it), a
 * waiting run under `wait.<run>`. `due` and `waiting` list the `wait.` keys and read each: fine
 * for thousands of waiting runs; a stream ordered by wake-up time would serve more.
 */
import type { KV } from '@nats-io/kv';
import { fromKvKey, kvKey } from './jetstreamIndex.js';
import { isWrongLastSequence, type NatsLink } from './natsConnect.js';
import type { SignalRecord, WaitStore, WaitingRun } from './types.js';

const sigKey = (runId: string, name: string): string => `sig.${kvKey(runId)}.${name}`;
const waitKey = (runId: string): string => `wait.${kvKey(runId)}`;

/** The wait store over `kv`. */
export function kvWaits(link: NatsLink, kv: KV): WaitStore {
  const read = async <T>(key: string): Promise<T | undefined> => {
    const e = await link.retry(() => kv.get(key));
    if (e === null || e.operation !== 'PUT' || e.length === 0) return undefined;
    return e.json<T>();
  };
  const all = async (): Promise<WaitingRun[]> => {
    const keys: string[] = [];
    for await (const k of await link.retry(() => kv.keys('wait.>'))) keys.push(k);
    const rows = await Promise.all(keys.map((k) => read<WaitingRun>(k)));
    return rows.filter((r): r is WaitingRun => r !== undefined);
  };
  return {
    async putSignal(s: SignalRecord) {
      try {
        await link.retry(() => kv.create(sigKey(s.runId, s.name), JSON.stringify(s)));
        return true;
      } catch (e) {
        if (isWrongLastSequence(e) || /exists/i.test((e as Error).message)) return false;
        throw e;
      }
    },
    async getSignal(runId, name) {
      return read<SignalRecord>(sigKey(runId, name));
    },
    async deleteSignal(runId, name) {
      await link.retry(() => kv.purge(sigKey(runId, name)));
    },
    async setWaiting(w) {
      await link.retry(() => kv.put(waitKey(w.runId), JSON.stringify(w)));
    },
    async clearWaiting(runId) {
      await link.retry(() => kv.purge(waitKey(runId)));
    },
    async due(now, limit) {
      return (await all())
        .filter((w) => w.wakeAt !== null && w.wakeAt <= now)
        .sort((a, b) => (a.wakeAt ?? 0) - (b.wakeAt ?? 0))
        .slice(0, limit);
    },
    async wakeTimes(runIds) {
      const rows = await Promise.all(runIds.map((id) => read<WaitingRun>(waitKey(id))));
      const out = new Map<string, number | null>();
      for (const r of rows) if (r !== undefined) out.set(r.runId, r.wakeAt);
      return out;
    },
    async waiting(limit) {
      return (await all()).sort((a, b) => a.since - b.since).slice(0, limit);
    },
  };
}

/** The run id of a `wait.` key (for tools that list the bucket). */
export function runOfWaitKey(key: string): string {
  return fromKvKey(key.slice('wait.'.length));
}
