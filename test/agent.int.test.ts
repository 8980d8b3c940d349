/**
 * The agent step through the real SDK and the fake Claude: tool-use turns journaled, tool inputs
 * validated (an invalid one goes back as `is_error`), an effect tool run once under the ledger,
 * maxTurns, the budget per turn, and a resumed agent that continues the conversation without
 * asking a recorded turn again.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { costReport } from '../src/cli/cost.js';
import { agent, tool } from '../src/machines/agent.js';
import { definePipeline } from '../src/machines/pipeline.js';
import { prepare } from '../src/runtime/prepare.js';
import { fakeScriptFromJson } from '../src/testing/fakeScript.js';
import type { FakeAction, FakeRequest } from '../src/testing/index.js';
import { harness, ofType, type Harness } from './helpers/harness.js';

type Msg = { role: string; content: unknown };
const messagesOf = (req: FakeRequest): Msg[] => (req.body.messages ?? []) as Msg[];
/** The turn a request asks for: how many assistant turns the conversation already holds. */
const turnOf = (req: FakeRequest): number =>
  messagesOf(req).filter((m) => m.role === 'assistant').length;
const toolResults = (req: FakeRequest) =>
  messagesOf(req).flatMap((m) =>
    Array.isArray(m.content)
      ? (m.content as Array<Record<string, unknown>>).filter((b) => b.type === 'tool_result')
      : [],
  );
const modelCalls = (h: Harness): FakeRequest[] =>
  h.fake.requests.filter((r) => r.path === '/v1/messages');

/** A conversation script: the action for each turn, by the conversation's length. */
const byTurn =
  (turns: FakeAction[]) =>
  (req: FakeRequest): FakeAction =>
    turns[turnOf(req)] ?? { kind: 'text', text: 'no more turns scripted' };

const lookups: string[] = [];
/** The refund sink: one row per refund, keyed by the tool call's idempotency key. */
const sink: Array<{ key: string; orderId: string; amount: number }> = [];

const lookup = tool({
  description: 'Look up an order by id: its amount and status',
  input: z.object({ orderId: z.string() }),
  run: ({ orderId }) => {
    lookups.push(orderId);
    return { orderId, amount: 42, status: 'delivered' };
  },
});
const refund = tool({
  description: 'Refund an order (irreversible)',
  input: z.object({ orderId: z.string(), amount: z.number().positive() }),
  effect: true,
  run: ({ orderId, amount }, ctx) => {
    sink.push({ key: ctx.key, orderId, amount });
    return { refundId: `r-${orderId}` };
  },
});
const Answer = z.object({ reply: z.string(), refunded: z.boolean() });

function supportPipeline(name: string, maxTurns = 6) {
  return prepare(
    definePipeline({
      name,
      version: '1',
      input: z.object({ text: z.string() }),
      steps: [
        agent({
          name: 'support',
          model: 'claude-sonnet-4-6',
          system: 'You are a support agent.',
          prompt: (c) => (c.input as { text: string }).text,
          tools: { lookup, refund },
          output: Answer,
          maxTurns,
        }),
      ],
    }),
  );
}

const happy: FakeAction[] = [
  { kind: 'tool_use', text: 'Let me look.', calls: [{ name: 'lookup', input: { orderId: 'A1' } }] },
  { kind: 'tool_use', calls: [{ name: 'refund', input: { orderId: 'A1', amount: 42 } }] },
  { kind: 'json', value: { reply: 'Refunded $42', refunded: true } },
];

