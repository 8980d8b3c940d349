/**
 * The client the CLI verbs call: `connect` on `--store`, with the CLI's secret scrubbing, its
 * runtime (logger, model settings) and its wording for an unknown run id.
 */
import { connect, type PlumblineClient } from '../client/client.js';
import type { Prepared } from '../runtime/prepare.js';
import { makeRuntime, scrubbedStore, storeSpec, type GlobalOptions } from './context.js';

/** Connects to the store the verb's `--store` names (and its command bus). */
export async function cliClient(
  g: GlobalOptions,
  pipelines: Iterable<Prepared> = [],
): Promise<PlumblineClient> {
  const spec = storeSpec(g);
  return connect(spec, {
    source: '--store',
    listRunsHint: '`plumbline runs`',
    pipelines: [...pipelines],
    wrapStore: (store) => scrubbedStore(spec, store),
    runtime: (store) => makeRuntime(store, g),
  });
}
