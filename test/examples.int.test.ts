/**
 * The router and summariser examples end to end on the embedded store, with the fake Claude over
 * the real SDK: the route takes the branch the classification names (and only that one), the
 * billing branch's effect writes its outbox file, every branch joins; the summariser splits a
 * document, maps one child run per chunk (at most 5 at a time), and reduces the results in order.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import router from '../examples/router.js';
import summarise, { chunkText, SUMMARY_CONCURRENCY } from '../examples/summarise.js';
import { childRunId } from '../src/runtime/children.js';
import { prepare } from '../src/runtime/prepare.js';
import type { FakeAction, FakeRequest } from '../src/testing/index.js';
import { harness, ofType, type Harness } from './helpers/harness.js';

const prompt = (req: FakeRequest): string => {
  const m = (req.body.messages as Array<{ content: unknown }> | undefined)?.[0]?.content;
  return typeof m === 'string' ? m : JSON.stringify(m ?? '');
};

const DELAY_MS = 200;
const chunkArrivals: number[] = [];

/** Categories by keyword, a bug report, an answer; chunk summaries after a delay; a reduce. */
function script(req: FakeRequest): FakeAction {
  const t = prompt(req);
  if (t.startsWith('Which team')) {
    const category = /refund/.test(t) ? 'billing' : /crash/.test(t) ? 'bug' : 'question';
    return { kind: 'json', value: { category, reason: `about ${category}` } };
  }
  if (t.startsWith('Write a one-line bug title'))
    return { kind: 'json', value: { title: 'Export crashes', severity: 'high' } };
  if (t.startsWith('Answer this customer'))
    return { kind: 'json', value: { reply: 'Yes, you can.' } };
  const part = /^Summarise part (\d+) of (\d+)/.exec(t);
  if (part !== null) {
    chunkArrivals.push(Date.now());
    return {
      kind: 'delay',
      ms: DELAY_MS,
      then: { kind: 'json', value: { summary: `summary of part ${part[1]}` } },
    };
  }
  if (t.startsWith('Combine these summaries'))
    return { kind: 'json', value: { summary: 'all parts', keyPoints: ['one', 'two'] } };
  return { kind: 'valid' };
}

let h: Harness;
beforeAll(async () => {
  h = await harness({ script, usage: { input_tokens: 100, output_tokens: 20 } });
  process.env.PLUMBLINE_OUTBOX = join(h.dir, 'outbox');
});
afterAll(() => h.close());

describe('examples/router.ts', () => {
  const p = prepare(router);
  const cases = [
    {
      id: 'M-1',
      text: 'Please refund the second charge.',
      branch: 'billing',
      steps: ['refund-request'],
    },
    {
      id: 'M-2',
      text: 'Export makes the app crash.',
      branch: 'bug',
      steps: ['bug-report', 'file-bug'],
    },
    { id: 'M-3', text: 'Can I invite a teammate?', branch: 'question', steps: ['answer'] },
  ];

  it.each(cases)('$id takes the $branch branch only, then joins at reply', async (c) => {
    const r = await h.runtime().start(p, {
      input: { id: c.id, from: 'a@b.c', text: c.text },
      runId: `router-${c.id}`,
    });
    expect(r.status, JSON.stringify(r.error)).toBe('completed');
    const events = await h.events(r.runId);
    expect(ofType(events, 'ROUTE').map((e) => e.event.branch)).toEqual([c.branch]);
    expect(r.outputs.handle).toBe(c.branch);
    // Only the chosen branch's steps have outputs; every branch's step of the others is absent.
    const branchSteps = ['refund-request', 'bug-report', 'file-bug', 'answer'];
    for (const s of branchSteps) expect(s in r.outputs, s).toBe(c.steps.includes(s));
    const reply = r.outputs.reply as { category: string; detail: unknown };
    expect(reply.category).toBe(c.branch);
    const outbox = join(h.dir, 'outbox', `refund-${c.id}.json`);
    expect(existsSync(outbox)).toBe(c.branch === 'billing');
    if (c.branch === 'billing') {
      expect(reply.detail).toBe(outbox);
      expect(JSON.parse(readFileSync(outbox, 'utf8'))).toMatchObject({ message: c.id });
      expect(ofType(events, 'EFFECT_DONE').map((e) => e.event.step)).toEqual(['refund-request']);
    }
    if (c.branch === 'bug') expect(reply.detail).toBe('Export crashes');
    if (c.branch === 'question') expect(reply.detail).toBe('Yes, you can.');
  });
});

