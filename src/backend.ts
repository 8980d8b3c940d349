/**
 * One factory per backend: a store URL names both the event store and the command bus that goes
 * with it, a SQLite file (the embedded mode) or NATS JetStream. The CLI's `--store` and the
 * client's `connect(url)` accept the same forms, checked by one rule (`parseStoreSpec`).
 */
import { join } from 'node:path';
import type { CommandBus } from './bus/types.js';
import { parseStoreSpec, type StoreTarget } from './store/spec.js';
import type { Store } from './store/types.js';

export { STORE_FORMS, parseStoreSpec } from './store/spec.js';
export type { StoreTarget } from './store/spec.js';

/** The default store: an embedded SQLite file under the working directory. */
export const DEFAULT_STORE_URL = join('.plumbline', 'plumbline.db');

/** Options of the command bus opened beside a store. */
export interface BusOptions {
  /** Redelivery to another worker this long after its last heartbeat (default 1.5 s). */
  ackWaitMs?: number;
  /** Deliveries before a command is dead-lettered (default 5). */
  maxDeliver?: number;
}

/** A store and its command bus, opened from one URL. */
export interface Backend {
  readonly kind: 'sqlite' | 'nats';
  readonly store: Store;
  readonly bus: CommandBus;
  /** Closes the bus, then the store. */
  close(): Promise<void>;
}

/**
 * `PLUMBLINE_SQLITE_SYNCHRONOUS=NORMAL` trades power-loss durability for fewer fsyncs; the
 * default, and any other value, is `FULL`.
 */
function sqliteSynchronous(): 'NORMAL' | 'FULL' {
  return process.env.PLUMBLINE_SQLITE_SYNCHRONOUS?.toUpperCase() === 'NORMAL' ? 'NORMAL' : 'FULL';
}

/** Options of {@link openStoreFromUrl}. */
export interface OpenStoreOptions {
  /**
   * For verbs that only read: a JetStream store creates nothing and opens each bucket on first
   * use (a missing store is a StoreNotFoundError naming the fix). SQLite opens as usual.
   */
  readOnly?: boolean;
}

async function openStoreAt(at: StoreTarget, opts: OpenStoreOptions = {}): Promise<Store> {
  if (at.kind === 'sqlite') {
    const { openSqliteStore } = await import('./store/sqlite.js');
    return openSqliteStore(at.path, { synchronous: sqliteSynchronous() });
  }
  const [{ openJetStreamStore }, { natsOptionsFromServers }] = await Promise.all([
    import('./store/jetstream.js'),
    import('./store/natsUrl.js'),
  ]);
  return openJetStreamStore({
    ...natsOptionsFromServers(at.servers),
    ...(opts.readOnly === true ? { readOnly: true } : {}),
  });
}

async function openBusAt(at: StoreTarget, opts: BusOptions): Promise<CommandBus> {
  if (at.kind === 'sqlite') {
    const { openSqliteBus } = await import('./bus/sqlite.js');
    return openSqliteBus(at.path, opts);
  }
  const [{ openNatsBus }, { natsOptionsFromServers }] = await Promise.all([
    import('./bus/nats.js'),
    import('./store/natsUrl.js'),
  ]);
  return openNatsBus({ ...natsOptionsFromServers(at.servers), ...opts });
}

/**
 * Opens the event store a URL names: a SQLite file path, or `nats://host:port[,host2:port]`
 * (`tls://` for TLS). Anything else is a UsageError listing the accepted forms
 * ({@link STORE_FORMS}); nothing is created for a refused URL.
 */
export async function openStoreFromUrl(
  url: string = DEFAULT_STORE_URL,
  source?: string,
  opts: OpenStoreOptions = {},
): Promise<Store> {
  return openStoreAt(parseStoreSpec(url, source), opts);
}

/** Opens the command bus that goes with a store URL: SQLite's work queue or a JetStream one. */
export async function openBusFromUrl(
  url: string = DEFAULT_STORE_URL,
  opts: BusOptions = {},
  source?: string,
): Promise<CommandBus> {
  return openBusAt(parseStoreSpec(url, source), opts);
}

/**
 * Opens the store and the command bus a URL names (see {@link openStoreFromUrl}).
 * @example
 * const { store, bus, close } = await openBackend('nats://127.0.0.1:4222');
 */
export async function openBackend(
  url: string = DEFAULT_STORE_URL,
  opts: { bus?: BusOptions; source?: string } = {},
): Promise<Backend> {
  const at = parseStoreSpec(url, opts.source);
  const store = await openStoreAt(at);
  let bus: CommandBus;
  try {
    bus = await openBusAt(at, opts.bus ?? {});
  } catch (e) {
    await store.close();
    throw e;
  }
  return {
    kind: at.kind,
    store,
    bus,
    async close() {
      try {
        await bus.close();
      } finally {
        await store.close();
      }
    },
  };
}
