/**
 * Kept for older imports: the NATS URL rules now live in `src/store/natsUrl.ts` and the
 * factories in `src/backend.ts` (one list of accepted store URLs for the CLI and the client).
 */
import { openBusFromUrl, openStoreFromUrl, type BusOptions } from '../backend.js';
import type { CommandBus } from '../bus/types.js';
import type { Store } from '../store/types.js';

export { natsOptionsFromSpec } from '../store/natsUrl.js';

/** Opens the JetStream store at `spec`. */
export function openJetStreamStoreFromUrl(spec: string): Promise<Store> {
  return openStoreFromUrl(spec);
}

/** Opens the NATS command bus at `spec`. */
export function openNatsBusFromUrl(spec: string, opts: BusOptions = {}): Promise<CommandBus> {
  return openBusFromUrl(spec, opts);
}
