/**
 * The process-level batcher against an in-memory batch port (no HTTP): grouping by size and by
 * delay, an item taken out when its run stops before the batch is sent, one poll for all the
 * waiters of a batch, transient poll failures retried, a final one reported to every waiter,
 * and polling stopped once nobody waits.
 */
import { describe, expect, it } from 'vitest';
import type { BatchClient, BatchItem, BatchItemResult } from '../src/model/batchTypes.js';
import type { ClassifiedError, ModelRequest } from '../src/model/types.js';
import { Batcher } from '../src/runtime/batcher.js';
import { virtualClock } from '../src/runtime/clock.js';

const request: ModelRequest = {
  model: 'claude-haiku-4-5',
  messages: [{ role: 'user', content: 'x' }],
  maxTokens: 10,
  schema: { type: 'object' },
  schemaName: 's',
  mode: 'native',
};
const item = (customId: string): BatchItem => ({ customId, request });
const err = (retryable: boolean): ClassifiedError => ({
  kind: retryable ? 'overloaded' : 'not_found',
  status: retryable ? 529 : 404,
  retryable,
  message: retryable ? 'busy' : 'no such batch',
  retryAfterMs: null,
  requestId: null,
});
const answered = (text: string): BatchItemResult => ({
  type: 'succeeded',
  answer: {
    requestId: `msg_${text}`,
    model: 'claude-haiku-4-5',
    stopReason: 'end_turn',
    usage: {
      inputTokens: 1,
      outputTokens: 1,
      cacheReadTokens: 0,
      cacheWrite5mTokens: 0,
      cacheWrite1hTokens: 0,
    },
    content: [{ type: 'text', text }],
  },
});

/** A port whose batches end at their `endAt`-th status call; status answers scripted first. */
function memoryPort(statusScript: Array<'fail' | 'fatal'> = [], endAt = 1) {
  const submitted: string[][] = [];
  const statusCalls: string[] = [];
  const script = [...statusScript];
  const port: BatchClient = {
    submit: async (items) => {
      submitted.push(items.map((i) => i.customId));
      return { ok: true, batchId: `b${submitted.length}` };
    },
    status: async (id) => {
      statusCalls.push(id);
      const next = script.shift();
      if (next !== undefined) return { ok: false, error: err(next === 'fail') };
      const n = statusCalls.filter((x) => x === id).length;
      return { ok: true, status: n >= endAt ? 'ended' : 'in_progress' };
    },
    cancel: async () => ({ ok: true }),
    results: async (id) => {
      const i = Number(id.slice(1)) - 1;
      return {
        ok: true,
        results: new Map((submitted[i] ?? []).map((c) => [c, answered(c)])),
      };
    },
  };
  return { port, submitted, statusCalls };
}

const live = (): AbortSignal => new AbortController().signal;

