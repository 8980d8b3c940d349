/**
 * A process that dies after a wait's SIGNAL is durable but before its kept signal is dropped
 * leaves that signal kept. A later wait of the same run for the same signal name must not take
 * it again: the run waits for a new one.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { definePipeline } from '../src/machines/pipeline.js';
import { wait } from '../src/machines/waits.js';
import { prepare } from '../src/runtime/prepare.js';
import { sendSignal } from '../src/runtime/signals.js';
import { harness, ofType, type Harness } from './helpers/harness.js';

const twoApprovals = prepare(
  definePipeline({
    name: 'two-approvals',
    version: '1',
    input: z.object({}),
    steps: [
      wait({ name: 'first', signal: 'approve', schema: z.object({ by: z.string() }) }),
      wait({ name: 'second', signal: 'approve', schema: z.object({ by: z.string() }) }),
    ],
  }),
);

let h: Harness;
beforeAll(async () => {
  h = await harness();
});
afterAll(() => h.close());

/** Starts a run, sends its first approval, and drives it in a process that "dies" right after
 * the SIGNAL is durable, before the kept signal is dropped. */
async function crashAfterFirstSignal(runId: string): Promise<void> {
  expect((await h.runtime().start(twoApprovals, { input: {}, runId })).status).toBe('waiting');
  await sendSignal(h.store, twoApprovals, runId, 'approve', { by: 'ana' }, { now: 1 });
  const dying = h.runtime({
    hooks: {
      afterAppend: (_id, _seq, type) => {
        if (type === 'SIGNAL') throw new Error('killed after the SIGNAL append');
      },
    },
  });
  await expect(dying.drive(twoApprovals, runId)).rejects.toThrow('killed after the SIGNAL');
  expect(await h.store.waits.getSignal(runId, 'approve')).toBeDefined();
}

/** The run's SIGNAL events as [step, sender]. */
async function signals(runId: string): Promise<Array<[string, string]>> {
  return ofType(await h.events(runId), 'SIGNAL').map((e) => [
    e.event.step,
    (e.event.payload as { by: string }).by,
  ]);
}

describe('two waits for the same signal, after a crash that left the first one kept', () => {
  it('the second wait does not take it again: it drops it and waits for a new one', async () => {
    await crashAfterFirstSignal('stale-1');
    const r = await h.runtime().drive(twoApprovals, 'stale-1');
    expect(r.status).toBe('waiting');
    expect(await signals('stale-1')).toEqual([['first', 'ana']]);
    expect(await h.store.waits.getSignal('stale-1', 'approve')).toBeUndefined();

    await sendSignal(h.store, twoApprovals, 'stale-1', 'approve', { by: 'bo' }, { now: 2 });
    expect((await h.runtime().drive(twoApprovals, 'stale-1')).status).toBe('completed');
    expect(await signals('stale-1')).toEqual([
      ['first', 'ana'],
      ['second', 'bo'],
    ]);
  });

  it("a new signal sent before the run gets to its second wait takes the stale one's place", async () => {
    await crashAfterFirstSignal('stale-2');
    // Without the check this is refused: "a signal is already kept … not yet taken".
    await sendSignal(h.store, twoApprovals, 'stale-2', 'approve', { by: 'bo' }, { now: 2 });
    expect((await h.runtime().drive(twoApprovals, 'stale-2')).status).toBe('completed');
    expect(await signals('stale-2')).toEqual([
      ['first', 'ana'],
      ['second', 'bo'],
    ]);
  });
});
