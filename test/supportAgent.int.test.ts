/**
 * The support-agent example end to end on the embedded store, with the fake Claude (the demo's
 * script) over the real SDK: a question is answered after a lookup; a small refund is paid by the
 * agent's effect tool; a large one is refused by the tool, waits durably for the approval signal
 * (a bad payload refused), and is paid by the effect step once approved — or not, if declined.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import support, {
  ORDERS,
  REFUND_APPROVAL_USD,
  payRefund,
  readRefunds,
} from '../examples/supportAgent.js';
import { DEMO_SUPPORT_MESSAGES, supportAnswer } from '../src/cli/demoAgentData.js';
import { prepare } from '../src/runtime/prepare.js';
import { sendSignal } from '../src/runtime/signals.js';
import type { FakeAction, FakeRequest } from '../src/testing/index.js';
import { harness, ofType, type Harness } from './helpers/harness.js';

const script = (req: FakeRequest): FakeAction => supportAnswer(req) ?? { kind: 'valid' };
const [question, small, large] = DEMO_SUPPORT_MESSAGES as [
  (typeof DEMO_SUPPORT_MESSAGES)[number],
  (typeof DEMO_SUPPORT_MESSAGES)[number],
  (typeof DEMO_SUPPORT_MESSAGES)[number],
];

let h: Harness;
let refunds: string;
const p = prepare(support);
beforeAll(async () => {
  h = await harness({ script, usage: { input_tokens: 300, output_tokens: 60 } });
});
afterAll(() => h.close());
beforeEach(() => {
  refunds = join(h.dir, `refunds-${Math.random().toString(36).slice(2)}.jsonl`);
  process.env.PLUMBLINE_REFUNDS = refunds;
});

/** The tools each turn asked for, in order, from the log. */
async function toolsCalled(runId: string): Promise<string[]> {
  return ofType(await h.events(runId), 'TOOL_RESULT').map(
    (e) => `${e.event.name}:${e.event.ok ? 'ok' : 'error'}`,
  );
}

describe('examples/supportAgent.ts', () => {
  it('answers a question after a read-only lookup; no refund', async () => {
    const r = await h.runtime().start(p, { input: question, runId: 'sa-question' });
    expect(r.status).toBe('completed');
    expect(await toolsCalled('sa-question')).toEqual(['lookupOrder:ok']);
    expect(r.outputs['refund-path']).toBe('none');
    expect(r.outputs.outcome).toMatchObject({ status: 'answered', orderId: 'A-1001' });
    expect(String((r.outputs.outcome as { reply: string }).reply)).toContain('arriving Thursday');
    expect(readRefunds(refunds)).toEqual([]);
  });

  it('pays a refund under the threshold with the effect tool, keyed by the tool call', async () => {
    const r = await h.runtime().start(p, { input: small, runId: 'sa-small' });
    expect(r.status).toBe('completed');
    expect(await toolsCalled('sa-small')).toEqual(['lookupOrder:ok', 'issueRefund:ok']);
    expect(r.outputs.outcome).toMatchObject({ status: 'refunded', refundUsd: 24 });
    const turns = ofType(await h.events('sa-small'), 'AGENT_TURN').map((e) => e.event);
    const call = turns[1]?.content.find((b) => b.type === 'tool_use');
    expect(readRefunds(refunds)).toEqual([
      {
        key: `tool:${call?.type === 'tool_use' ? call.id : '?'}`,
        runId: 'sa-small',
        orderId: 'A-1002',
        amountUsd: 24,
        via: 'tool',
        approvedBy: null,
        refundId: `R-tool:${call?.type === 'tool_use' ? call.id : '?'}`,
      },
    ]);
  });

  it('waits for approval above the threshold, refuses a bad payload, pays once approved', async () => {
    expect(ORDERS['A-1003']?.totalUsd).toBeGreaterThan(REFUND_APPROVAL_USD);
    const r = await h.runtime().start(p, { input: large, runId: 'sa-large' });
    expect(r.status).toBe('waiting');
    expect(r.waiting).toMatchObject({ step: 'approval', signal: 'approve' });
    // The tool refused the refund (it goes back to the model as an error); nothing was paid.
    expect(await toolsCalled('sa-large')).toEqual(['lookupOrder:ok', 'issueRefund:error']);
    const refused = ofType(await h.events('sa-large'), 'TOOL_RESULT')[1]?.event;
    expect(refused?.error).toContain(`over $${REFUND_APPROVAL_USD} need a person's approval`);
    expect(readRefunds(refunds)).toEqual([]);
    await expect(
      sendSignal(h.store, p, 'sa-large', 'approve', { ok: 'yes' }, { now: 1 }),
    ).rejects.toThrow('the run keeps waiting');
    await sendSignal(
      h.store,
      p,
      'sa-large',
      'approve',
      { ok: true, by: 'ana' },
      { by: 'ana', now: 2 },
    );
    const done = await h.runtime().drive(p, 'sa-large');
    expect(done.status).toBe('completed');
    expect(done.outputs.outcome).toMatchObject({
      status: 'refunded after approval',
      refundUsd: 240,
      approvedBy: 'ana',
    });
    expect(readRefunds(refunds)).toMatchObject([
      {
        key: 'refund-sa-large',
        orderId: 'A-1003',
        amountUsd: 240,
        via: 'approval',
        approvedBy: 'ana',
      },
    ]);
    // Every request reached the payments stand-in once: the refused tool call never got there.
    expect(readFileSync(`${refunds}.requests`, 'utf8').trim().split('\n')).toHaveLength(1);
  });

  it('a declined refund is not paid', async () => {
    const r = await h.runtime().start(p, { input: large, runId: 'sa-declined' });
    expect(r.status).toBe('waiting');
    await sendSignal(h.store, p, 'sa-declined', 'approve', { ok: false, by: 'bo' }, { now: 3 });
    const done = await h.runtime().drive(p, 'sa-declined');
    expect(done.status).toBe('completed');
    expect(done.outputs.refund).toBeNull();
    expect(done.outputs.outcome).toMatchObject({ status: 'refund declined', approvedBy: null });
    expect(readRefunds(refunds)).toEqual([]);
  });

  it('payRefund is idempotent by key: a repeated request returns the first receipt', async () => {
    const req = {
      key: 'k-1',
      runId: 'x',
      orderId: 'A-1002',
      amountUsd: 10,
      via: 'tool' as const,
      approvedBy: null,
    };
    const first = payRefund(req);
    expect(payRefund(req)).toEqual(first);
    expect(readRefunds(refunds)).toHaveLength(1);
    expect(() => payRefund({ ...req, key: 'k-2', amountUsd: 25 })).toThrow(
      'more than order A-1002 cost',
    );
  });
});
