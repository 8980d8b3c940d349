/**
 * What connectNats changes in nats.js. One socket write per event-loop turn
 * (src/store/natsWrites.ts): requests sent from many microtasks of one turn leave in a few
 * writes, every one is answered, messages keep their order, a publish right before `close` is
 * still delivered, and a connection survives a server restart. Requests end without an error
 * built each (src/store/natsRequests.ts): answers, timeouts, no responders and a closed
 * connection still settle each request as before.
 */
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectNats } from '../src/store/natsConnect.js';
import { startNatsServer, type NatsServerHandle } from './helpers/natsServer.js';

/** Counts the socket writes of `nc` (its transport is replaced on reconnect: looked up each time). */
function countWrites(nc: NatsConnection): () => number {
  const p = (nc as unknown as { protocol: { transport: { send(b: Uint8Array): void } } }).protocol;
  let n = 0;
  let patched: object | undefined;
  const patch = (): void => {
    const t = p.transport;
    if (t === patched) return;
    const send = t.send.bind(t);
    t.send = (b: Uint8Array) => {
      n += 1;
      send(b);
    };
    patched = t;
  };
  patch();
  return () => {
    patch();
    return n;
  };
}

describe('nats: one socket write per event-loop turn', () => {
  let server: NatsServerHandle;
  let echo: NatsConnection;
  beforeAll(async () => {
    server = await startNatsServer();
    echo = await connect({ servers: server.url });
    echo.subscribe('echo.>', {
      callback: (_err, m) => {
        m.respond(m.data);
      },
    });
    await echo.flush();
  });
  afterAll(async () => {
    await echo?.close();
    await server?.[Symbol.asyncDispose]();
  });

  it('sends the requests of one turn, made from 200 microtasks, in a few writes; all answered', async () => {
    const nc = await connectNats({ servers: server.url });
    const writes = countWrites(nc);
    const before = writes();
    const sent = Array.from({ length: 200 }, async (_, i) => {
      // Each request from a microtask of its own depth (as runs' continuations are).
      for (let k = 0; k < i % 7; k++) await null;
      const m = await nc.request(`echo.${i}`, String(i), { timeout: 5_000 });
      return m.string();
    });
    const answers = await Promise.all(sent);
    expect(answers).toEqual(Array.from({ length: 200 }, (_, i) => String(i)));
    // Without the coalescing each microtask depth flushed on its own (7 writes or more).
    expect(writes() - before).toBeLessThanOrEqual(3);
    await nc.close();
  });

  it('keeps the order of messages, and delivers a publish made right before close', async () => {
    const sub = await connect({ servers: server.url });
    const got: string[] = [];
    const done = new Promise<void>((resolve) => {
      sub.subscribe('order', {
        callback: (_err, m) => {
          got.push(m.string());
          if (got.length === 1_000) resolve();
        },
      });
    });
    await sub.flush();
    const nc = await connectNats({ servers: server.url });
    for (let i = 0; i < 999; i++) nc.publish('order', String(i));
    // Past nats.js's 32 KiB threshold the buffer is written at once; the rest on close.
    nc.publish('order', 'last');
    await nc.close();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      done,
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`only ${got.length} of 1,000 arrived`)), 20_000);
      }),
    ]).finally(() => clearTimeout(timer));
    expect(got).toEqual([...Array.from({ length: 999 }, (_, i) => String(i)), 'last']);
    await sub.close();
  });

  it('keeps answering requests after the server restarts', async () => {
    const nc = await connectNats({ servers: server.url });
    expect((await nc.request('echo.a', 'a', { timeout: 5_000 })).string()).toBe('a');
    await server.kill();
    await server.restart();
    // The echo responder reconnects as well; retry until both are back.
    const deadline = Date.now() + 30_000;
    let answer: string | undefined;
    while (answer === undefined) {
      try {
        answer = (await nc.request('echo.b', 'b', { timeout: 1_000 })).string();
      } catch (e) {
        if (Date.now() > deadline) throw e;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    expect(answer).toBe('b');
    await nc.close();
  });
});

describe('nats: requests end without an error built each', () => {
  let server: NatsServerHandle;
  beforeAll(async () => {
    server = await startNatsServer();
  });
  afterAll(async () => {
    await server?.[Symbol.asyncDispose]();
  });

  it('answers, times out, reports no responders and fails on close as nats.js does', async () => {
    const nc = await connectNats({ servers: server.url });
    const responder = await connect({ servers: server.url });
    responder.subscribe('ans', {
      callback: (_e, m) => {
        m.respond(`re:${m.string()}`);
      },
    });
    responder.subscribe('silent', { callback: () => undefined });
    await responder.flush();
    const mux = (
      nc as unknown as {
        protocol: { muxSubscriptions: { reqs: Map<string, { cancel: unknown }> } };
      }
    ).protocol.muxSubscriptions;

    const answered = nc.request('ans', 'x', { timeout: 5_000 });
    // The request in flight ends through the connection's own cancel, not nats.js's.
    const inFlight = [...mux.reqs.values()];
    expect(inFlight).toHaveLength(1);
    const r = inFlight[0] as { cancel: unknown };
    expect(r.cancel).not.toBe((Object.getPrototypeOf(r) as { cancel: unknown }).cancel);
    expect((await answered).string()).toBe('re:x');
    expect(mux.reqs.size).toBe(0);

    const many = await Promise.all(
      Array.from({ length: 100 }, (_, i) => nc.request('ans', String(i), { timeout: 5_000 })),
    );
    expect(many.map((m) => m.string())).toEqual(Array.from({ length: 100 }, (_, i) => `re:${i}`));

    await expect(nc.request('silent', 'x', { timeout: 200 })).rejects.toMatchObject({
      name: 'TimeoutError',
    });
    const none = await nc.request('nobody.here', 'x', { timeout: 5_000 }).catch((e: unknown) => e);
    expect((none as Error).name).toBe('RequestError');
    expect(((none as Error).cause as Error).name).toBe('NoResponders');
    expect(mux.reqs.size).toBe(0);

    const pending = nc.request('silent', 'x', { timeout: 30_000 }).catch((e: unknown) => e);
    await nc.close();
    expect(((await pending) as Error).message).toMatch(/closed/);
    await responder.close();
  });
});
