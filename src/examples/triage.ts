/**
 * Triage support tickets: Claude classifies each ticket against a schema; urgent ones get a
 * drafted reply and an escalation written to an outbox (an effect, at most once per ticket).
 *
 * The one definition of the example (examples/triage.ts re-exports it): it lives under src/ so
 * the build compiles it into dist/, where `plumbline demo` loads it from an installed package
 * and where `resume` and `replay` find it again through the module path its runs record.
 */
import { join } from 'node:path';
import { z } from 'zod';
import { pipeline, writeFileAtomic } from '../index.js';
import { TRIAGE_POLICY } from './triagePolicy.js';

const Ticket = z.object({
  id: z.string().min(1),
  from: z.string(),
  subject: z.string(),
  body: z.string(),
});

const Classification = z.object({
  category: z.enum(['billing', 'bug', 'outage', 'question', 'other']),
  urgency: z.number().int().min(1).max(5),
  summary: z.string().min(1).max(200),
});

const Draft = z.object({
  reply: z.string().min(1),
  escalate: z.boolean(),
});

/** Tickets at or above this urgency are drafted and escalated. */
export const URGENCY_THRESHOLD = 3;

const outboxDir = (): string => process.env.PLUMBLINE_OUTBOX ?? join('.plumbline', 'outbox');
const notUrgent = (urgency: number): string | false =>
  urgency < URGENCY_THRESHOLD ? `urgency ${urgency} below threshold ${URGENCY_THRESHOLD}` : false;

// Each step's callbacks see `input` as a Ticket and the outputs of the steps before it, typed.
export default pipeline({
  name: 'triage',
  version: '1',
  input: Ticket,
  limits: { budgetUsd: 0.5, maxIterations: 20 },
})
  .llm({
    name: 'classify',
    model: 'claude-sonnet-4-6',
    // A long policy, the same for every ticket: cached for 5 minutes by the first ticket,
    // read by the next ones at a tenth of the input price.
    system: TRIAGE_POLICY,
    cache: '5m',
    prompt: ({ input }) =>
      `Classify this ticket.\nFrom: ${input.from}\nSubject: ${input.subject}\n\n${input.body}\n\n` +
      'urgency: 1 (whenever) to 5 (production down). summary: one sentence.',
    output: Classification,
    maxTokens: 400,
  })
  .llm({
    name: 'draft',
    model: 'claude-haiku-4-5',
    prompt: ({ input, outputs }) =>
      `Draft a short, kind reply to this ${JSON.stringify(outputs.classify)} ticket:\n${input.body}`,
    output: Draft,
    maxTokens: 600,
    skip: ({ outputs }) => notUrgent(outputs.classify.urgency),
  })
  .effect({
    name: 'escalate',
    key: ({ input }) => `escalate-${input.id}`,
    skip: ({ outputs }) => notUrgent(outputs.classify.urgency),
    run: ({ key, input, outputs }) => {
      const path = join(outboxDir(), `${key}.json`);
      writeFileAtomic(
        path,
        JSON.stringify(
          { ticket: input.id, classify: outputs.classify, draft: outputs.draft },
          null,
          2,
        ),
      );
      return { path };
    },
  })
  .step({
    name: 'route',
    run: ({ outputs }) => ({
      queue: outputs.classify.category,
      escalated: outputs.escalate !== null,
    }),
  })
  .build();