describe('Batcher', () => {
  it('sends a full group at once and starts the next batch with the next item', async () => {
    const { port, submitted } = memoryPort();
    const b = new Batcher({ maxSize: 2, maxDelayMs: 1_000 }, virtualClock());
    const got = await Promise.all(['a', 'b', 'c'].map((c) => b.submit(port, item(c), live())));
    expect(submitted).toEqual([['a', 'b'], ['c']]);
    expect(got).toEqual([
      { ok: true, batchId: 'b1', items: 2 },
      { ok: true, batchId: 'b1', items: 2 },
      { ok: true, batchId: 'b2', items: 1 },
    ]);
  });

  it('takes out an item whose run stops before the batch is sent', async () => {
    const { port, submitted } = memoryPort();
    const b = new Batcher({ maxSize: 10, maxDelayMs: 1_000 }, virtualClock());
    const stop = new AbortController();
    const first = b.submit(port, item('a'), stop.signal);
    const second = b.submit(port, item('b'), live());
    stop.abort();
    expect(await first).toEqual({ ok: false, aborted: true });
    expect(await second).toEqual({ ok: true, batchId: 'b1', items: 1 });
    expect(submitted).toEqual([['b']]);
  });

  it('polls a batch once for all its waiters, with the backoff, and hands each its item', async () => {
    const { port, statusCalls } = memoryPort([], 3);
    const clock = virtualClock();
    const b = new Batcher({ poll: { minMs: 1_000, maxMs: 3_000 } }, clock);
    await b.submit(port, item('a'), live());
    const t0 = clock.now();
    const [ra, rb] = await Promise.all([
      b.result(port, 'b1', 'a', live()),
      b.result(port, 'b1', 'zz', live()),
    ]);
    expect(statusCalls).toEqual(['b1', 'b1', 'b1']);
    // 1 s + 2 s + 3 s (capped) of waiting, on the virtual clock.
    expect(clock.now() - t0).toBe(6_000);
    expect(ra).toEqual(answered('a'));
    // An ended batch without the item: reported, not retried.
    expect(rb).toMatchObject({ type: 'failed', error: { kind: 'batch_item_missing' } });
  });

  it('hands `pending` to a waiter that leaves long waits, and picks the schedule up from `since`', async () => {
    const { port, statusCalls } = memoryPort([], 3);
    const clock = virtualClock();
    const b = new Batcher({ poll: { minMs: 5_000, maxMs: 60_000 } }, clock);
    await b.submit(port, item('a'), live());
    const sent = clock.now();
    const wait = { since: sent, leaveAtMs: 10_000 };
    // Polled at 5 s (in progress); the next poll is 10 s on: the waiter leaves, nobody polls.
    expect(await b.result(port, 'b1', 'a', live(), wait)).toEqual({
      type: 'pending',
      nextPollAt: sent + 15_000,
    });
    expect(statusCalls).toEqual(['b1']);
    await clock.sleep(60_000);
    expect(statusCalls).toEqual(['b1']);
    // Back at 15 s: polled at once (still in progress), the next delay is 20 s: it leaves again.
    const back = virtualClock(sent + 15_000);
    const b2 = new Batcher({ poll: { minMs: 5_000, maxMs: 60_000 } }, back);
    expect(await b2.result(port, 'b1', 'a', live(), wait)).toEqual({
      type: 'pending',
      nextPollAt: sent + 35_000,
    });
    expect(statusCalls).toEqual(['b1', 'b1']);
    // A waiter that does not leave, back at the same time: polled at once, the batch has ended.
    expect(await b2.result(port, 'b1', 'a', live(), { since: sent })).toEqual(answered('a'));
    expect(statusCalls).toHaveLength(3);
  });

  it('polls again after a transient failure; a final one fails every waiter', async () => {
    const transient = memoryPort(['fail', 'fail']);
    const b = new Batcher({ poll: { minMs: 10, maxMs: 10 } }, virtualClock());
    await b.submit(transient.port, item('a'), live());
    expect(await b.result(transient.port, 'b1', 'a', live())).toEqual(answered('a'));
    expect(transient.statusCalls).toHaveLength(3);

    const fatal = memoryPort(['fatal']);
    const rs = await Promise.all([
      b.result(fatal.port, 'b9', 'a', live()),
      b.result(fatal.port, 'b9', 'b', live()),
    ]);
    expect(rs.map((r) => r?.type)).toEqual(['failed', 'failed']);
    expect(fatal.statusCalls).toEqual(['b9']);
  });

  it('stops polling once no run waits on the batch', async () => {
    const { port, statusCalls } = memoryPort([], Number.POSITIVE_INFINITY);
    const b = new Batcher({ poll: { minMs: 10, maxMs: 10 } }, virtualClock());
    const stop = new AbortController();
    const waiting = b.result(port, 'b1', 'a', stop.signal);
    while (statusCalls.length < 3) await new Promise((r) => setImmediate(r));
    stop.abort();
    expect(await waiting).toBeNull();
    const seen = statusCalls.length;
    for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
    expect(statusCalls.length).toBeLessThanOrEqual(seen + 1);
  });

  it('a port that throws (against its contract) fails its waiters instead of hanging them', async () => {
    const { port } = memoryPort();
    const broken: BatchClient = {
      ...port,
      submit: () => Promise.reject(new Error('boom')),
      status: () => Promise.reject(new Error('bang')),
    };
    const b = new Batcher({ poll: { minMs: 10, maxMs: 10 } }, virtualClock());
    expect(await b.submit(broken, item('a'), live())).toMatchObject({
      ok: false,
      error: { retryable: false, message: 'the batch client threw: boom' },
    });
    expect(await b.result(broken, 'b1', 'a', live())).toMatchObject({
      type: 'failed',
      error: { message: 'the batch client threw: bang' },
    });
  });
});
