/**
 * The bus's own heartbeats (issue 14): one timer beats every unsettled delivery of a consume
 * loop, so a short ack wait never takes a command from a live handler, however long it works,
 * and a dead consumer's command comes back to another one. The SQLite bus here (a real file,
 * two consumers as two processes would have); NATS in bus.nats.int.test.ts.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Heartbeat } from '../src/bus/heartbeat.js';
import { openSqliteBus } from '../src/bus/sqlite.js';
import { DEFAULT_ACK_WAIT_MS, heartbeatEveryMs, type CommandControl } from '../src/bus/types.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('Heartbeat', () => {
  afterEach(() => void vi.useRealTimers());

  it('beats every live delivery together, stops for a settled one, and survives a failed beat', () => {
    vi.useFakeTimers();
    const beats: string[][] = [];
    const errors: unknown[] = [];
    let fail = false;
    const h = new Heartbeat<string>(
      100,
      (keys) => {
        if (fail) throw new Error('disk full');
        beats.push(keys);
      },
      (e) => void errors.push(e),
    );
    h.add('a');
    h.add('b');
    vi.advanceTimersByTime(250);
    expect(beats).toEqual([
      ['a', 'b'],
      ['a', 'b'],
    ]);
    h.delete('a');
    fail = true;
    vi.advanceTimersByTime(100);
    expect(errors).toHaveLength(1);
    fail = false;
    vi.advanceTimersByTime(100);
    expect(beats.at(-1)).toEqual(['b']);
    h.delete('b');
    expect(vi.getTimerCount()).toBe(0);
  });

  it('beats at a fifth of the default ack wait (a dead worker noticed within 1.5 s)', () => {
    expect(DEFAULT_ACK_WAIT_MS).toBeLessThanOrEqual(2_000);
    expect(heartbeatEveryMs(DEFAULT_ACK_WAIT_MS)).toBe(300);
  });
});

describe('SQLite bus heartbeats', () => {
  it('keeps a command from a second consumer while its handler works for several ack waits, then hands it over when the first dies', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'plumbline-beat-'));
    const path = join(dir, 'bus.db');
    const ackWaitMs = 600;
    const a = openSqliteBus(path, { ackWaitMs, pollMs: 10 });
    const b = openSqliteBus(path, { ackWaitMs, pollMs: 10 });
    const stopA = new AbortController();
    const stopB = new AbortController();
    const seenB: number[] = [];
    try {
      await a.publishStart({ runId: 'long', pipeline: 'p', input: null });
      let taken = (): void => undefined;
      const tookIt = new Promise<void>((r) => (taken = r));
      let finish = (): void => undefined;
      const longRun = new Promise<void>((r) => (finish = r));
      // A takes it and works on it (a long run) until it dies below without acking.
      const consumingA = a.consume(
        async () => {
          taken();
          await longRun;
        },
        { concurrency: 1, signal: stopA.signal },
      );
      await tookIt;
      const consumingB = b.consume(
        async (_cmd, ctl: CommandControl) => {
          seenB.push(ctl.deliveries);
        },
        { concurrency: 1, signal: stopB.signal },
      );
      await sleep(4 * ackWaitMs);
      expect(seenB).toEqual([]);
      // A dies: its connection closes, its beats fail, the claim lapses.
      await a.close();
      stopA.abort();
      finish(); // its ack fails on the closed file: the command stays with B's delivery
      await consumingA;
      const deadline = Date.now() + 30_000;
      while (seenB.length === 0 && Date.now() < deadline) await sleep(20);
      expect(seenB).toEqual([2]);
      stopB.abort();
      await consumingB;
    } finally {
      stopA.abort();
      stopB.abort();
      await b.close();
      await a.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('stops beating a released command: it comes back after one ack wait', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'plumbline-beat-'));
    const path = join(dir, 'bus.db');
    const bus = openSqliteBus(path, { ackWaitMs: 300, pollMs: 10 });
    const stop = new AbortController();
    const deliveries: number[] = [];
    try {
      await bus.publishResume({ runId: 'r' });
      const consuming = bus.consume(
        async (_cmd, ctl) => {
          deliveries.push(ctl.deliveries);
          if (ctl.deliveries === 1) {
            ctl.release();
            await sleep(1_500); // still "working", but no longer beating
          }
        },
        { concurrency: 2, signal: stop.signal },
      );
      const deadline = Date.now() + 30_000;
      while (deliveries.length < 2 && Date.now() < deadline) await sleep(20);
      expect(deliveries).toEqual([1, 2]);
      stop.abort();
      await consuming;
    } finally {
      stop.abort();
      await bus.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 20_000);
});
