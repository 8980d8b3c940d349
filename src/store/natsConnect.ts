/**
 * Shared NATS plumbing for the JetStream store and the NATS bus: connecting with the options
 * that matter (fast client, reconnect forever), retrying transient failures, and reading the
 * code out of a JetStream API error.
 */
import { readFileSync } from 'node:fs';
import type { NatsConnection } from '@nats-io/transport-node';
import { UsageError } from '../errors.js';
import { natsCore, natsJetStream } from './natsLib.js';
import { quietRequestEnds } from './natsRequests.js';
import { coalesceWrites } from './natsWrites.js';

const { JetStreamApiError } = natsJetStream;
const { connect, credsAuthenticator } = natsCore;

/** How to reach a NATS server (shared by `openJetStreamStore` and `openNatsBus`). */
export interface NatsConnectOptions {
  servers: string | string[];
  token?: string;
  user?: string;
  pass?: string;
  /** A `.creds` file (JWT + nkey seed). */
  credsFile?: string;
  /** TLS: `true` to require it, or file paths for a private CA / client certificate. */
  tls?: boolean | { caFile?: string; certFile?: string; keyFile?: string };
  /** Connection name shown by the server (monitoring). */
  name?: string;
  /** How long an operation keeps retrying while the server is unreachable (default 60 s). */
  retryForMs?: number;
}

/**
 * Connects with `noAsyncTraces` (about 1.7× publish throughput), endless reconnects, one
 * socket write per event-loop turn (natsWrites.ts) and no error built per answered request
 * (natsRequests.ts).
 */
export async function connectNats(opts: NatsConnectOptions): Promise<NatsConnection> {
  let creds: Uint8Array | undefined;
  if (opts.credsFile !== undefined) {
    try {
      creds = readFileSync(opts.credsFile);
    } catch (e) {
      throw new UsageError(
        `cannot read the NATS creds file ${opts.credsFile}: ${(e as Error).message}; set NATS_CREDS to a readable .creds file`,
        { cause: e },
      );
    }
  }
  const tls =
    opts.tls === undefined || opts.tls === false ? undefined : opts.tls === true ? {} : opts.tls;
  let nc: NatsConnection;
  try {
    nc = await connect({
      servers: opts.servers,
      noAsyncTraces: true,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 500,
      reconnectJitter: 100,
      name: opts.name ?? 'plumbline',
      ...(opts.token !== undefined ? { token: opts.token } : {}),
      ...(opts.user !== undefined ? { user: opts.user, pass: opts.pass ?? '' } : {}),
      ...(creds !== undefined ? { authenticator: credsAuthenticator(creds) } : {}),
      ...(tls !== undefined ? { tls } : {}),
    });
  } catch (e) {
    const servers = Array.isArray(opts.servers) ? opts.servers.join(', ') : opts.servers;
    throw new UsageError(
      `cannot connect to NATS at ${servers}: ${(e as Error).message}; start nats-server with -js, or point the store at the right server (--store nats://host:4222 or PLUMBLINE_STORE) with its credentials (in the URL or NATS_TOKEN / NATS_USER and NATS_PASSWORD / NATS_CREDS)`,
      {
        cause: e,
      },
    );
  }
  coalesceWrites(nc);
  quietRequestEnds(nc);
  return nc;
}

/** The JetStream API error code of `e` (10071 wrong last sequence, ...), if it has one. */
export function jsErrorCode(e: unknown): number | undefined {
  return e instanceof JetStreamApiError ? e.code : undefined;
}

/** True for a wrong-last-sequence answer (10071; 10164 on servers ≥ 2.11). */
export function isWrongLastSequence(e: unknown): boolean {
  const code = jsErrorCode(e);
  return code === 10071 || code === 10164;
}

const TRANSIENT_NAMES = new Set([
  'TimeoutError',
  'RequestError',
  'NoRespondersError',
  'JetStreamNotEnabled',
  'ConnectionError',
  'ReadIncompleteError',
]);

/** True when retrying later may succeed: timeouts, no responders (JetStream restarting), 503. */
export function isTransient(e: unknown): boolean {
  if (!(e instanceof Error)) return false;
  if (TRANSIENT_NAMES.has(e.name)) return true;
  if (e instanceof JetStreamApiError) return e.status === 503;
  return false;
}

/** Thrown into an attempt that was in flight when the connection came back. */
class Reconnected extends Error {
  constructor() {
    super('the NATS connection was re-established while the request was in flight');
    this.name = 'Reconnected';
  }
}

/** A connection plus a retry policy that knows when the connection comes back. */
export interface NatsLink {
  readonly nc: NatsConnection;
  /**
   * Runs `op` until it succeeds, retrying transient failures with backoff for up to
   * `retryForMs`, and retrying at once when the connection is re-established (a request
   * sent while disconnected is never answered: it would otherwise wait for its timeout).
   * Only for operations that are safe to repeat (reads, CAS writes, publishes with a msgID).
   */
  retry<T>(op: () => Promise<T>): Promise<T>;
  readonly closed: boolean;
  /** Drains and closes the connection (idempotent). */
  close(): Promise<void>;
}

/** Connects (see {@link connectNats}) and wraps the connection in a {@link NatsLink}. */
export async function openNatsLink(opts: NatsConnectOptions): Promise<NatsLink> {
  const nc = await connectNats(opts);
  const retryFor = opts.retryForMs ?? 60_000;
  let closed = false;
  const waiters = new Set<() => void>();
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === 'reconnect') for (const w of [...waiters]) w();
    }
  })().catch(() => undefined);

  // One promise per attempt, settled by the operation or by a reconnect, whichever comes first
  // (a race with a reconnect promise cost 2.2 µs a request, this 1).
  const attempt = <T>(op: () => Promise<T>): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      const onBack = (): void => reject(new Reconnected());
      waiters.add(onBack);
      let p: Promise<T>;
      try {
        p = op();
      } catch (e) {
        waiters.delete(onBack);
        reject(e as Error);
        return;
      }
      p.then(
        (v) => {
          waiters.delete(onBack);
          resolve(v);
        },
        (e: unknown) => {
          waiters.delete(onBack);
          reject(e as Error);
        },
      );
    });

  return {
    nc,
    get closed() {
      return closed;
    },
    async retry<T>(op: () => Promise<T>): Promise<T> {
      const deadline = Date.now() + retryFor;
      for (let n = 0; ; n++) {
        try {
          return await attempt(op);
        } catch (e) {
          if (!(e instanceof Reconnected || isTransient(e)) || closed || Date.now() >= deadline)
            throw e;
          if (!(e instanceof Reconnected))
            await new Promise((r) => setTimeout(r, Math.min(100 * 2 ** n, 1_000)));
        }
      }
    },
    async close() {
      if (closed) return;
      closed = true;
      if (!nc.isClosed()) await nc.drain();
    },
  };
}
