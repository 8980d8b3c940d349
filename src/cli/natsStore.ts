/**
 * Opening the JetStream store from a `nats://` URL (credentials in the URL or the environment).
 */
import type { Store } from '../store/types.js';

/** Opens the JetStream store at `url`. */
export async function openJetStreamStoreFromUrl(url: string): Promise<Store> {
  const { openJetStreamStore } = await import('../store/jetstream.js');
  const u = new URL(url);
  const server = `${u.protocol}//${u.host}`;
  return openJetStreamStore({
    servers: server,
    ...(u.username !== '' && u.password === '' ? { token: decodeURIComponent(u.username) } : {}),
    ...(u.username !== '' && u.password !== '' ? { user: decodeURIComponent(u.username), pass: decodeURIComponent(u.password) } : {}),
    ...(process.env.NATS_TOKEN ? { token: process.env.NATS_TOKEN } : {}),
    ...(process.env.NATS_CREDS ? { credsFile: process.env.NATS_CREDS } : {}),
  } as never);
}
