/**
 * NATS connection options from a `nats://` store URL and the environment: credentials may sit
 * in the URL (`nats://token@host`, `nats://user:pass@host`) or in NATS_TOKEN, NATS_USER /
 * NATS_PASSWORD, NATS_CREDS, NATS_TLS_CA / NATS_TLS_CERT / NATS_TLS_KEY; NATS_REPLICAS sets
 * the stream replicas (1 by default, 3 in a cluster). Shared by the store and the bus.
 */
import { UsageError } from '../errors.js';
import type { NatsConnectOptions } from './natsConnect.js';
import { parseStoreSpec } from './spec.js';

/** NATS options: what {@link natsOptionsFromServers} adds to a spec's servers and env. */
export type NatsUrlOptions = NatsConnectOptions & { replicas?: number };

/** Connection options for a spec like `nats://user:pass@host:4222,host2:4222`. */
export function natsOptionsFromSpec(spec: string, env = process.env): NatsUrlOptions {
  const target = parseStoreSpec(spec);
  if (target.kind !== 'nats')
    throw new UsageError(`'${spec}' is a file path, not a NATS URL: use nats://host:port`);
  return natsOptionsFromServers(target.servers, env);
}

/** Connection options for the servers of a checked spec (full URLs, credentials kept). */
export function natsOptionsFromServers(
  urls: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
): NatsUrlOptions {
  const servers: string[] = [];
  let token: string | undefined;
  let user: string | undefined;
  let pass: string | undefined;
  for (const part of urls) {
    const u = new URL(part);
    servers.push(`${u.protocol}//${u.host}`);
    if (u.username !== '' && u.password === '') token = decodeURIComponent(u.username);
    if (u.username !== '' && u.password !== '') {
      user = decodeURIComponent(u.username);
      pass = decodeURIComponent(u.password);
    }
  }
  token = env.NATS_TOKEN ?? token;
  user = env.NATS_USER ?? user;
  pass = env.NATS_PASSWORD ?? pass;
  const tls =
    env.NATS_TLS_CA || env.NATS_TLS_CERT || urls.some((u) => /^tls:/i.test(u))
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
