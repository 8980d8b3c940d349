/**
 * The typed builder at run time: `pipeline(…).llm().effect().step().build()` makes the same
 * machine (same hash, same graph) as the equivalent `definePipeline({ steps: [...] })`, runs
 * against the fake Claude through the real SDK, and its steps see what their types say: the
 * parsed input, each earlier output, `null` for a skipped step.
 */
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { UsageError } from '../src/errors.js';
import { foldLog } from '../src/machines/replay.js';
import { definePipeline, effect, llm, step } from '../src/machines/pipeline.js';
import { pipeline } from '../src/machines/pipelineBuilder.js';
import { loadPipeline } from '../src/runtime/load.js';
import { prepare } from '../src/runtime/prepare.js';
import { harness } from './helpers/harness.js';

const Input = z.object({ text: z.string(), n: z.number() });
const Score = z.object({ value: z.number(), label: z.string() });
const Detail = z.object({ detail: z.string() });
const header = { name: 'scored', version: '1', input: Input, limits: { maxIterations: 10 } };

/** What the builder's steps saw, in order. */
type Seen = Array<{ step: string; value: unknown }>;

function built(seen: Seen) {
  return pipeline(header)
    .llm({
      name: 'score',
      model: 'claude-haiku-4-5',
      prompt: ({ input }) => `score: ${input.text}`,
      output: Score,
    })
    .llm({
      name: 'detail',
      model: 'claude-haiku-4-5',
      prompt: ({ outputs }) => `detail ${outputs.score.label}`,
      output: Detail,
      skip: ({ outputs }) => outputs.score.value < 3 && 'low score',
    })
    .effect({
      name: 'record',
      key: ({ input }) => `record-${input.text}`,
      run: ({ key, outputs }) => {
        seen.push({ step: 'record', value: { key, detail: outputs.detail } });
        return { label: outputs.score.label, detailed: outputs.detail !== null };
      },
    })
    .step({
      name: 'sum',
      run: ({ input, outputs }) => {
        seen.push({ step: 'sum', value: outputs.record });
        return outputs.score.value + input.n;
      },
    })
    .build();
}

/** The same pipeline as a step list: untyped outputs, casts. */
function defined() {
  type S = z.infer<typeof Score>;
  return definePipeline({
    ...header,
    steps: [
      llm({
        name: 'score',
        model: 'claude-haiku-4-5',
        prompt: ({ input }) => `score: ${(input as z.infer<typeof Input>).text}`,
        output: Score,
      }),
      llm({
        name: 'detail',
        model: 'claude-haiku-4-5',
        prompt: ({ outputs }) => `detail ${(outputs.score as S).label}`,
        output: Detail,
        skip: ({ outputs }) => (outputs.score as S).value < 3 && 'low score',
      }),
      effect({ name: 'record', key: () => 'k', run: () => ({}) }),
      step({ name: 'sum', run: () => 0 }),
    ],
  });
}

describe('pipeline builder', () => {
  it('compiles to the machine definePipeline compiles: same hash and graph, same step data', () => {
    const a = prepare(built([]));
    const b = prepare(defined());
    expect(a.hash).toBe(b.hash);
    expect(a.graph).toEqual(b.graph);
    const data = (p: typeof a.pipeline) =>
      p.steps.map((s) =>
        Object.fromEntries(Object.entries(s).filter(([, v]) => typeof v !== 'function')),
      );
    expect(data(a.pipeline)).toEqual(data(b.pipeline));
    expect(Object.keys(a.pipeline).sort()).toEqual(Object.keys(b.pipeline).sort());
  });

  it('runs against the fake Claude: steps see the input, earlier outputs, and null for a skipped step', async () => {
    await using h = await harness({
      script: (req) => {
        const prompt = JSON.stringify(req.body.messages);
        if (prompt.includes('score: high'))
          return { kind: 'json', value: { value: 4, label: 'hi' } };
        if (prompt.includes('score: low'))
          return { kind: 'json', value: { value: 1, label: 'lo' } };
        return { kind: 'json', value: { detail: 'more' } };
      },
    });
    const seen: Seen = [];
    const prepared = prepare(built(seen));
    const rt = h.runtime();

    const high = await rt.start(prepared, { input: { text: 'high', n: 10 }, runId: 'b-high' });
    expect(high.status).toBe('completed');
    expect(high.outputs).toEqual({
      score: { value: 4, label: 'hi' },
      detail: { detail: 'more' },
      record: { label: 'hi', detailed: true },
      sum: 14,
    });

    const low = await rt.start(prepared, { input: { text: 'low', n: 10 }, runId: 'b-low' });
    expect(low.status).toBe('completed');
    expect(low.outputs).toEqual({
      score: { value: 1, label: 'lo' },
      detail: null,
      record: { label: 'lo', detailed: false },
      sum: 11,
    });
    // Three model calls: score, detail (high only), score.
    expect(h.fake.requests.filter((r) => r.path.endsWith('/messages')).length).toBe(3);
    expect(seen).toEqual([
      { step: 'record', value: { key: 'record-high', detail: { detail: 'more' } } },
      { step: 'sum', value: { label: 'hi', detailed: true } },
      { step: 'record', value: { key: 'record-low', detail: null } },
      { step: 'sum', value: { label: 'lo', detailed: false } },
    ]);

    // The logs replay against the definePipeline form: the builder changed nothing recorded.
    const other = prepare(defined());
    for (const r of [high, low]) {
      const events = await h.events(r.runId);
      const folded = foldLog(other.machine, other.hash, r.runId, events);
      expect(folded.snapshot.value).toBe('completed');
      expect(folded.snapshot.context.outputs).toEqual(r.outputs);
    }
  });

  it('is immutable (a shared prefix gives independent pipelines) and build() checks as definePipeline does', () => {
    const base = pipeline(header).step({ name: 'a', run: () => 1 });
    const one = base.step({ name: 'b', run: ({ outputs }) => outputs.a + 1 }).build();
    const two = base.step({ name: 'c', run: ({ outputs }) => outputs.a + 2 }).build();
    expect(one.steps.map((s) => s.name)).toEqual(['a', 'b']);
    expect(two.steps.map((s) => s.name)).toEqual(['a', 'c']);
    expect(base.build().steps.map((s) => s.name)).toEqual(['a']);
    // A repeated name is a type error; from JavaScript it is the usual UsageError at build().
    const dup = base.step({ name: 'a' as string, run: () => 2 });
    expect(() => dup.build()).toThrow(UsageError);
    expect(() => dup.build()).toThrow("has two steps named 'a'");
    expect(() => pipeline(header).build()).toThrow('has no steps');
  });

  it('a module default-exporting a builder without .build() is refused, naming the fix', async () => {
    await expect(loadPipeline('test/fixtures/pipelines/unbuilt.ts')).rejects.toThrow(
      'default-exports an unfinished pipeline builder: end the chain with `.build()`',
    );
  });
});
