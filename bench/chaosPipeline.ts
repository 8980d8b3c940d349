/**
 * The chaos benchmark's pipeline: test/fixtures/pipelines/crashy.ts (three model calls, three
 * effects, two transforms, prompt `<step> <runId>`), except that each effect execution appends
 * `<key> <pid> <ms>` to the sink's executions.log, so a re-execution can be traced to the
 * process that ran the key before and checked against the kills of that process.
 */
import { appendFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { definePipeline, effect, llm, step, writeFileAtomic } from '../src/index.js';

const sink = (): string => {
  const dir = process.env.CRASHY_SINK;
  if (dir === undefined) throw new Error('set CRASHY_SINK to a directory');
  mkdirSync(dir, { recursive: true });
  return dir;
};

const write = (key: string, value: unknown): { file: string } => {
  appendFileSync(join(sink(), 'executions.log'), `${key} ${process.pid} ${Date.now()}\n`);
  writeFileAtomic(join(sink(), `${key}.json`), JSON.stringify(value));
  return { file: `${key}.json` };
};

const Answer = z.object({ label: z.string(), score: z.number().int().min(0).max(10) });

export default definePipeline({
  name: 'chaos',
  version: '1',
  input: z.object({ id: z.string() }),
  retry: { baseMs: 20, maxBackoffMs: 50 },
  steps: [
    llm({
      name: 'first',
      model: 'claude-haiku-4-5',
      prompt: ({ input }) => `first ${input.id}`,
      output: Answer,
    }),
    effect({
      name: 'saveFirst',
      key: ({ input }) => `${input.id}-first`,
      run: ({ key, outputs }) => write(key, outputs.first),
    }),
    step({
      name: 'combine',
      run: ({ outputs }) => ({ total: (outputs.first as { score: number }).score * 2 }),
    }),
    llm({
      name: 'second',
      model: 'claude-haiku-4-5',
      prompt: ({ input }) => `second ${input.id}`,
      output: Answer,
    }),
    effect({
      name: 'saveSecond',
      key: ({ input }) => `${input.id}-second`,
      run: ({ key, outputs }) => write(key, outputs.second),
    }),
    llm({
      name: 'third',
      model: 'claude-haiku-4-5',
      prompt: ({ input }) => `third ${input.id}`,
      output: Answer,
    }),
    effect({
      name: 'notify',
      key: ({ input }) => `${input.id}-notify`,
      run: ({ key, outputs }) => write(key, { combine: outputs.combine, third: outputs.third }),
    }),
    step({
      name: 'finish',
      run: ({ outputs }) => ({
        done: true,
        labels: [outputs.first, outputs.second, outputs.third].map(
          (o) => (o as { label: string }).label,
        ),
      }),
    }),
  ],
});
