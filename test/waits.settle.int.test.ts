/**
 * A wait's outcome followed by an llm or effect step is appended together with that step's
 * decision: its kept signal and its wake-up row must still go once it is durable. Else a finished
 * run stays listed as waiting (`runs --waiting`) and stays "due" for every sweep, which then
 * re-queues it forever and, with a batch of such runs at the head of the schedule, wakes no other.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { definePipeline, effect } from '../src/machines/pipeline.js';
import { sleep, wait } from '../src/machines/waits.js';
import { sleep as clockSleep, type Clock } from '../src/runtime/clock.js';
import { prepare } from '../src/runtime/prepare.js';
import { sendSignal } from '../src/runtime/signals.js';
import { harness, ofType, type Harness } from './helpers/harness.js';

const HOUR = 3_600_000;
let skew = 0;
/** Wall time plus `skew`: a sleep of an hour passes when the test moves `skew`. */
const clock: Clock = { now: () => Date.now() + skew, sleep: clockSleep };

const issued: string[] = [];
const issue = effect({
  name: 'issue',
  key: ({ runId }) => `issue-${runId}`,
  run: ({ runId }) => {
    issued.push(runId);
    return { issued: true };
  },
});

const waitThenEffect = prepare(
  definePipeline({
    name: 'settle-wait',
    version: '1',
    input: z.object({}),
    steps: [
      wait({
        name: 'approve',
        signal: 'approve',
        schema: z.object({ ok: z.boolean() }),
        timeoutMs: HOUR,
        onTimeout: 'continue',
      }),
      issue,
    ],
  }),
);
const sleepThenEffect = prepare(
  definePipeline({
    name: 'settle-sleep',
    version: '1',
    input: z.object({}),
    steps: [sleep({ name: 'nap', forMs: HOUR }), issue],
  }),
);

let h: Harness;
beforeAll(async () => {
  h = await harness({ clock });
});
afterAll(() => h.close());

/** The run is done with waiting: no kept signal, no schedule row, never due again. */
async function settled(runId: string): Promise<void> {
  expect(await h.store.waits.getSignal(runId, 'approve')).toBeUndefined();
  expect((await h.store.waits.waiting(1_000)).map((w) => w.runId)).not.toContain(runId);
  expect(
    (await h.store.waits.due(Number.MAX_SAFE_INTEGER, 1_000)).map((w) => w.runId),
  ).not.toContain(runId);
}

describe('a wait followed by an effect', () => {
  it('takes the signal, runs the effect once, and leaves no kept signal or schedule row', async () => {
    const r = await h.runtime().start(waitThenEffect, { input: {}, runId: 'st-sig' });
    expect(r.status).toBe('waiting');
    await sendSignal(h.store, waitThenEffect, 'st-sig', 'approve', { ok: true }, { now: 1 });
    expect((await h.runtime().drive(waitThenEffect, 'st-sig')).status).toBe('completed');
    expect(ofType(await h.events('st-sig'), 'SIGNAL')).toHaveLength(1);
    expect(issued.filter((id) => id === 'st-sig')).toHaveLength(1);
    await settled('st-sig');
  });

  it('times out (continue), runs the effect, and leaves no schedule row', async () => {
    const r = await h.runtime().start(waitThenEffect, { input: {}, runId: 'st-to' });
    expect(r.status).toBe('waiting');
    skew += 2 * HOUR;
    expect((await h.runtime().drive(waitThenEffect, 'st-to')).status).toBe('completed');
    expect(ofType(await h.events('st-to'), 'WAIT_TIMEOUT')).toHaveLength(1);
    await settled('st-to');
  });

  it('wakes from a sleep, runs the effect, and is not due again', async () => {
    const r = await h.runtime().start(sleepThenEffect, { input: {}, runId: 'st-nap' });
    expect(r.status).toBe('waiting');
    expect((await h.store.waits.waiting(1_000)).map((w) => w.runId)).toContain('st-nap');
    skew += 2 * HOUR;
    expect((await h.runtime().drive(sleepThenEffect, 'st-nap')).status).toBe('completed');
    expect(ofType(await h.events('st-nap'), 'WAKE')).toHaveLength(1);
    await settled('st-nap');
  });
});
