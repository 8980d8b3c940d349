import { randomBytes } from 'node:crypto';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLocalBus } from '../src/bus/local.js';
import { openNatsBus, type NatsBusOptions } from '../src/bus/nats.js';
import {
  DEFAULT_ACK_WAIT_MS,
  type Command,
  type CommandBus,
  type CommandControl,
} from '../src/bus/types.js';
import { startNatsServer, type NatsServerHandle } from './helpers/natsServer.js';

let server: NatsServerHandle;
beforeAll(async () => {
  server = await startNatsServer();
});
afterAll(async () => {
  await server?.[Symbol.asyncDispose]();
});

let n = 0;
const opened: CommandBus[] = [];
afterAll(async () => {
  await Promise.all(opened.map((b) => b.close()));
});

async function natsBus(
  extra: Partial<NatsBusOptions> = {},
): Promise<CommandBus & { prefix: string }> {
  const prefix = `t${++n}`;
  const bus = await openNatsBus({ servers: server.url, prefix, pullExpiresMs: 1_000, ...extra });
  opened.push(bus);
  return Object.assign(bus, { prefix });
}

/** Consumes until `until` says stop (or `ms` pass); returns what the handler saw. */
async function drive(
  bus: CommandBus,
  handle: (cmd: Command, ctl: CommandControl) => Promise<void>,
  until: (seen: Command[]) => boolean | Promise<boolean>,
  ms = 10_000,
): Promise<Command[]> {
  const seen: Command[] = [];
  const ac = new AbortController();
  const running = bus.consume(
    async (cmd, ctl) => {
      seen.push(cmd);
      await handle(cmd, ctl);
    },
    { concurrency: 2, signal: ac.signal },
  );
  const deadline = Date.now() + ms;
  while (!(await until(seen)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  ac.abort();
  await running;
  return seen;
}

const ack = async (): Promise<void> => undefined;

describe.each([
  ['nats', () => natsBus({ maxDeliver: 3 })],
  ['local', async () => createLocalBus({ maxDeliver: 3 })],
] as const)('command bus (%s)', (_name, open) => {
  it('delivers a start once and reports the second publish as a duplicate', async () => {
    const bus = await open();
    expect(await bus.publishStart({ runId: 'r1', pipeline: 'p', input: { a: 1 } })).toEqual({
      duplicate: false,
    });
    expect(await bus.publishStart({ runId: 'r1', pipeline: 'p', input: { a: 2 } })).toEqual({
      duplicate: true,
    });
    await bus.publishResume({ runId: 'r1', budgetUsd: 2 });
    // Wait for a third delivery that must not come (a duplicate start slipping through).
    const seen = await drive(bus, ack, (s) => s.length >= 3, 1_500);
    expect(seen).toEqual([
      { type: 'start', runId: 'r1', pipeline: 'p', input: { a: 1 } },
      { type: 'resume', runId: 'r1', budgetUsd: 2 },
    ]);
  });

  it('refuses an invalid command at publish time, naming the field', async () => {
    const bus = await open();
    await expect(bus.publishStart({ runId: '', pipeline: 'p', input: null })).rejects.toThrow(
      /runId/,
    );
  });

  it('dead-letters a command nak-ed until the delivery limit', async () => {
    const bus = await open();
    await bus.publishStart({ runId: 'nak', pipeline: 'p', input: null });
    const seen = await drive(
      bus,
      async (_cmd, ctl) => ctl.nak(),
      async () => (await bus.deadLetters()).length > 0,
    );
    expect(seen.length).toBe(3);
    const [dl] = await bus.deadLetters();
    expect(dl?.reason).toMatch(/3 deliveries/);
    expect(JSON.parse(new TextDecoder().decode(dl?.data))).toMatchObject({ runId: 'nak' });
  });

  it('retries a handler that throws, then succeeds', async () => {
    const bus = await open();
    await bus.publishStart({ runId: 'flaky', pipeline: 'p', input: null });
    let calls = 0;
    const seen = await drive(
      bus,
      async () => {
        if (++calls === 1) throw new Error('transient');
      },
      (s) => s.length >= 2,
    );
    expect(seen.map((c) => c.runId)).toEqual(['flaky', 'flaky']);
    expect(await bus.deadLetters()).toEqual([]);
  });
});

describe('command bus (nats): poison messages and redelivery', () => {
  it('dead-letters malformed, wrongly shaped, binary and oversize messages with the reason, and keeps delivering', async () => {
    const bus = await natsBus({ maxCommandBytes: 1_024 });
    const nc = await connect({ servers: server.url });
    try {
      const js = jetstream(nc);
      const subj = `${bus.prefix}.cmd.start`;
      await js.publish(subj, '{"type":"start", nope');
      await js.publish(subj, JSON.stringify({ type: 'start', runId: 5, pipeline: 'p' }));
      await js.publish(subj, new Uint8Array([0xff, 0xfe, ...randomBytes(62)]));
      await js.publish(
        subj,
        JSON.stringify({ type: 'start', runId: 'big', pipeline: 'p', input: 'x'.repeat(2_000) }),
      );
      await bus.publishStart({ runId: 'good', pipeline: 'p', input: null });
      const seen = await drive(bus, ack, (s) => s.length >= 1);
      expect(seen.map((c) => c.runId)).toEqual(['good']);
      const reasons = (await bus.deadLetters()).map((d) => d.reason);
      expect(reasons).toHaveLength(4);
      expect(reasons[0]).toMatch(/not JSON/);
      expect(reasons[1]).toMatch(/invalid command: runId/);
      expect(reasons[2]).toMatch(/not UTF-8/);
      expect(reasons[3]).toMatch(/2\d{3} bytes, over the 1024-byte limit/);
      // Nothing left in the work queue: dead-lettered messages were terminated.
      const jsm = await jetstreamManager(nc);
      expect((await jsm.streams.info(`${bus.prefix.toUpperCase()}_CMDS`)).state.messages).toBe(0);
    } finally {
      await nc.close();
    }
  });

  it('dead-letters through the MAX_DELIVERIES advisory and removes the message from the queue', async () => {
    const bus = await natsBus({ maxDeliver: 2 });
    await bus.publishResume({ runId: 'stuck' });
    await drive(
      bus,
      async (_c, ctl) => ctl.nak(),
      async () => (await bus.deadLetters()).length > 0,
    );
    const [dl] = await bus.deadLetters();
    expect(dl).toMatchObject({ subject: `${bus.prefix}.cmd.resume`, deliveries: 2 });
    expect(dl?.reason).toMatch(/max_deliver 2/);
    const nc = await connect({ servers: server.url });
    const jsm = await jetstreamManager(nc);
    expect((await jsm.streams.info(`${bus.prefix.toUpperCase()}_CMDS`)).state.messages).toBe(0);
    await nc.close();
  });

  it('moves a message exhausted while no worker listened to the DLQ when consuming starts', async () => {
    const bus = await natsBus({ maxDeliver: 2 });
    await bus.publishStart({ runId: 'unheard', pipeline: 'p', input: null });
    // A bare client exhausts the deliveries: nobody hears the advisory.
    const nc = await connect({ servers: server.url });
    try {
      const c = await jetstream(nc).consumers.get(
        `${bus.prefix.toUpperCase()}_CMDS`,
        `${bus.prefix}_workers`,
      );
      for (let i = 0; i < 2; i++) (await c.next({ expires: 1_000 }))?.nak();
      expect(await c.next({ expires: 1_000 })).toBeNull();
      expect(await bus.deadLetters()).toEqual([]);
      await bus.publishStart({ runId: 'after', pipeline: 'p', input: null });
      const seen = await drive(bus, ack, (s) => s.length >= 1);
      expect(seen.map((c) => c.runId)).toEqual(['after']);
      const dls = await bus.deadLetters();
      expect(
        dls
          .map((d) => JSON.parse(new TextDecoder().decode(d.data)) as { runId: string })
          .map((d) => d.runId),
      ).toEqual(['unheard']);
      expect(dls[0]?.reason).toMatch(/sweep/);
    } finally {
      await nc.close();
    }
  });

  it('keeps a command with its live consumer past the default ack wait (heartbeats), and redelivers it once that consumer died', async () => {
    const a = await natsBus();
    await a.publishStart({ runId: 'orphan', pipeline: 'p', input: null });
    // Worker A takes the command and works on it (never acking) until it dies.
    let release = (): void => undefined;
    const taken = new Promise<void>((resolveTaken) => {
      void a.consume(
        () => {
          resolveTaken();
          return new Promise<void>((r) => {
            release = r;
          });
        },
        { concurrency: 1, signal: new AbortController().signal },
      );
    });
    await taken;
    // Worker B, on its own connection with the default settings, pulls meanwhile.
    const b = await openNatsBus({ servers: server.url, prefix: a.prefix, pullExpiresMs: 1_000 });
    opened.push(b);
    const seenWhileAlive = await drive(b, ack, () => false, 3 * DEFAULT_ACK_WAIT_MS);
    expect(seenWhileAlive).toEqual([]);
    // A dies (its connection closes, its beats stop): B gets the command after the ack wait.
    await a.close();
    let deliveries = 0;
    const seen = await drive(
      b,
      async (_c, ctl) => {
        deliveries = ctl.deliveries;
      },
      (s) => s.length >= 1,
      30_000,
    );
    release();
    expect(seen.map((c) => c.runId)).toEqual(['orphan']);
    expect(deliveries).toBe(2);
  });

  it('sets a consumer made with an old 30 s ack wait to the default when a worker consumes; a publisher leaves it', async () => {
    const old = await natsBus({ ackWaitMs: 30_000 });
    const ackWaitOf = async (): Promise<number> => {
      const nc = await connect({ servers: server.url });
      try {
        const jsm = await jetstreamManager(nc);
        const ci = await jsm.consumers.info(
          `${old.prefix.toUpperCase()}_CMDS`,
          `${old.prefix}_workers`,
        );
        return (ci.config.ack_wait ?? 0) / 1e6;
      } finally {
        await nc.close();
      }
    };
    expect(await ackWaitOf()).toBe(30_000);
    const publisher = await openNatsBus({ servers: server.url, prefix: old.prefix });
    opened.push(publisher);
    await publisher.publishStart({ runId: 'p1', pipeline: 'p', input: null });
    expect(await ackWaitOf()).toBe(30_000);
    const worker = await openNatsBus({
      servers: server.url,
      prefix: old.prefix,
      pullExpiresMs: 1_000,
    });
    opened.push(worker);
    expect(await drive(worker, ack, (s) => s.length >= 1)).toHaveLength(1);
    expect(await ackWaitOf()).toBe(DEFAULT_ACK_WAIT_MS);
  });
});
