/**
 * Type-level tests of the pipeline API, compiled by `npm run typecheck` (under the repo's strict
 * tsconfig and again under `exactOptionalPropertyTypes`, test/types/tsconfig.json); never run.
 * Each `@ts-expect-error` must fail to compile, or tsc reports the directive as unused.
 */
import { z } from 'zod';
import {
  agent,
  definePipeline,
  effect,
  llm,
  pipeline,
  step,
  type Pipeline,
} from '../../src/index.js';

/** True when A and B are the same type. */
type Equals<A, B> =
  (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
const same = <A, B>(proof: Equals<A, B>): Equals<A, B> => proof;

const Ticket = z.object({ id: z.string(), subject: z.string(), body: z.string() });
const Classification = z.object({
  category: z.enum(['billing', 'bug', 'outage', 'other']),
  urgency: z.number().int(),
});

// The README's example: no annotation, no cast.
export const triage: Pipeline<typeof Ticket> = pipeline({
  name: 'triage',
  version: '1',
  input: Ticket,
  limits: { budgetUsd: 0.5 },
})
  .llm({
    name: 'classify',
    model: 'claude-sonnet-4-6',
    prompt: ({ input }) => `${input.subject}\n${input.body}`,
    output: Classification,
  })
  .llm({
    name: 'draft',
    model: 'claude-haiku-4-5',
    system: ({ outputs }) => `You answer ${outputs.classify.category} tickets.`,
    prompt: ({ input, outputs }) => `urgency ${outputs.classify.urgency}: ${input.body}`,
    output: z.object({ reply: z.string() }),
    skip: ({ outputs }) => outputs.classify.urgency < 3 && 'not urgent',
  })
  .effect({
    name: 'escalate',
    key: ({ input }) => `escalate-${input.id}`,
    run: async (ctx) => {
      same<typeof ctx.key, string>(true);
      same<typeof ctx.signal, AbortSignal>(true);
      const { key, outputs } = ctx;
      // A skipped step's output is null: it must be checked before use.
      // @ts-expect-error 'outputs.draft' is possibly 'null'.
      void outputs.draft.reply;
      return Promise.resolve({ path: `outbox/${key}.json`, reply: outputs.draft?.reply });
    },
  })
  .step({
    name: 'route',
    run: ({ outputs }) => ({ queue: outputs.classify.category, at: new Date() }),
  })
  .step({
    name: 'notify',
    run: () => {
      // no return value: later steps see null
    },
  })
  .step({
    name: 'check',
    run: ({ input, outputs }) => {
      // Each earlier step's output, precisely.
      same<typeof input, { id: string; subject: string; body: string }>(true);
      same<
        typeof outputs.classify,
        { category: 'billing' | 'bug' | 'outage' | 'other'; urgency: number }
      >(true);
      same<typeof outputs.draft, { reply: string } | null>(true);
      same<typeof outputs.escalate, { path: string; reply: string | undefined }>(true);
      // As stored: a Date is its ISO string.
      same<typeof outputs.route, { queue: typeof outputs.classify.category; at: string }>(true);
      same<typeof outputs.notify, null>(true);
      // @ts-expect-error a typo in a field of an earlier output
      void outputs.classify.nope;
      // @ts-expect-error a typo in the input
      void input.nope;
      // @ts-expect-error a step that does not exist
      void outputs.clasify;
      // @ts-expect-error a category is not a number
      const n: number = outputs.classify.category;
      return n;
    },
  })
  .build();

// A step sees only the steps before it: not a later one, not itself.
pipeline({ name: 'order', version: '1', input: Ticket })
  .llm({
    name: 'first',
    model: 'claude-haiku-4-5',
    // @ts-expect-error 'second' is defined after 'first'
    prompt: ({ outputs }) => String(outputs.second.n),
    output: z.object({ n: z.number() }),
  })
  .step({
    name: 'second',
    // @ts-expect-error a step does not see its own output
    run: ({ outputs }) => ({ n: outputs.second }),
  })
  .effect({
    name: 'third',
    // @ts-expect-error 'fourth' is defined after 'third'
    key: ({ outputs }) => outputs.fourth,
    // @ts-expect-error nor from run
    run: ({ outputs }) => outputs.fourth,
  })
  .step({ name: 'fourth', run: ({ outputs }) => outputs.first.n + outputs.second.n })
  .build();

// A repeated step name is a type error (and a UsageError at build()).
pipeline({ name: 'dup', version: '1', input: Ticket })
  .step({ name: 'a', run: () => 1 })
  // @ts-expect-error step 'a' is already in this pipeline
  .step({ name: 'a', run: () => 2 });

// Options are still checked: an unknown model option, a wrong schema type, a missing key.
pipeline({ name: 'opts', version: '1', input: Ticket })
  // @ts-expect-error maxTokens is a number
  .llm({ name: 'a', model: 'm', prompt: () => 'x', output: z.object({}), maxTokens: '1' })
  // @ts-expect-error an effect needs a key
  .effect({ name: 'b', run: () => 1 });

// The definePipeline form keeps compiling as before: outputs untyped (unknown), input any.
export const untyped = definePipeline({
  name: 'untyped',
  version: '1',
  input: Ticket,
  steps: [
    llm({ name: 'a', model: 'claude-haiku-4-5', prompt: () => 'x', output: Classification }),
    effect({ name: 'b', key: ({ runId }) => runId, run: ({ outputs }) => outputs.a }),
    step({
      name: 'c',
      run: ({ outputs }) => {
        // @ts-expect-error outputs are unknown without the builder
        void outputs.a.urgency;
        return (outputs.a as z.infer<typeof Classification>).urgency;
      },
    }),
  ],
});

// Model fallback: a list of models on an llm step, in the builder and in definePipeline; the
// later steps' types are unchanged. An agent step takes one model.
export const withFallback = pipeline({ name: 'fallback', version: '1', input: Ticket })
  .llm({
    name: 'classify',
    model: ['claude-opus-4-8', 'claude-sonnet-4-6'],
    prompt: ({ input }) => input.body,
    output: Classification,
  })
  .step({ name: 'use', run: ({ outputs }) => outputs.classify.urgency })
  .build();
export const withFallbackUntyped = definePipeline({
  name: 'fallback2',
  version: '1',
  input: Ticket,
  steps: [
    llm({
      name: 'a',
      model: ['claude-opus-4-8', 'claude-sonnet-4-6'] as const,
      prompt: () => 'x',
      output: Classification,
    }),
  ],
});
export const agentOneModel = agent({
  name: 'help',
  // @ts-expect-error an agent step takes one model id, not a fallback list
  model: ['claude-opus-4-8', 'claude-sonnet-4-6'],
  prompt: () => 'x',
  tools: {},
  output: Classification,
});
