import { describe, expect, it } from 'vitest';
import type { StoredEnvelope } from '../../src/machines/events.js';
import { silentLogger } from '../../src/runtime/logger.js';
import type { EventLog, PositionedEnvelope } from '../../src/store/types.js';
import { StoreTail } from '../../src/viz/tail.js';

/** Just enough of an event log: `readAll` over an array whose positions may have gaps. */
function memoryLog(positions: number[]): {
  log: EventLog;
  rows: PositionedEnvelope[];
  reads: () => number;
} {
  const rows: PositionedEnvelope[] = positions.map((pos, i) => ({ ...envelope(i + 1), pos }));
  let reads = 0;
  const log = {
    async readAll(afterPos: number, limit = 1000) {
      reads++;
      return rows.filter((r) => r.pos > afterPos).slice(0, limit);
    },
  } as unknown as EventLog;
  return { log, rows, reads: () => reads };
}

function envelope(seq: number): StoredEnvelope {
  return {
    v: 1,
    runId: 'r',
    seq,
    at: seq,
    event: { type: 'TIMER', step: 's', at: seq },
    state: { value: { s: 'ready' }, status: 'running', step: 's', costUsd: 0 },
  };
}

describe('StoreTail', () => {
  it.each([
    ['an empty store', []],
    ['one event', [1]],
    ['contiguous positions', Array.from({ length: 3001 }, (_, i) => i + 1)],
    ['positions with gaps', [3, 4, 9, 10, 57, 58, 1200]],
  ])('finds the end of %s in a few reads, not a scan', async (_name, positions) => {
    const { log, reads } = memoryLog(positions);
    const tail = new StoreTail(log, 10, silentLogger);
    const seen: number[] = [];
    const sub = await tail.subscribe((e) => seen.push(e.pos));
    expect(sub.head).toBe(positions[positions.length - 1] ?? 0);
    expect(seen).toEqual([]);
    expect(reads()).toBeLessThan(30);
    sub.unsubscribe();
    tail.close();
  });

  it('delivers what is appended after subscribing, in order, to every listener', async () => {
    const { log, rows } = memoryLog([1, 2]);
    const tail = new StoreTail(log, 5, silentLogger);
    const a: number[] = [];
    const b: number[] = [];
    const subA = await tail.subscribe((e) => a.push(e.pos));
    const subB = await tail.subscribe((e) => b.push(e.pos));
    rows.push({ ...envelope(3), pos: 5 }, { ...envelope(4), pos: 6 });
    await expect.poll(() => a).toEqual([5, 6]);
    await expect.poll(() => b).toEqual([5, 6]);
    subA.unsubscribe();
    rows.push({ ...envelope(5), pos: 7 });
    await expect.poll(() => b).toEqual([5, 6, 7]);
    expect(a).toEqual([5, 6]);
    subB.unsubscribe();
    tail.close();
  });
});
