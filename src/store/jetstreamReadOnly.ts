/**
 * Opening a JetStream store for reading only (the CLI's `runs` and `cost`: issue 14). A writer's
 * open checks or creates a dozen streams and buckets, one request each, before it answers
 * anything; a reader creates nothing and binds each bucket on its first use (one stream info),
 * so a verb asks only about what it reads.
 *
 * A store that is not there gives a {@link StoreNotFoundError} naming the fix. Without that
 * check a read of a missing bucket would hang: a direct get has no responder there and waits
 * for its whole timeout (5 s) before failing with a bare "timeout".
 */
import type { JetStreamManager } from '@nats-io/jetstream';
import type { Kvm, KV } from '@nats-io/kv';
import { StoreNotFoundError, UsageError } from '../errors.js';
import { jsErrorCode } from './natsConnect.js';
import type { EventLog } from './types.js';

/** What a read-only store knows to open buckets and to explain a missing store. */
export interface ReadOnlyContext {
  jsm: JetStreamManager;
  kvm: Kvm;
  prefix: string;
  /** The servers, as a credential-free URL list (for messages). */
  servers: string;
  /** The events stream: its absence means there is no store at all. */
  eventsStream: string;
}

/** JetStream's "stream not found". */
export const STREAM_NOT_FOUND = 10059;

/** The error for a stream or bucket (`what`) that a read needs and the server does not have. */
export async function storeNotFound(
  ctx: ReadOnlyContext,
  what: string,
  cause?: unknown,
): Promise<StoreNotFoundError> {
  const where = `${ctx.servers} (prefix '${ctx.prefix}')`;
  let exists = true;
  try {
    await ctx.jsm.streams.info(ctx.eventsStream);
  } catch (e) {
    if (jsErrorCode(e) !== STREAM_NOT_FOUND) throw e;
    exists = false;
  }
  const message = exists
    ? `the store at ${where} has no ${what} (written by an older plumbline): open it once with a writer to upgrade it, e.g. \`plumbline worker --store ${ctx.servers}\``
    : `no plumbline store at ${where}: nothing was written there yet (stream ${ctx.eventsStream} does not exist). Check --store, or create the store by running a pipeline on it: \`plumbline run <pipeline> --store ${ctx.servers}\``;
  return new StoreNotFoundError(where, message, { cause });
}

/**
 * A KV bucket bound on its first call: one stream info says it exists (else a
 * StoreNotFoundError) and whether it answers direct gets. Every KV method returns a promise, so
 * the proxy forwards each call once the bucket is bound.
 */
export function lazyBucket(ctx: ReadOnlyContext, name: string): KV {
  let bound: Promise<KV> | undefined;
  const bind = async (): Promise<KV> => {
    let direct: boolean;
    try {
      direct = (await ctx.jsm.streams.info(`KV_${name}`)).config.allow_direct === true;
    } catch (e) {
      if (jsErrorCode(e) !== STREAM_NOT_FOUND) throw e;
      throw await storeNotFound(ctx, `bucket ${name}`, e);
    }
    return ctx.kvm.open(name, { allow_direct: direct });
  };
  const get = (): Promise<KV> =>
    (bound ??= bind().catch((e: unknown) => {
      bound = undefined;
      throw e;
    }));
  return new Proxy({} as KV, {
    get(_target, prop) {
      // Not a thenable: `await` on the proxy must give the proxy itself.
      if (prop === 'then') return undefined;
      return (...args: unknown[]) =>
        get().then((kv) => (kv[prop as keyof KV] as (...a: unknown[]) => unknown)(...args));
    },
  });
}

/** The log's methods that write. */
const WRITES = new Set(['append', 'saveSnapshot']);

/**
 * The log with "stream not found" from any read turned into a StoreNotFoundError, and its
 * writes refused (a reader created nothing a writer needs).
 */
export function guardReads(ctx: ReadOnlyContext, log: EventLog): EventLog {
  const guarded = {} as Record<string, unknown>;
  for (const [key, fn] of Object.entries(log) as Array<[string, (...a: unknown[]) => unknown]>)
    guarded[key] = async (...args: unknown[]) => {
      if (WRITES.has(key))
        throw new UsageError(
          `this JetStream store was opened for reading only: open it without readOnly to ${key === 'append' ? 'append' : 'save a snapshot'}`,
        );
      try {
        return await fn(...args);
      } catch (e) {
        if (jsErrorCode(e) !== STREAM_NOT_FOUND) throw e;
        throw await storeNotFound(ctx, 'stream it needs', e);
      }
    };
  return guarded as unknown as EventLog;
}
