/**
 * The demo's support agent: the example on three messages (a question, a small refund the
 * agent's tool pays, a large one that waits for approval), showing each run's tool calls from
 * its log, the wait, and the outcome. The demo approves the waiting refund itself and says so:
 * in production a person sends the signal. Lines are indented as parts of the demo.
 */
import type { StoredEnvelope } from '../machines/events.js';
import type { Runtime, RunResult } from '../runtime/driver.js';
import type { Prepared } from '../runtime/prepare.js';
import { sendSignal } from '../runtime/signals.js';
import type { Store } from '../store/types.js';
import { out } from './context.js';
import { DEMO_SUPPORT_MESSAGES } from './demoAgentData.js';
import { usd } from './format.js';
import { exitCodeFor } from './main.js';

/** Who the demo's approval is recorded as (`by` in the SIGNAL event). */
const APPROVER = 'plumbline demo';

const clip = (s: string, n: number): string => (s.length > n ? `${s.slice(0, n - 1)}…` : s);
const dollars = (n: unknown): string => (typeof n === 'number' ? `$${n.toFixed(2)}` : '?');

/** Runs the support agent on each sample message; returns the worst exit code and the cost. */
export async function demoSupport(
  rt: Runtime,
  store: Store,
  support: Prepared,
  stamp: string,
  o: { refunds: string },
): Promise<{ code: number; costUsd: number }> {
  out('');
  out(
    'agent — examples/supportAgent.ts: resolve (Claude with tools lookupOrder, issueRefund ≤ $100) → a larger refund waits for approval → outcome',
  );
  let code = 0;
  let cost = 0;
  for (const m of DEMO_SUPPORT_MESSAGES) {
    const id = `${m.id}-${stamp}`;
    out(`  ${m.id} "${clip(m.text, 60)}"`);
    let r = await rt.start(support, { input: { ...m, id }, runId: id });
    out(`    → ${toolCalls(await store.log.read(id)).join(' → ') || 'no tool calls'}`);
    if (r.status === 'waiting' && r.waiting?.signal != null) {
      const proposed = r.outputs.resolve as { refundUsd?: number; orderId?: string } | undefined;
      const data = `{"ok":true,"by":"ana"}`;
      out(
        `    → waiting for signal '${r.waiting.signal}' (step ${r.waiting.step}): a refund of ${dollars(proposed?.refundUsd)} for ${proposed?.orderId ?? '?'} is over $100`,
      );
      out(
        `    approval: sent automatically by the demo (in production a person runs \`plumbline signal ${id} ${r.waiting.signal} --data '${data}'\`)`,
      );
      await sendSignal(
        store,
        support,
        id,
        r.waiting.signal,
        { ok: true, by: APPROVER },
        { by: APPROVER, now: Date.now() },
      );
      r = await rt.drive(support, id);
    }
    out(`    → ${outcomeText(r)}`);
    out(`    ${r.runId}: ${r.status}, ${usd(r.costUsd)}`);
    cost += r.costUsd;
    code = Math.max(code, exitCodeFor(r.status));
  }
  out(`  refunds paid go to ${o.refunds} (the payments stand-in: once per idempotency key)`);
  return { code, costUsd: cost };
}

/** Each tool call of the run's agent, from its log: `issueRefund(A-1002, $24.00) ok`. */
function toolCalls(events: readonly StoredEnvelope[]): string[] {
  const calls = new Map<string, string>();
  for (const e of events) {
    if (e.event.type === 'AGENT_TURN')
      for (const b of e.event.content)
        if (b.type === 'tool_use') {
          const i = b.input as { orderId?: string; amountUsd?: number };
          const args = [i.orderId, i.amountUsd !== undefined ? dollars(i.amountUsd) : undefined];
          calls.set(b.id, `${b.name}(${args.filter((a) => a !== undefined).join(', ')})`);
        }
  }
  const shown: string[] = [];
  for (const e of events)
    if (e.event.type === 'TOOL_RESULT') {
      const call = calls.get(e.event.toolUseId) ?? e.event.name;
      // "tool 'issueRefund' failed: refunds over $100 need a person's approval: …" → the reason.
      const reason = (e.event.error ?? '').replace(/^tool '[^']*' failed: /, '').split(':')[0];
      const why = clip(reason ?? '', 60);
      shown.push(e.event.ok ? `${call} ok` : `${call} refused (${why})`);
    }
  return [...shown, 'answer'];
}

/** The outcome step's status and reply, or why the run did not get there. */
function outcomeText(r: RunResult): string {
  const o = r.outputs.outcome as { status?: string; reply?: string; approvedBy?: string } | null;
  if (r.status !== 'completed' || o == null)
    return `${r.status}${r.error !== null ? `: ${r.error.message}` : ''}`;
  const paid = r.outputs.refund as { refundId?: string; amountUsd?: number } | null | undefined;
  if (paid != null)
    return `${o.status ?? '?'} by ${o.approvedBy ?? '?'}: ${dollars(paid.amountUsd)} paid by the refund step (receipt ${paid.refundId ?? '?'})`;
  return `${o.status ?? '?'}: "${clip(o.reply ?? '', 90)}"`;
}
