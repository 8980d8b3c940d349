/**
 * A signal sent while the run is reaching its wait: the sender read the run as `running`, the
 * run then reached its wait and looked for a signal before the sender kept it. The sender must
 * report the run `waiting` (so the CLI, the visualizer and the client wake it), or the run waits
 * forever with its signal kept beside it.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { z } from 'zod';
import { definePipeline, step } from '../src/machines/pipeline.js';
import { wait } from '../src/machines/waits.js';
import { prepare } from '../src/runtime/prepare.js';
import { sendSignal } from '../src/runtime/signals.js';
import type { Store } from '../src/store/types.js';
import { harness, type Harness } from './helpers/harness.js';

const p = prepare(
  definePipeline({
    name: 'race-wait',
    version: '1',
    input: z.object({}),
    steps: [
      wait({ name: 'approve', signal: 'approve', schema: z.object({ ok: z.boolean() }) }),
      step({ name: 'after', run: ({ outputs }) => outputs.approve }),
    ],
  }),
);

let h: Harness;
beforeAll(async () => {
  h = await harness();
});
afterAll(() => h.close());

it('reports the run waiting when it reached its wait between the sender reading it and keeping the signal', async () => {
  const id = await h.runtime().create(p, { input: {}, runId: 'race-1' });
  expect((await h.store.log.getRun(id))?.status).toBe('running');
  // The interleaving: the run is driven into its wait just before the signal is kept.
  const store: Store = {
    ...h.store,
    waits: {
      ...h.store.waits,
      putSignal: async (s) => {
        expect((await h.runtime().drive(p, id)).status).toBe('waiting');
        return h.store.waits.putSignal(s);
      },
    },
  };
  const sent = await sendSignal(store, p, id, 'approve', { ok: true }, { now: 1 });
  expect(sent.status).toBe('waiting');
  // Woken as the CLI does for a waiting run, it takes the signal.
  const r = await h.runtime().drive(p, id);
  expect(r.status).toBe('completed');
  expect(r.outputs.after).toEqual({ ok: true });
});
