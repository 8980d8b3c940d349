/**
 * The builder's route, parallel, map and call at run time: `build()` makes the same machine (same
 * hash, same graph, same child pipelines) as the equivalent `definePipeline` with `route()`,
 * `parallel()`, `map()` and `call()`, and the built pipeline runs: the outputs later steps read
 * are where the builder's types say they are.
 */
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { UsageError } from '../src/errors.js';
import { call, childPipelines, map, parallel, route } from '../src/machines/constructs.js';
import { definePipeline, llm, step } from '../src/machines/pipeline.js';
import { pipeline } from '../src/machines/pipelineBuilder.js';
import { prepare } from '../src/runtime/prepare.js';
import { harness } from './helpers/harness.js';

const Input = z.object({ text: z.string() });
const Kind = z.object({ kind: z.enum(['long', 'short']) });
const header = { name: 'shapes', version: '1', input: Input };
const child = definePipeline({
  name: 'child',
  version: '1',
  input: z.object({ word: z.string() }),
  steps: [step({ name: 'shout', run: (c) => (c.input as { word: string }).word.toUpperCase() })],
});

function built() {
  return pipeline(header)
    .llm({ name: 'classify', model: 'claude-haiku-4-5', prompt: (c) => c.input.text, output: Kind })
    .route({
      name: 'by-kind',
      choose: ({ outputs }) => outputs.classify.kind,
      branches: {
        long: (b) => b.step({ name: 'words', run: ({ input }) => input.text.split(' ') }),
        short: (b) => b,
      },
    })
    .map({
      name: 'each',
      over: ({ outputs }) => outputs.words ?? [],
      concurrency: 2,
      steps: (b) => b.step({ name: 'len', run: ({ input }) => input.length }),
    })
    .parallel({
      name: 'both',
      branches: {
        count: (b) => b.step({ name: 'count', run: ({ outputs }) => outputs.each.length }),
        first: (b) => b.step({ name: 'first', run: ({ input }) => input.text[0] ?? '' }),
      },
    })
    .call({ name: 'sub', pipeline: child, input: ({ input }) => ({ word: input.text }) })
    .step({
      name: 'end',
      run: ({ outputs }) => ({
        kind: outputs['by-kind'],
        lengths: outputs.each,
        count: outputs.both.count,
        first: outputs.both.first,
        sub: outputs.sub,
      }),
    })
    .build();
}

/** The same pipeline with the plain constructs (untyped outputs, casts). */
function defined() {
  type O = Record<string, any>;
  return definePipeline({
    ...header,
    steps: [
      llm({
        name: 'classify',
        model: 'claude-haiku-4-5',
        prompt: (c) => c.input.text,
        output: Kind,
      }),
      route({
        name: 'by-kind',
        choose: (c) => (c.outputs as O).classify.kind,
        branches: {
          long: [step({ name: 'words', run: (c) => c.input.text.split(' ') })],
          short: [],
        },
      }),
      map({
        name: 'each',
        over: (c) => (c.outputs as O).words ?? [],
        concurrency: 2,
        steps: [step({ name: 'len', run: (c) => (c.input as string).length })],
      }),
      parallel({
        name: 'both',
        branches: {
          count: [step({ name: 'count', run: (c) => (c.outputs as O).each.length })],
          first: [step({ name: 'first', run: (c) => c.input.text[0] ?? '' })],
        },
      }),
      call({ name: 'sub', pipeline: child, input: (c) => ({ word: c.input.text }) }),
      step({ name: 'end', run: (c) => c.outputs }),
    ],
  });
}

describe('pipeline().route/.map/.parallel/.call', () => {
  it('build() makes the same machine and child pipelines as definePipeline with the constructs', () => {
    const a = prepare(built());
    const b = prepare(defined());
    expect(a.hash).toBe(b.hash);
    expect(a.graph).toEqual(b.graph);
    const kids = (p: typeof a) => childPipelines(p.pipeline).map((c) => prepare(c).hash);
    expect(kids(a)).toEqual(kids(b));
    expect(kids(a)).toHaveLength(4);
  });

  it('runs: each output is where its type says', async () => {
    await using h = await harness({
      script: () => ({ kind: 'json', value: { kind: 'long' } }),
    });
    const r = await h.runtime().start(prepare(built()), {
      input: { text: 'plumb the line' },
      runId: 'shapes-1',
    });
    expect(r.status, JSON.stringify(r.error)).toBe('completed');
    expect(r.outputs.end).toEqual({
      kind: 'long',
      lengths: [5, 3, 4],
      count: 3,
      first: 'p',
      sub: 'PLUMB THE LINE',
    });
  });

  it('a branch that does not return its chain, or a chain that is built, is refused with the fix', () => {
    expect(() =>
      pipeline(header).route({
        name: 'r',
        choose: () => 'a',
        branches: { a: () => ({}) as never },
      }),
    ).toThrow(/branch 'a' must return the chain it was given/);
    const built = (): unknown =>
      pipeline(header).route({
        name: 'r',
        choose: () => 'a',
        branches: { a: (b) => b.step({ name: 'x', run: () => 1 }).build() as never },
      });
    expect(built).toThrow(UsageError);
    expect(built).toThrow(/not a pipeline: return the chain without \.build\(\)/);
  });
});