describe('agent step', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await harness();
  });
  afterAll(() => h.close());
  beforeEach(() => {
    h.fake.reset();
    lookups.length = 0;
    sink.length = 0;
  });

  it('calls a read-only tool and an effect tool, then answers; every turn is journaled', async () => {
    h.fake.setScript(byTurn(happy));
    const p = supportPipeline('agent-happy');
    const r = await h.runtime().start(p, { input: { text: 'refund A1' }, runId: 'agent-happy' });
    expect(r.status).toBe('completed');
    expect(r.outputs.support).toEqual({ reply: 'Refunded $42', refunded: true });
    const events = await h.events('agent-happy');
    const turns = ofType(events, 'AGENT_TURN').map((e) => e.event);
    expect(turns.map((t) => [t.turn, t.verdict])).toEqual([
      [1, 'tool_use'],
      [2, 'tool_use'],
      [3, 'valid'],
    ]);
    expect(turns[0]?.content).toMatchObject([
      { type: 'text', text: 'Let me look.' },
      { type: 'tool_use', name: 'lookup', input: { orderId: 'A1' } },
    ]);
    expect(ofType(events, 'ATTEMPT')).toHaveLength(3);
    const results = ofType(events, 'TOOL_RESULT').map((e) => e.event);
    expect(results.map((t) => [t.name, t.ok, t.effect, t.replayed])).toEqual([
      ['lookup', true, false, false],
      ['refund', true, true, false],
    ]);
    expect(lookups).toEqual(['A1']);
    expect(sink).toEqual([
      {
        key: `tool:${turns[1]?.content[0]?.type === 'tool_use' ? turns[1].content[0].id : '?'}`,
        orderId: 'A1',
        amount: 42,
      },
    ]);
    // Cost: every turn billed once, and the run's cost is their sum.
    const sum = turns.reduce((s, t) => s + t.costUsd, 0);
    expect(sum).toBeGreaterThan(0);
    expect(r.costUsd).toBeCloseTo(sum, 9);
    // …and the cost report counts the turns (from the store's rollups and from the logs).
    for (const fromLog of [false, true]) {
      const rep = await costReport(h.store, 'pipeline', { fromLog });
      const row = rep.rows.find((x) => x.key === 'agent-happy');
      expect(row?.calls).toBe(3);
      expect(row?.costUsd).toBeCloseTo(sum, 9);
    }
    // The requests: the tools and the output format sent each turn, the conversation carried on.
    const calls = modelCalls(h);
    expect(calls).toHaveLength(3);
    const tools = (calls[0]?.body.tools ?? []) as Array<{ name: string; input_schema: unknown }>;
    expect(tools.map((t) => t.name)).toEqual(['lookup', 'refund']);
    expect(calls[0]?.body.output_config).toBeDefined();
    expect(messagesOf(calls[2] as FakeRequest).map((m) => m.role)).toEqual([
      'user',
      'assistant',
      'user',
      'assistant',
      'user',
    ]);
    expect(
      toolResults(calls[2] as FakeRequest).map((b) => JSON.parse(b.content as string)),
    ).toEqual([{ orderId: 'A1', amount: 42, status: 'delivered' }, { refundId: 'r-A1' }]);
  });

  it('an invalid tool input goes back as an is_error result and the model corrects it', async () => {
    h.fake.setScript(
      byTurn([
        { kind: 'tool_use', calls: [{ name: 'refund', input: { orderId: 'A1', amount: -5 } }] },
        { kind: 'tool_use', calls: [{ name: 'refund', input: { orderId: 'A1', amount: 42 } }] },
        { kind: 'json', value: { reply: 'ok', refunded: true } },
      ]),
    );
    const p = supportPipeline('agent-invalid');
    const r = await h.runtime().start(p, { input: { text: 'refund' }, runId: 'agent-invalid' });
    expect(r.status).toBe('completed');
    const results = ofType(await h.events('agent-invalid'), 'TOOL_RESULT').map((e) => e.event);
    expect(results.map((t) => [t.ok, t.invalidInput])).toEqual([
      [false, true],
      [true, false],
    ]);
    expect(results[0]?.error).toContain('amount');
    // The refund ran once, with the corrected input; the model saw the error.
    expect(sink.map((s) => s.amount)).toEqual([42]);
    const second = modelCalls(h)[1] as FakeRequest;
    expect(toolResults(second)).toMatchObject([{ is_error: true }]);
    expect(String(toolResults(second)[0]?.content)).toContain('invalid input for tool');
  });

  it('fails at maxTurns without running the last turn’s tools', async () => {
    h.fake.setScript(() => ({
      kind: 'tool_use',
      calls: [{ name: 'lookup', input: { orderId: 'A1' } }],
    }));
    const p = supportPipeline('agent-turns', 2);
    const r = await h.runtime().start(p, { input: { text: 'loop' }, runId: 'agent-turns' });
    expect(r.status).toBe('failed');
    expect(r.error?.kind).toBe('max_turns');
    expect(r.error?.message).toContain('maxTurns');
    expect(modelCalls(h)).toHaveLength(2);
    expect(lookups).toEqual(['A1']);
  });

  it('parks on the budget before a turn that would cross it; resume continues the conversation', async () => {
    // The first turn's worst case, learned from a run without a budget (same request bytes).
    h.fake.setScript(byTurn(happy));
    const p = supportPipeline('agent-budget');
    await h.runtime().start(p, { input: { text: 'refund A1' }, runId: 'agent-budget-probe' });
    const probe = ofType(await h.events('agent-budget-probe'), 'ATTEMPT').map((e) => e.event);
    const first = probe[0]?.estimate.usd ?? 0;
    const firstCost = ofType(await h.events('agent-budget-probe'), 'AGENT_TURN')[0]?.event.costUsd;
    expect(first).toBeGreaterThan(0);
    // Room for the first turn's worst case, not for its cost plus the second's worst case.
    const budgetUsd = first + (firstCost ?? 0) / 2;
    h.fake.reset();
    h.fake.setScript(byTurn(happy));
    sink.length = 0;
    const r = await h.runtime().start(p, {
      input: { text: 'refund A1' },
      runId: 'agent-budget',
      limits: { budgetUsd },
    });
    expect(r.status).toBe('parked');
    expect(r.parked?.reason).toBe('budget');
    expect(modelCalls(h)).toHaveLength(1);
    expect(lookups).toEqual(['A1', 'A1']); // the probe's, then this run's first tool call
    const resumed = await h.runtime().resume(p, 'agent-budget', { budgetUsd: 1 });
    expect(resumed.status).toBe('completed');
    expect(modelCalls(h)).toHaveLength(3);
    expect(turnOf(modelCalls(h)[1] as FakeRequest)).toBe(1);
    expect(sink).toHaveLength(1);
  });

  it('a run stopped right after a turn is recorded resumes without asking that turn again', async () => {
    h.fake.setScript(byTurn(happy));
    const p = supportPipeline('agent-crash');
    const stop = new AbortController();
    let turns = 0;
    const first = await h
      .runtime({
        hooks: {
          afterAppend: (_run, _seq, type) => {
            if (type === 'AGENT_TURN' && ++turns === 2) stop.abort();
          },
        },
      })
      .start(p, { input: { text: 'refund A1' }, runId: 'agent-crash', signal: stop.signal });
    expect(first.stopped).toBe('aborted');
    expect(modelCalls(h)).toHaveLength(2);
    expect(sink).toHaveLength(0);
    // A fresh runtime picks it up: the refund the second turn asked for runs, then the answer.
    const r = await h.runtime().resume(p, 'agent-crash');
    expect(r.status).toBe('completed');
    expect(modelCalls(h)).toHaveLength(3);
    expect(modelCalls(h).map(turnOf)).toEqual([0, 1, 2]);
    expect(sink).toHaveLength(1);
  });

  it('a turn lost with its process is recorded at its reservation, then asked again', async () => {
    h.fake.setScript(byTurn(happy));
    const p = supportPipeline('agent-lost');
    const stop = new AbortController();
    let attempts = 0;
    await h
      .runtime({
        hooks: {
          afterAppend: (_run, _seq, type) => {
            if (type === 'ATTEMPT' && ++attempts === 2) stop.abort();
          },
        },
      })
      .start(p, { input: { text: 'x' }, runId: 'agent-lost', signal: stop.signal });
    expect(modelCalls(h)).toHaveLength(1);
    const r = await h.runtime().resume(p, 'agent-lost');
    expect(r.status).toBe('completed');
    const events = await h.events('agent-lost');
    const lost = ofType(events, 'MODEL_ERROR').map((e) => e.event);
    expect(lost.map((e) => [e.kind, e.unconfirmed])).toEqual([['lost', true]]);
    expect(lost[0]?.costUsd).toBeGreaterThan(0);
    // The lost turn was never answered, so it is asked (once); the recorded one is not.
    expect(modelCalls(h).map(turnOf)).toEqual([0, 1, 2]);
    expect(sink).toHaveLength(1);
  });

  it('an effect tool recorded in the ledger before a crash is reused, not run again', async () => {
    h.fake.setScript(byTurn(happy));
    const p = supportPipeline('agent-ledger');
    // The process dies after the ledger recorded the refund, before TOOL_RESULT was appended.
    const record = h.store.ledger.record.bind(h.store.ledger);
    const crashing = {
      ...h.store,
      ledger: {
        claim: h.store.ledger.claim.bind(h.store.ledger),
        record: async (...a: Parameters<typeof record>) => {
          await record(...a);
          throw new Error('simulated crash after the ledger record');
        },
      },
    };
    await expect(
      h.runtime({ store: crashing }).start(p, { input: { text: 'x' }, runId: 'agent-ledger' }),
    ).rejects.toThrow('simulated crash');
    expect(sink).toHaveLength(1);
    const r = await h.runtime().resume(p, 'agent-ledger');
    expect(r.status).toBe('completed');
    expect(sink).toHaveLength(1);
    const results = ofType(await h.events('agent-ledger'), 'TOOL_RESULT').map((e) => e.event);
    expect(results.map((t) => [t.name, t.replayed])).toEqual([
      ['lookup', false],
      ['refund', true],
    ]);
    expect(results[1]?.result).toEqual({ refundId: 'r-A1' });
    expect(modelCalls(h).map(turnOf)).toEqual([0, 1, 2]);
  });

  it('a JSON fake script scripts tool-use turns too (plumbline fake-claude --script)', async () => {
    const { script } = fakeScriptFromJson({
      answers: happy,
      then: { kind: 'json', value: { reply: 'again', refunded: false } },
    });
    h.fake.setScript(script);
    const p = supportPipeline('agent-json-script');
    const r = await h.runtime().start(p, { input: { text: 'x' }, runId: 'agent-json-script' });
    expect(r.outputs.support).toEqual({ reply: 'Refunded $42', refunded: true });
    expect(sink).toHaveLength(1);
    expect(() => fakeScriptFromJson([{ kind: 'tool_use', calls: [{ input: {} }] }])).toThrow(
      'answers[0].calls[0].name',
    );
  });
});
