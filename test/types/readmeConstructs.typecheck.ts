/**
 * The README's routes-and-maps example, compiled by `npm run typecheck` (strict, and
 * exactOptionalPropertyTypes): it must type-check with no annotation and no cast.
 * test/readmeConstructs.unit.test.ts checks that this file holds the README's block verbatim
 * (but the import path).
 */
// examples/summarise.ts and examples/router.ts (abridged)
import { z } from 'zod';
import { pipeline } from '../../src/index.js';

const Summary = z.object({ summary: z.string() });

export default pipeline({ name: 'digest', version: '1', input: z.object({ text: z.string() }) })
  .step({ name: 'split', run: ({ input }) => input.text.split('\n\n') })
  .map({
    name: 'summaries', // one child run per chunk, 5 at a time; results in chunk order
    over: ({ outputs }) => outputs.split,
    concurrency: 5,
    steps: (chunk) =>
      chunk.llm({
        name: 'summarise-chunk',
        model: 'claude-haiku-4-5',
        prompt: ({ input }) => `Summarise:\n${input}`,
        output: Summary,
      }),
  })
  .route({
    name: 'by-size', // one branch runs; the choice is a ROUTE event in the log
    choose: ({ outputs }) => (outputs.summaries.length > 3 ? 'long' : 'short'),
    branches: {
      long: (b) =>
        b.llm({
          name: 'reduce',
          model: 'claude-sonnet-4-6',
          prompt: ({ outputs }) => outputs.summaries.map((s) => s.summary).join('\n'),
          output: Summary,
        }),
      short: (b) => b,
    },
  })
  .step({ name: 'done', run: ({ outputs }) => outputs.reduce?.summary ?? outputs.summaries })
  .build();
