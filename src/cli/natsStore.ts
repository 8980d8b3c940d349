/**
 * NATS connection options from a `nats://` store spec and the environment: credentials may sit
 * in the URL (`nats://token@host`, `nats://user:pass@host`) or in NATS_TOKEN, NATS_USER /
 * NATS_PASSWORD, NATS_CREDS, NATS_TLS_CA / NATS_TLS_CERT / NATS_TLS_KEY; NATS_REPLICAS sets
 * the stream replicas (1 by default, 3 in a cluster).
 */
import type { CommandBus } from '../bus/types.js';
import type { NatsConnectOptions } from '../store/natsConnect.js';
import type { Store } from '../store/types.js';

/** Connection options for a spec like `nats://user:pass@host:4222,nats://host2:4222`. */
export function natsOptionsFromSpec(spec: string): NatsConnectOptions & { replicas?: number } {
  const servers: string[] = [];
  let token: string | undefined;
  let user: string | undefined;
  let pass: string | undefined;
  for (const part of spec.split(',')) {
    const u = new URL(part.trim());
    servers.push(`${u.protocol}//${u.host}`);
    if (u.username !== '' && u.password === '') token = decodeURIComponent(u.username);
    if (u.username !== '' && u.password !== '') {
      user = decodeURIComponent(u.username);
      pass = decodeURIComponent(u.password);
    }
  }
  const env = process.env;
  token = env.NATS_TOKEN ?? token;
  user = env.NATS_USER ?? user;
  pass = env.NATS_PASSWORD ?? pass;
  const tls =
    env.NATS_TLS_CA || env.NATS_TLS_CERT || spec.startsWith('tls://')
      ? {
          ...(env.NATS_TLS_CA ? { caFile: env.NATS_TLS_CA } : {}),
          ...(env.NATS_TLS_CERT ? { certFile: env.NATS_TLS_CERT } : {}),
          ...(env.NATS_TLS_KEY ? { keyFile: env.NATS_TLS_KEY } : {}),
        }
      : undefined;
  return {
    servers,
    ...(token !== undefined ? { token } : {}),
    ...(user !== undefined ? { user } : {}),
    ...(pass !== undefined ? { pass } : {}),
    ...(env.NATS_CREDS ? { credsFile: env.NATS_CREDS } : {}),
    ...(tls !== undefined ? { tls } : {}),
    ...(env.NATS_REPLICAS ? { replicas: Number(env.NATS_REPLICAS) } : {}),
    name: `plumbline-${process.pid}`,
  };
}

/** Opens the JetStream store at `spec`. */
export async function openJetStreamStoreFromUrl(spec: string): Promise<Store> {
  const { openJetStreamStore } = await import('../store/jetstream.js');
  return openJetStreamStore(natsOptionsFromSpec(spec));
}

/** Opens the NATS command bus at `spec`. */
export async function openNatsBusFromUrl(
  spec: string,
  opts: { ackWaitMs?: number; maxDeliver?: number } = {},
): Promise<CommandBus> {
  const { openNatsBus } = await import('../bus/nats.js');
  return openNatsBus({ ...natsOptionsFromSpec(spec), ...opts });
}
