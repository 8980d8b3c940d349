/**
 * The pipeline the recovery benchmark's workers drive: many short model steps, so a run is
 * always mid-way (and appending every few tens of ms) when its worker is killed.
 */
import { z } from 'zod';
import { definePipeline, llm } from '../src/index.js';

const Answer = z.object({ ok: z.boolean(), note: z.string() });

export default definePipeline({
  name: 'recovery',
  version: '1',
  input: z.object({ i: z.number() }),
  limits: { maxIterations: 500 },
  steps: Array.from({ length: 30 }, (_, k) =>
    llm({
      name: `s${k}`,
      model: 'claude-sonnet-4-6',
      prompt: ({ input }) => `step ${k} of run ${input.i}`,
      output: Answer,
    }),
  ),
});
