/**
 * The JetStream store's machine definitions: the KV bucket `<prefix>_definitions`, one key per
 * machine hash, so a run's `run.started` can leave its graph out.
 */
import type { KV } from '@nats-io/kv';
import { CorruptEventError } from '../errors.js';
import { kvKey } from './jetstreamIndex.js';
import { kvCas } from './jetstreamKv.js';
import type { NatsLink } from './natsConnect.js';
import type { DefinitionStore } from './types.js';

/** The definitions port over a KV bucket: `create` makes the first write win. */
export function kvDefinitions(link: NatsLink, kv: KV): DefinitionStore {
  return {
    async put(hash, graph) {
      // false: the hash is there already (the same machine, so the same graph): nothing to do.
      await kvCas(link, kv, kvKey(hash), graph ?? null, 0);
    },
    async get(hash) {
      const e = await link.retry(() => kv.get(kvKey(hash)));
      if (e === null || e.operation !== 'PUT') return undefined;
      try {
        return e.json<unknown>();
      } catch (err) {
        throw new CorruptEventError(
          `(definition ${hash})`,
          0,
          `the stored machine graph is not JSON (${(err as Error).message})`,
        );
      }
    },
  };
}
