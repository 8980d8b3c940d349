/**
 * A model call that cost more than it reserved is reported (the reservation was not a bound):
 * one warning line with the run, the step, what was reserved and what it cost.
 */
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { definePipeline, llm } from '../src/machines/pipeline.js';
import { prepare } from '../src/runtime/prepare.js';
import { harness } from './helpers/harness.js';

interface Line {
  level: number;
  msg: string;
  runId?: string;
  step?: string;
  reservedUsd?: number;
  actualUsd?: number;
  overUsd?: number;
}

const oneCall = prepare(
  definePipeline({
    name: 'overrun',
    version: '1',
    input: z.object({}),
    steps: [
      llm({
        name: 'ask',
        model: 'claude-haiku-4-5',
        prompt: () => 'hi',
        output: z.object({ n: z.number() }),
        maxTokens: 100,
      }),
    ],
  }),
);

async function drive(inputTokens: number | undefined): Promise<{ lines: Line[]; cost: number }> {
  await using h = await harness(
    inputTokens !== undefined ? { usage: { input_tokens: inputTokens } } : {},
  );
  const lines: Line[] = [];
  const logger = pino(
    { level: 'info' },
    { write: (s: string) => void lines.push(JSON.parse(s) as Line) },
  );
  const r = await h.runtime({ logger }).start(oneCall, { input: {}, runId: 'o-1' });
  expect(r.status).toBe('completed');
  return { lines, cost: r.costUsd };
}

describe('a call that cost more than it reserved', () => {
  it('is reported with the reservation, the cost and the overrun', async () => {
    // The provider bills a million input tokens for a two-character prompt.
    const { lines, cost } = await drive(1_000_000);
    const warn = lines.filter((l) => l.msg === 'model call cost more than it reserved');
    expect(warn).toHaveLength(1);
    const w = warn[0] as Line;
    expect(w).toMatchObject({ level: 40, runId: 'o-1', step: 'ask', actualUsd: cost });
    expect(w.reservedUsd).toBeGreaterThan(0);
    expect(w.reservedUsd).toBeLessThan(cost);
    expect(w.overUsd).toBeCloseTo(cost - (w.reservedUsd as number), 9);
  });

  it('says nothing when the call stayed within its reservation', async () => {
    const { lines } = await drive(undefined);
    expect(lines.some((l) => l.msg === 'model call cost more than it reserved')).toBe(false);
  });
});
