/**
 * Type-level tests of the builder's route, parallel, map and call, compiled by `npm run typecheck`
 * (strict, and again under exactOptionalPropertyTypes); never run. Each `@ts-expect-error` must
 * fail to compile, or tsc reports the directive as unused.
 */
import { z } from 'zod';
import { pipeline, type Collected, type Pipeline } from '../../src/index.js';

type Equals<A, B> =
  (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
const same = <A, B>(proof: Equals<A, B>): Equals<A, B> => proof;

const Doc = z.object({ id: z.string(), text: z.string() });
const Kind = z.object({ kind: z.enum(['bug', 'billing', 'other']) });
const Summary = z.object({ summary: z.string() });

const child: Pipeline<typeof Doc> = pipeline({ name: 'child', version: '1', input: Doc })
  .step({ name: 'len', run: ({ input }) => input.text.length })
  .build();

export const p = pipeline({ name: 'shapes', version: '1', input: Doc })
  .llm({ name: 'classify', model: 'claude-haiku-4-5', prompt: (c) => c.input.text, output: Kind })
  .route({
    name: 'by-kind',
    choose: ({ outputs }) => outputs.classify.kind,
    branches: {
      bug: (b) =>
        b.llm({
          name: 'triage-bug',
          model: 'claude-haiku-4-5',
          prompt: ({ input, outputs }) => `${outputs.classify.kind}: ${input.text}`,
          output: Summary,
        }),
      billing: (b) => b.step({ name: 'refund', run: ({ input }) => ({ ticket: input.id }) }),
      other: (b) => b,
    },
  })
  .step({
    name: 'join',
    run: ({ outputs }) => {
      same<(typeof outputs)['by-kind'], 'bug' | 'billing' | 'other'>(true);
      // A branch step's output is there only when its branch ran.
      same<(typeof outputs)['triage-bug'], { summary: string } | undefined>(true);
      // @ts-expect-error 'outputs.refund' is possibly 'undefined'.
      void outputs.refund.ticket;
      return outputs.refund?.ticket ?? outputs['triage-bug']?.summary ?? null;
    },
  })
  .step({ name: 'split', run: ({ input }) => input.text.split('\n') })
  .map({
    name: 'each',
    over: ({ outputs }) => outputs.split,
    concurrency: 3,
    steps: (b) =>
      b.step({ name: 'trim', run: ({ input }) => input.trim() }).llm({
        name: 'sum',
        model: 'claude-haiku-4-5',
        prompt: ({ input, outputs }) => `${input} / ${outputs.trim}`,
        output: Summary,
      }),
  })
  .map({
    name: 'lenient',
    over: ({ outputs }) => outputs.split,
    onItemError: 'collect',
    steps: (b) => b.step({ name: 'n', run: ({ input }) => input.length }),
  })
  .parallel({
    name: 'both',
    branches: {
      count: (b) => b.step({ name: 'count', run: ({ outputs }) => outputs.each.length }),
      first: (b) => b.step({ name: 'first', run: ({ outputs }) => outputs.split[0] ?? '' }),
    },
  })
  .call({ name: 'sub', pipeline: child, input: ({ input }) => ({ id: input.id, text: 'x' }) })
  .step({
    name: 'end',
    run: ({ outputs }) => {
      same<typeof outputs.each, { summary: string }[]>(true);
      same<typeof outputs.lenient, Collected<number>[]>(true);
      same<typeof outputs.both, { count: number; first: string }>(true);
      same<typeof outputs.sub, unknown>(true);
      // @ts-expect-error a map's per-item steps are not outputs of the parent.
      void outputs.trim;
      return outputs.each.map((e) => e.summary).join(' ');
    },
  })
  .build();

pipeline({ name: 'bad', version: '1', input: Doc })
  .llm({ name: 'classify', model: 'claude-haiku-4-5', prompt: (c) => c.input.text, output: Kind })
  .route({
    name: 'r',
    // @ts-expect-error the enum's 'other' has no branch.
    choose: ({ outputs }) => outputs.classify.kind,
    branches: { bug: (b) => b, billing: (b) => b },
  });

pipeline({ name: 'bad', version: '1', input: Doc }).call({
  name: 'sub',
  pipeline: child,
  // @ts-expect-error the called pipeline's input needs `text`.
  input: ({ input }) => ({ id: input.id }),
});

pipeline({ name: 'bad', version: '1', input: Doc })
  .step({ name: 'a', run: () => 1 })
  // @ts-expect-error a repeated name.
  .map({ name: 'a', over: () => [1], steps: (b) => b.step({ name: 'x', run: () => 1 }) });
