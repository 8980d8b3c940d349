/**
 * The store for verbs that only read (`runs`, `cost`): opened from `--store` without the
 * runtime, the model client, the logger or the command bus, so such a verb starts fast
 * (issue 14). Writes go through `openStore` in context.ts, which scrubs secrets; these verbs
 * write nothing: on JetStream the store is opened read-only (`jetstreamReadOnly.ts`).
 */
import { openStoreFromUrl } from '../backend.js';
import type { Store } from '../store/types.js';
import { rememberSpec, storeSpec, type GlobalOptions } from './options.js';

/** Opens the store the verb's `--store` names, for reading. */
export async function openReadStore(g: GlobalOptions): Promise<Store> {
  const spec = storeSpec(g);
  // Its credentials are scrubbed from anything printed, as for every other verb.
  rememberSpec(spec);
  // A JetStream store opens only what the verb reads, and creates nothing.
  return openStoreFromUrl(spec, '--store', { readOnly: true });
}
