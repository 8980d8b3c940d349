/**
 * One socket write per event-loop turn (src/store/natsWrites.ts): requests sent from many
 * microtasks of one turn leave in a few writes, every one is answered, messages keep their order,
 * a publish right before `close` is still delivered, and a connection survives a server restart.
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
