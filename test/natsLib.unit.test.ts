/**
 * The `@nats-io` packages are loaded with `require` (src/store/natsLib.ts, a faster start): a
 * user's own `import` of them must get the very same classes and functions, or a connection or
 * an error made on one side would fail the other side's `instanceof`.
 */
import { JetStreamApiError, jetstream } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { connect, headers } from '@nats-io/transport-node';
import { describe, expect, it } from 'vitest';
import { natsCore, natsJetStream, natsKv, natsObj } from '../src/store/natsLib.js';

describe('natsLib', () => {
  it('gives the same module objects as an ESM import', async () => {
    expect(natsCore.connect).toBe(connect);
    expect(natsCore.headers).toBe(headers);
    expect(natsJetStream.jetstream).toBe(jetstream);
    expect(natsJetStream.JetStreamApiError).toBe(JetStreamApiError);
    expect(natsKv.Kvm).toBe(Kvm);
    expect(natsObj().Objm).toBe((await import('@nats-io/obj')).Objm);
  });
});
