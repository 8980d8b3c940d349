/**
 * Route customer messages: Claude classifies each one (an enum category), a route takes one of
 * three branches — billing opens a refund request in the outbox (an effect, at most once per
 * message), a bug is written up as a report, a question gets an answer — and every branch joins
 * at one last step.
 *
 * The one definition of the example (examples/router.ts re-exports it): it lives under src/ so
 * the build compiles it into dist/, where `plumbline demo` loads it from an installed package.
 * The branch steps are states of the run's own machine (no child runs); the choice is recorded
 * in the log as a ROUTE event, so a replay takes the same branch without asking Claude again.
 */
import { join } from 'node:path';
import { z } from 'zod';
import { pipeline, writeFileAtomic } from '../index.js';

const Message = z.object({
  id: z.string().min(1),
  from: z.string(),
  text: z.string().min(1),
});

/** The categories, one branch each: a category without a branch would not compile. */
export const CATEGORIES = ['billing', 'bug', 'question'] as const;

const Classification = z.object({
  category: z.enum(CATEGORIES),
  reason: z.string().min(1).max(200),
});

const BugReport = z.object({
  title: z.string().min(1).max(120),
  severity: z.enum(['low', 'medium', 'high']),
});

const Answer = z.object({ reply: z.string().min(1) });

const outboxDir = (): string => process.env.PLUMBLINE_OUTBOX ?? join('.plumbline', 'outbox');

export default pipeline({
  name: 'router',
  version: '1',
  input: Message,
  limits: { budgetUsd: 0.5, maxIterations: 20 },
})
  .llm({
    name: 'classify',
    model: 'claude-haiku-4-5',
    system: 'You sort customer messages. Answer with JSON only.',
    prompt: ({ input }) =>
      `Which team should handle this message: ${CATEGORIES.join(', ')}?\n` +
      `From: ${input.from}\n\n${input.text}\n\nreason: one short sentence.`,
    output: Classification,
    maxTokens: 200,
  })
  .route({
    name: 'handle',
    choose: ({ outputs }) => outputs.classify.category,
    branches: {
      // An effect: the refund request is written once per message, whatever the retries.
      billing: (b) =>
        b.effect({
          name: 'refund-request',
          key: ({ input }) => `refund-${input.id}`,
          run: ({ key, input, outputs }) => {
            const path = join(outboxDir(), `${key}.json`);
            writeFileAtomic(
              path,
              JSON.stringify({ message: input.id, from: input.from, why: outputs.classify.reason }),
            );
            return { path };
          },
        }),
      bug: (b) =>
        b
          .llm({
            name: 'bug-report',
            model: 'claude-haiku-4-5',
            prompt: ({ input }) => `Write a one-line bug title and a severity for:\n${input.text}`,
            output: BugReport,
            maxTokens: 200,
          })
          .step({
            name: 'file-bug',
            run: ({ input, outputs }) => ({
              tracker: 'BUG',
              title: outputs['bug-report'].title,
              severity: outputs['bug-report'].severity,
              reporter: input.from,
            }),
          }),
      question: (b) =>
        b.llm({
          name: 'answer',
          model: 'claude-sonnet-4-6',
          prompt: ({ input }) => `Answer this customer briefly and kindly:\n${input.text}`,
          output: Answer,
          maxTokens: 400,
        }),
    },
  })
  // The join: every branch ends here; only the branch that ran left outputs.
  .step({
    name: 'reply',
    run: ({ outputs }) => ({
      category: outputs.handle,
      detail:
        outputs['refund-request']?.path ??
        outputs['file-bug']?.title ??
        outputs.answer?.reply ??
        null,
    }),
  })
  .build();
