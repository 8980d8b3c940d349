/**
 * The pipeline of the waiting-runs benchmark: a durable sleep until `wakeAt` (every run of a
 * wave sleeps until the same time, so they all come due at once), then one step.
 */
import { z } from 'zod';
import { definePipeline, step } from '../src/index.js';
import { sleep } from '../src/machines/waits.js';

/** Sleeps until `input.wakeAt`, then returns `input.i`. */
export default definePipeline({
  name: 'bench-waiting',
  version: '1',
  input: z.object({ i: z.number(), wakeAt: z.number() }),
  steps: [
    sleep({ name: 'nap', until: ({ input }) => input.wakeAt }),
    step({ name: 'done', run: ({ input }) => ({ i: input.i }) }),
  ],
});
