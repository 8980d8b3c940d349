/**
 * The log's file destination writes a turn's lines together, after the turn, and never throws
 * into the code that logged (src/runtime/turnLines.ts). The descriptor's writes are injected.
 */
import { setImmediate as turn } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { TurnLines, type WriteFn } from '../src/runtime/turnLines.js';

/** A writer that records what it was given, failing or cutting writes as `plan` says. */
function recorder(plan: Array<'ok' | 'short' | NodeJS.ErrnoException> = []) {
  const writes: string[] = [];
  const write: WriteFn = (_fd, data) => {
    const step = plan.shift() ?? 'ok';
    if (step instanceof Error) throw step;
    const n = step === 'short' ? Math.ceil(data.length / 2) : data.length;
    writes.push(Buffer.from(data.subarray(0, n)).toString());
    return n;
  };
  return { writes, write };
}
const errno = (code: string): NodeJS.ErrnoException =>
  Object.assign(new Error(`${code}: failed, write`), { code });

describe('TurnLines', () => {
  it("writes one turn's lines in one write, after the turn, before the next one", async () => {
    const r = recorder();
    const t = new TurnLines(9, r.write);
    t.write('a\n');
    await Promise.resolve();
    t.write('b\n');
    expect(r.writes).toEqual([]); // still the same turn
    await turn();
    expect(r.writes).toEqual(['a\nb\n']);
    t.write('c\n');
    await turn();
    expect(r.writes).toEqual(['a\nb\n', 'c\n']);
  });

  it('continues a short write and retries a full pipe (EAGAIN)', async () => {
    const r = recorder(['short', errno('EAGAIN'), 'ok']);
    const t = new TurnLines(9, r.write);
    t.write('0123456789\n');
    await turn();
    expect(r.writes.join('')).toBe('0123456789\n');
    expect(r.writes.length).toBe(2);
  });

  it('drops the lines of a failed write without throwing, then says how many were lost', async () => {
    const r = recorder([errno('ENOSPC'), errno('ENOSPC')]);
    const t = new TurnLines(9, r.write);
    t.write('one\n');
    t.write('two\n');
    await turn();
    t.write('three\n');
    await turn();
    expect(r.writes).toEqual([]);
    t.write('four\n');
    await turn();
    expect(r.writes.length).toBe(1);
    const [loss, four, ...rest] = (r.writes[0] as string).split('\n');
    expect(JSON.parse(loss as string)).toMatchObject({
      level: 40,
      msg: '3 log line(s) could not be written (ENOSPC) and were dropped',
    });
    expect([four, ...rest]).toEqual(['four', '']);
    t.write('five\n');
    await turn();
    expect(r.writes[1]).toBe('five\n'); // the loss is said once
  });

  it('ends a line cut by a failed write before writing on', async () => {
    const r = recorder(['short', errno('ENOSPC')]);
    const t = new TurnLines(9, r.write);
    t.write('0123456789\n');
    await turn();
    t.write('next\n');
    await turn();
    const text = r.writes.join('');
    const [cut, loss, next, end] = text.split('\n');
    expect(cut).toBe('012345');
    expect(JSON.parse(loss as string)).toMatchObject({
      msg: expect.stringContaining('1 log line(s)'),
    });
    expect([next, end]).toEqual(['next', '']);
  });

  it('stops at a broken pipe', async () => {
    const r = recorder([errno('EPIPE')]);
    const t = new TurnLines(9, r.write);
    t.write('a\n');
    await turn();
    t.write('b\n');
    await turn();
    expect(r.writes).toEqual([]);
  });

  it('writes the lines held when flushed (pino `logger.flush()`)', () => {
    const r = recorder();
    const t = new TurnLines(9, r.write);
    t.write('a\n');
    let called = false;
    t.flush(() => (called = true));
    expect(r.writes).toEqual(['a\n']);
    expect(called).toBe(true);
  });
});
