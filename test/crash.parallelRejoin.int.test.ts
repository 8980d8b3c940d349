/**
 * A parent that dies after recording one parallel branch's BRANCH_DONE is resumed by a fresh
 * runtime: the rebuilt wait must not report that branch again (the machine takes each branch
 * once; reporting it twice threw "internal: BRANCH_DONE not accepted" and left the run stuck).
 * Found by test/crash.constructs.int.test.ts; this reproduces it in one process.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { parallel } from '../src/machines/constructs.js';
import { definePipeline, step } from '../src/machines/pipeline.js';
import { prepare } from '../src/runtime/prepare.js';
import { harness, ofType, type Harness } from './helpers/harness.js';

/** Thrown by the hook: the driver stops right after the append, like a process that died. */
class Crash extends Error {}

describe('parallel join after a crash', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await harness();
  });
  afterAll(() => h.close());

  it('a resumed parent records only the branches not yet recorded, and joins', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const p = prepare(
      definePipeline({
        name: 'rejoin',
        version: '1',
        input: z.object({}),
        steps: [
          parallel({
            name: 'both',
            branches: {
              // The first branch (spec 0) ends first: a rebuilt wait finds it first.
              fast: [step({ name: 'fast-step', run: () => 'F' })],
              slow: [step({ name: 'slow-step', run: async () => (await gate, 'S') })],
            },
          }),
          step({ name: 'after', run: (c) => c.outputs.both }),
        ],
      }),
    );
    const dying = h.runtime({
      hooks: {
        afterAppend: (runId, _seq, type) => {
          if (runId === 'rejoin' && type === 'BRANCH_DONE') throw new Crash('process died');
        },
      },
    });
    await expect(dying.start(p, { input: {}, runId: 'rejoin' })).rejects.toBeInstanceOf(Crash);
    expect(ofType(await h.events('rejoin'), 'BRANCH_DONE').map((e) => e.event.branch)).toEqual([
      'fast',
    ]);
    // The other branch's child run ends on its own (it was being driven when the parent died).
    release();
    await expect
      .poll(async () => (await h.store.log.getRun('rejoin-both-slow'))?.status, {
        timeout: 30_000,
      })
      .toBe('completed');

    const r = await h.runtime().resume(p, 'rejoin');
    expect(r.status).toBe('completed');
    expect(r.outputs.after).toEqual({ fast: 'F', slow: 'S' });
    expect(ofType(await h.events('rejoin'), 'BRANCH_DONE').map((e) => e.event.branch)).toEqual([
      'fast',
      'slow',
    ]);
  });
});