describe('examples/summarise.ts', () => {
  it('chunkText keeps paragraphs whole, packs small ones, and cuts long ones under the limit', () => {
    const para = (n: number): string => `${'word '.repeat(n).trim()}.`;
    expect(chunkText(`${para(10)}\n\n${para(10)}`, 200)).toHaveLength(1);
    expect(chunkText(`${para(30)}\n\n${para(30)}`, 200)).toHaveLength(2);
    const long = chunkText(Array.from({ length: 40 }, () => 'A sentence here.').join(' '), 200);
    expect(long.length).toBeGreaterThan(1);
    for (const c of long) expect(c.length).toBeLessThanOrEqual(200);
  });

  it('maps a child run per chunk, at most 5 at a time, and reduces the summaries in order', async () => {
    const paragraphs = Array.from(
      { length: 12 },
      (_, i) => `Paragraph ${i + 1}. ${'Some long text that fills the chunk. '.repeat(6)}`,
    );
    const before = h.fake.count;
    chunkArrivals.length = 0;
    const r = await h.runtime().start(prepare(summarise), {
      input: { title: 'Doc', text: paragraphs.join('\n\n'), chunkChars: 300 },
      runId: 'doc-1',
    });
    expect(r.status, JSON.stringify(r.error)).toBe('completed');
    const split = r.outputs.split as Array<{ part: number; of: number; text: string }>;
    expect(split).toHaveLength(12);
    expect(split.map((c) => c.text)).toEqual(paragraphs.map((p) => p.trim()));
    expect(r.outputs.summaries).toEqual(
      split.map((c) => ({ summary: `summary of part ${c.part}` })),
    );
    expect(r.outputs.reduce).toEqual({ summary: 'all parts', keyPoints: ['one', 'two'] });
    // 12 chunk calls and one reduce, whose prompt lists the summaries in chunk order.
    expect(h.fake.count - before).toBe(13);
    const reducePrompt = prompt(h.fake.requests[h.fake.requests.length - 1] as FakeRequest);
    const order = [...reducePrompt.matchAll(/Part (\d+): summary of part (\d+)/g)];
    expect(order.map((m) => [Number(m[1]), Number(m[2])])).toEqual(
      split.map((c) => [c.part, c.part]),
    );
    // No more than `concurrency` chunks were asked before any answer could have come back.
    const first = Math.min(...chunkArrivals);
    expect(SUMMARY_CONCURRENCY).toBe(5);
    expect(chunkArrivals.filter((t) => t < first + DELAY_MS).length).toBeLessThanOrEqual(5);
    // The parent's log: the fan-out and the join, not an event per child.
    const events = await h.events('doc-1');
    expect(ofType(events, 'CHILDREN_STARTED').map((e) => e.event.count)).toEqual([12]);
    expect(ofType(events, 'CHILDREN_DONE')).toHaveLength(1);
    // Each chunk is a child run named after the parent, with its own log and cost.
    let childCost = 0;
    for (let i = 0; i < 12; i++) {
      const id = childRunId('doc-1', 'summaries', i);
      const child = await h.store.log.getRun(id);
      expect(child?.status, id).toBe('completed');
      childCost += child?.costUsd ?? 0;
      const [started] = await h.events(id);
      expect(started?.event).toMatchObject({
        type: 'run.started',
        parent: { runId: 'doc-1', step: 'summaries', part: i },
      });
    }
    // The parent's cost is the reduce call plus its children's, rolled up once.
    const reduceCost = ofType(events, 'MODEL_RESPONSE').reduce((a, e) => a + e.event.costUsd, 0);
    expect(reduceCost).toBeGreaterThan(0);
    expect(r.costUsd).toBeCloseTo(childCost + reduceCost, 9);
  });
});
