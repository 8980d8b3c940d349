/**
 * Routes, parallel branches, maps and calls on the embedded store: what each records in the
 * parent's log and in its children's, results in order, cost rolled up once, concurrency held,
 * budget shared, kill and resume across the tree.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { call, map, parallel, route } from '../src/machines/constructs.js';
import { definePipeline, effect, llm, step } from '../src/machines/pipeline.js';
import { prepare } from '../src/runtime/prepare.js';
import { harness, ofType, type Harness } from './helpers/harness.js';

const Summary = z.object({ summary: z.string() });

describe('route', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await harness();
  });
  afterAll(() => h.close());

  const seen: string[] = [];
  const p = prepare(
    definePipeline({
      name: 'router',
      version: '1',
      input: z.object({ kind: z.string() }),
      steps: [
        route({
          name: 'by-kind',
          choose: (c) => (c.input as { kind: string }).kind,
          branches: {
            bug: [
              step({ name: 'triage-bug', run: () => (seen.push('bug'), 'B') }),
              step({ name: 'label-bug', run: () => (seen.push('label'), 'L') }),
            ],
            billing: [step({ name: 'refund', run: () => (seen.push('billing'), 'R') })],
            other: [],
          },
        }),
        step({
          name: 'join',
          run: (c) => (seen.push('join'), { route: c.outputs['by-kind'] }),
        }),
      ],
    }),
  );

  it('takes the chosen branch only, records the choice, and joins at the next step', async () => {
    seen.length = 0;
    const r = await h.runtime().start(p, { input: { kind: 'bug' }, runId: 'route-bug' });
    expect(r.status).toBe('completed');
    expect(seen).toEqual(['bug', 'label', 'join']);
    expect(r.outputs).toMatchObject({
      'by-kind': 'bug',
      'triage-bug': 'B',
      join: { route: 'bug' },
    });
    const events = await h.events('route-bug');
    expect(ofType(events, 'ROUTE').map((e) => e.event.branch)).toEqual(['bug']);
    expect(ofType(events, 'STEP_DONE').map((e) => e.event.step)).toEqual([
      'triage-bug',
      'label-bug',
      'join',
    ]);
  });

  it('an empty branch goes straight to the join', async () => {
    seen.length = 0;
    const r = await h.runtime().start(p, { input: { kind: 'other' }, runId: 'route-other' });
    expect(r.status).toBe('completed');
    expect(seen).toEqual(['join']);
  });

  it('a key that is not a branch fails the step, naming the branches', async () => {
    const r = await h.runtime().start(p, { input: { kind: 'nope' }, runId: 'route-nope' });
    expect(r.status).toBe('failed');
    expect(r.error?.message).toContain(
      'chose "nope": not one of its branches (bug, billing, other)',
    );
  });
});

describe('parallel, map and call', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await harness({ usage: { input_tokens: 100, output_tokens: 50 } });
  });
  afterAll(() => h.close());

  it('parallel: branches run as child runs, outputs by branch, cost rolled up once', async () => {
    const p = prepare(
      definePipeline({
        name: 'par',
        version: '1',
        input: z.object({ text: z.string() }),
        steps: [
          step({ name: 'prep', run: (c) => (c.input as { text: string }).text.toUpperCase() }),
          parallel({
            name: 'both',
            branches: {
              facts: [
                llm({
                  name: 'facts',
                  model: 'claude-haiku-4-5',
                  prompt: (c) => String(c.outputs.prep),
                  output: Summary,
                }),
              ],
              size: [step({ name: 'size', run: (c) => String(c.outputs.prep).length })],
            },
          }),
          step({ name: 'after', run: (c) => c.outputs.both }),
        ],
      }),
    );
    const r = await h.runtime().start(p, { input: { text: 'hello' }, runId: 'par-1' });
    expect(r.status).toBe('completed');
    const both = r.outputs.both as { facts: unknown; size: unknown };
    expect(both.size).toBe(5);
    expect(both.facts).toHaveProperty('summary');
    const events = await h.events('par-1');
    expect(ofType(events, 'CHILDREN_STARTED')[0]?.event.count).toBe(2);
    expect(
      ofType(events, 'BRANCH_DONE')
        .map((e) => e.event.branch)
        .sort(),
    ).toEqual(['facts', 'size']);
    const child = await h.events('par-1-both-facts');
    expect(child[0]?.event).toMatchObject({
      type: 'run.started',
      parent: { runId: 'par-1', step: 'both', part: 'facts' },
    });
    const childRun = await h.store.log.getRun('par-1-both-facts');
    expect(childRun?.costUsd).toBeGreaterThan(0);
    expect(r.costUsd).toBeCloseTo(childRun?.costUsd ?? -1, 9);
  });

  it('map: one child per item, at most `concurrency` at once, results in input order, effects once', async () => {
    let running = 0;
    let peak = 0;
    const sink: number[] = [];
    const p = prepare(
      definePipeline({
        name: 'mapper',
        version: '1',
        input: z.object({ n: z.number() }),
        steps: [
          map({
            name: 'each',
            over: (c) => Array.from({ length: (c.input as { n: number }).n }, (_, i) => i),
            concurrency: 5,
            steps: [
              step({
                name: 'square',
                run: async (c) => {
                  running++;
                  peak = Math.max(peak, running);
                  await new Promise((r) => setTimeout(r, 5 + ((c.input as number) % 3) * 5));
                  running--;
                  return (c.input as number) ** 2;
                },
              }),
              effect({
                name: 'record',
                key: (c) => `item-${String(c.input)}`,
                run: (c) => {
                  sink.push(c.input as number);
                  return c.outputs.square;
                },
              }),
            ],
          }),
        ],
      }),
    );
    const r = await h.runtime().start(p, { input: { n: 20 }, runId: 'map-1' });
    expect(r.status).toBe('completed');
    expect(r.outputs.each).toEqual(Array.from({ length: 20 }, (_, i) => i * i));
    expect(peak).toBeLessThanOrEqual(5);
    expect(peak).toBeGreaterThan(1);
    expect([...sink].sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, i) => i));
    const events = await h.events('map-1');
    // The parent's log: started, fan-out, join — not an event per child.
    expect(events.map((e) => e.event.type)).toEqual([
      'run.started',
      'CHILDREN_STARTED',
      'CHILDREN_DONE',
    ]);
    // Driving the finished parent again re-runs nothing.
    await h.runtime().drive(p, 'map-1');
    expect(sink).toHaveLength(20);
  });

  it('map with onItemError collect: failures collected in order, the step succeeds', async () => {
    const p = prepare(
      definePipeline({
        name: 'collector',
        version: '1',
        input: z.object({}),
        steps: [
          map({
            name: 'each',
            over: () => [1, 2, 3, 4],
            onItemError: 'collect',
            steps: [
              step({
                name: 'odd-fails',
                run: (c) => {
                  if ((c.input as number) % 2 === 1) throw new Error(`odd ${String(c.input)}`);
                  return c.input;
                },
              }),
            ],
          }),
        ],
      }),
    );
    const r = await h.runtime().start(p, { input: {}, runId: 'collect-1' });
    expect(r.status).toBe('completed');
    const each = r.outputs.each as Array<{ ok: boolean; value?: unknown; error?: string }>;
    expect(each.map((e) => e.ok)).toEqual([false, true, false, true]);
    expect(each[1]?.value).toBe(2);
    expect(each[0]?.error).toContain('odd 1');
  });

  it('map that fails an item fails the parent, naming the item', async () => {
    const p = prepare(
      definePipeline({
        name: 'failer',
        version: '1',
        input: z.object({}),
        steps: [
          map({
            name: 'each',
            over: () => ['a', 'b'],
            steps: [
              step({
                name: 'boom',
                run: (c) => {
                  if (c.input === 'b') throw new Error('bad b');
                  return 1;
                },
              }),
            ],
          }),
        ],
      }),
    );
    const r = await h.runtime().start(p, { input: {}, runId: 'fail-1' });
    expect(r.status).toBe('failed');
    expect(r.error?.message).toContain('#1');
    expect(r.error?.message).toContain('bad b');
  });

  it('call: runs another pipeline as a child and takes its last output', async () => {
    const child = definePipeline({
      name: 'shout',
      version: '1',
      input: z.object({ word: z.string() }),
      steps: [step({ name: 'up', run: (c) => (c.input as { word: string }).word.toUpperCase() })],
    });
    const p = prepare(
      definePipeline({
        name: 'caller',
        version: '1',
        input: z.object({ w: z.string() }),
        steps: [
          call({
            name: 'loud',
            pipeline: child,
            input: (c) => ({ word: (c.input as { w: string }).w }),
          }),
        ],
      }),
    );
    const r = await h.runtime().start(p, { input: { w: 'hey' }, runId: 'call-1' });
    expect(r.status).toBe('completed');
    expect(r.outputs.loud).toBe('HEY');
    const bad = await h.runtime().start(
      prepare(
        definePipeline({
          name: 'caller2',
          version: '1',
          input: z.object({}),
          steps: [call({ name: 'loud', pipeline: child, input: () => ({ word: 3 }) })],
        }),
      ),
      { input: {}, runId: 'call-2' },
    );
    expect(bad.status).toBe('failed');
    expect(bad.error?.message).toContain("step 'loud' input does not match pipeline 'shout'");
  });

  it('budget: a map whose items would cross the cap parks the parent before the call that would, spends ≤ cap at concurrency 50, and resumes', async () => {
    const p = prepare(
      definePipeline({
        name: 'spender',
        version: '1',
        input: z.object({}),
        steps: [
          map({
            name: 'each',
            over: () => Array.from({ length: 60 }, (_, i) => `doc ${i}`),
            concurrency: 50,
            steps: [
              llm({
                name: 'sum',
                model: 'claude-haiku-4-5',
                prompt: (c) => String(c.input),
                output: Summary,
                maxTokens: 100,
              }),
            ],
          }),
        ],
      }),
    );
    const cap = 0.004;
    const r = await h
      .runtime()
      .start(p, { input: {}, runId: 'budget-map', limits: { budgetUsd: cap, maxIterations: 500 } });
    expect(r.status).toBe('parked');
    expect(r.parked?.reason).toBe('budget');
    expect(r.parked?.detail).toContain('budget of parent run budget-map');
    const pool = await h.store.pools?.get('budget-map/each');
    expect(pool?.spentUsd).toBeLessThanOrEqual(cap);
    expect(pool?.reservedUsd).toBeCloseTo(0, 9);
    let spent = 0;
    for (let i = 0; i < 60; i++)
      spent += (await h.store.log.getRun(`budget-map-each-${i}`))?.costUsd ?? 0;
    expect(spent).toBeLessThanOrEqual(cap);
    expect(spent).toBeCloseTo(pool?.spentUsd ?? -1, 9);
    const done = await h.runtime().resume(p, 'budget-map', { budgetUsd: 1 });
    expect(done.status).toBe('completed');
    expect((done.outputs.each as unknown[]).length).toBe(60);
    let total = 0;
    for (let i = 0; i < 60; i++)
      total += (await h.store.log.getRun(`budget-map-each-${i}`))?.costUsd ?? 0;
    expect(done.costUsd).toBeCloseTo(total, 9);
  });

  it("the parent's call cap (default 50) covers its children: a 60-item map parks at 50 calls", async () => {
    const p = prepare(
      definePipeline({
        name: 'capped',
        version: '1',
        input: z.object({}),
        steps: [
          map({
            name: 'each',
            over: () => Array.from({ length: 60 }, (_, i) => `doc ${i}`),
            concurrency: 50,
            steps: [
              llm({
                name: 'sum',
                model: 'claude-haiku-4-5',
                prompt: (c) => String(c.input),
                output: Summary,
              }),
            ],
          }),
        ],
      }),
    );
    const r = await h.runtime().start(p, { input: {}, runId: 'capped-map' });
    expect(r.status).toBe('parked');
    expect(r.parked?.reason).toBe('iterations');
    let calls = 0;
    for (let i = 0; i < 60; i++)
      calls += ofType(await h.events(`capped-map-each-${i}`), 'MODEL_RESPONSE').length;
    expect(calls).toBe(50);
    const done = await h.runtime().resume(p, 'capped-map', { maxIterations: 100 });
    expect(done.status).toBe('completed');
  });

  it('kill of a parent kills its children', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const p = prepare(
      definePipeline({
        name: 'killable',
        version: '1',
        input: z.object({}),
        steps: [
          map({
            name: 'each',
            over: () => [1, 2, 3, 4, 5, 6],
            concurrency: 2,
            steps: [
              step({
                name: 'wait',
                run: async () => {
                  await gate;
                  return 1;
                },
              }),
              step({ name: 'then', run: () => 2 }),
            ],
          }),
        ],
      }),
    );
    const rt = h.runtime({ killPollMs: 20 });
    const running = rt.start(p, { input: {}, runId: 'kill-tree' });
    for (let i = 0; i < 200 && (await h.store.log.getRun('kill-tree-each-1'))?.lastSeq !== 1; i++)
      await new Promise((r) => setTimeout(r, 20));
    await rt.kill('kill-tree', 'operator says stop', p, 0);
    await expect
      .poll(async () => (await h.store.log.getRun('kill-tree'))?.status, { timeout: 30_000 })
      .toBe('killed');
    // The two children mid-step see their flags before their next step (the runtime's kill
    // watcher has them): then let their current step finish.
    const kills = (rt as unknown as { kills: { current(id: string): Promise<unknown> } }).kills;
    for (const id of ['kill-tree-each-0', 'kill-tree-each-1'])
      await expect.poll(() => kills.current(id), { timeout: 30_000 }).toBeDefined();
    release();
    const r = await running;
    expect(r.status).toBe('killed');
    for (let i = 0; i < 6; i++)
      await expect
        .poll(async () => (await h.store.log.getRun(`kill-tree-each-${i}`))?.status, {
          timeout: 30_000,
        })
        .toBe('killed');
  });
});
