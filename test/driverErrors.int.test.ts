/**
 * Whose fault: a throwing prompt/key/skip function fails the step (recorded), while a failing
 * store propagates and leaves the run resumable exactly where it was.
 */
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { definePipeline, llm } from '../src/machines/pipeline.js';
import { prepare } from '../src/runtime/prepare.js';
import type { Store } from '../src/store/types.js';
import { harness, ofType } from './helpers/harness.js';

const Out = z.object({ n: z.number() });

describe('errors in the driver', () => {
  it('fails the step when pipeline code throws, with the error in the log', async () => {
    await using h = await harness();
    const p = prepare(
      definePipeline({
        name: 'oops',
        version: '1',
        input: z.object({}),
        steps: [
          llm({
            name: 'ask',
            model: 'claude-haiku-4-5',
            output: Out,
            prompt: () => {
              throw new Error('prompt template missing');
            },
          }),
        ],
      }),
    );
    const r = await h.runtime().start(p, { input: {}, runId: 'u-1' });
    expect(r.status).toBe('failed');
    expect(r.error?.message).toBe("pipeline code threw in step 'ask': prompt template missing");
    expect(ofType(await h.events('u-1'), 'STEP_FAILED')).toHaveLength(1);
    expect(h.fake.count).toBe(0);
  });

  it('propagates a store failure and leaves the run resumable', async () => {
    await using h = await harness({ script: () => ({ kind: 'json', value: { n: 1 } }) });
    const p = prepare(
      definePipeline({
        name: 'fine',
        version: '1',
        input: z.object({}),
        steps: [llm({ name: 'ask', model: 'claude-haiku-4-5', output: Out, prompt: () => 'q' })],
      }),
    );
    let broken = true;
    const flaky: Store = {
      ...h.store,
      control: {
        ...h.store.control,
        getKill: async (id) => {
          if (broken) throw new Error('store unavailable');
          return h.store.control.getKill(id);
        },
      },
    };
    const { Runtime } = await import('../src/runtime/driver.js');
    const { createAnthropicClient } = await import('../src/model/anthropic.js');
    const model = createAnthropicClient({ apiKey: 'k', baseURL: h.fake.url });
    await expect(
      new Runtime({ store: flaky, model }).start(p, { input: {}, runId: 's-1' }),
    ).rejects.toThrow('store unavailable');
    expect((await h.store.log.getRun('s-1'))?.status).toBe('running');
    broken = false;
    const r = await new Runtime({ store: flaky, model }).drive(p, 's-1');
    expect(r.status).toBe('completed');
  });
});
