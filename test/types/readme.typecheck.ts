/**
 * The README's example, compiled by `npm run typecheck` (strict, and exactOptionalPropertyTypes):
 * it must type-check with no annotation and no cast. test/readmeExample.unit.test.ts checks that
 * this file holds the README's block verbatim (but the import path).
 */
// examples/triage.ts (abridged)
import { z } from 'zod';
import { pipeline, writeFileAtomic } from '../../src/index.js';

export default pipeline({
  name: 'triage',
  version: '1',
  input: z.object({ id: z.string(), subject: z.string(), body: z.string() }),
  limits: { budgetUsd: 0.5, maxIterations: 20 },
})
  .llm({
    name: 'classify',
    model: 'claude-sonnet-4-6',
    maxTokens: 400,
    prompt: ({ input }) => `Classify this ticket:\n${input.subject}\n${input.body}`,
    output: z.object({
      category: z.enum(['billing', 'bug', 'outage', 'other']),
      urgency: z.number().int().min(1).max(5),
    }),
  })
  .effect({
    name: 'escalate',
    key: ({ input }) => `escalate-${input.id}`,
    skip: ({ outputs }) => outputs.classify.urgency < 3 && 'not urgent',
    run: ({ key, outputs }) =>
      writeFileAtomic(`outbox/${key}.json`, JSON.stringify(outputs.classify)),
  })
  .step({
    name: 'route',
    run: ({ outputs }) => ({
      queue: outputs.classify.category,
      escalated: outputs.escalate !== null,
    }),
  })
  .build();
