/**
 * A support agent: Claude answers a customer message with two tools — `lookupOrder` (read-only)
 * and `issueRefund` (an effect) — and a person approves any refund over $100 before it is paid.
 *
 *   resolve (agent: lookupOrder, issueRefund) → refund-path (route)
 *     approval: approval (wait for signal 'approve') → refund (effect) ─┐
 *     none:     (nothing: answered, or refunded by the tool already)  ─┴→ outcome
 *
 * Why this shape: the tool issues refunds up to the threshold itself, and refuses larger ones
 * (the refusal goes back to the model as a tool error, so the limit does not rest on the model
 * obeying its prompt). The agent then answers with the refund it proposes; a larger one takes the
 * `approval` branch, where the run waits durably — no process held — until a person sends
 * `plumbline signal <runId> approve --data '{"ok":true,"by":"ana"}'`; the `refund` effect then
 * pays it (or not, if declined or not approved within three days).
 *
 * Exactly once, honestly: the runtime records an effect's result and never runs it again once
 * recorded, but a process killed after the refund was paid and before its result was recorded
 * runs it again on resume (at least once). So `payRefund`, the stand-in for a payments API, is
 * idempotent by the idempotency key the runtime gives each call (`ctx.key`: `tool:<tool_use id>`
 * for the tool, `refund-<runId>` for the step): a repeated key returns the first receipt and
 * pays nothing. A real payments API does the same with the key (e.g. an Idempotency-Key header).
 * Its refunds file (PLUMBLINE_REFUNDS, default .plumbline/refunds.jsonl) is append-only and
 * de-duplicates nothing itself; every request is also appended to `<file>.requests`.
 *
 * The one definition of the example (examples/supportAgent.ts re-exports it): it lives under
 * src/ so the build compiles it into dist/, where `plumbline demo` loads it from a package.
 */
import { appendFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { z } from 'zod';
import { agent, definePipeline, effect, route, step, tool, wait } from '../index.js';

/** Refunds above this many dollars wait for a person's approval. */
export const REFUND_APPROVAL_USD = 100;

/** The approval signal's payload: `plumbline signal <runId> approve --data '{…}'`. */
export const Approval = z.object({ ok: z.boolean(), by: z.string().min(1) });

/** The sample shop's orders: what the read-only tool looks up. */
export const ORDERS: Readonly<Record<string, { item: string; totalUsd: number; status: string }>> =
  {
    'A-1001': { item: 'desk lamp', totalUsd: 35, status: 'shipped, arriving Thursday' },
    'A-1002': { item: 'USB-C cable', totalUsd: 24, status: 'delivered, reported damaged' },
    'A-1003': { item: 'office chair', totalUsd: 240, status: 'delivered, reported broken' },
  };

const Message = z.object({ id: z.string().min(1), from: z.string(), text: z.string().min(1) });

/** The agent's final answer: the reply, and the refund it proposes (0 for none). */
const Resolution = z.object({
  reply: z.string().min(1),
  orderId: z.string().nullable(),
  refundUsd: z.number().min(0),
  refundIssued: z.boolean(),
});
type Resolution = z.infer<typeof Resolution>;

/** The refunds file (one JSON line per refund paid). */
export const refundsPath = (): string =>
  process.env.PLUMBLINE_REFUNDS ?? join('.plumbline', 'refunds.jsonl');

/** A refund as the payments stand-in records it. */
export interface Refund {
  key: string;
  runId: string;
  orderId: string;
  amountUsd: number;
  via: 'tool' | 'approval';
  approvedBy: string | null;
  refundId: string;
}

/** The refunds paid so far. */
export function readRefunds(path = refundsPath()): Refund[] {
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Refund);
}

/**
 * The payments stand-in: pays a refund once per idempotency key (a repeated key gets the first
 * receipt back), so a call the runtime repeats after a crash pays nothing twice. Check then
 * append is enough here, where a run's lease lets one process drive it at a time; a real
 * payments API makes it atomic. The key is per call: a second refund the model asks for in a
 * later turn is a new call (guard per order in the tool if that matters to you).
 */
export function payRefund(r: Omit<Refund, 'refundId'>): { refundId: string; amountUsd: number } {
  const path = refundsPath();
  mkdirSync(dirname(path), { recursive: true });
  appendFileSync(`${path}.requests`, `${JSON.stringify({ key: r.key, runId: r.runId })}\n`);
  const order = ORDERS[r.orderId];
  if (order === undefined) throw new Error(`no order ${r.orderId}`);
  if (r.amountUsd > order.totalUsd)
    throw new Error(
      `refund $${r.amountUsd} is more than order ${r.orderId} cost ($${order.totalUsd})`,
    );
  const paid = readRefunds(path).find((x) => x.key === r.key);
  if (paid !== undefined) return { refundId: paid.refundId, amountUsd: paid.amountUsd };
  // The receipt is named by the key: the same request always gets the same receipt.
  const refundId = `R-${r.key}`;
  appendFileSync(path, `${JSON.stringify({ ...r, refundId })}\n`);
  return { refundId, amountUsd: r.amountUsd };
}

const lookupOrder = tool({
  description: 'Look an order up by id (e.g. A-1001): the item, its total in USD and its status.',
  input: z.object({ orderId: z.string() }),
  run: ({ orderId }) => {
    const order = ORDERS[orderId];
    if (order === undefined) throw new Error(`no order ${orderId}: ask the customer for its id`);
    return { orderId, ...order };
  },
});

const issueRefund = tool({
  description: `Refund an order to the customer's card (irreversible). Only up to $${REFUND_APPROVAL_USD}: for more, do not call it; answer with refundUsd set and refundIssued false, and a person approves it.`,
  input: z.object({ orderId: z.string(), amountUsd: z.number().positive() }),
  effect: true,
  run: ({ orderId, amountUsd }, ctx) => {
    if (amountUsd > REFUND_APPROVAL_USD)
      throw new Error(
        `refunds over $${REFUND_APPROVAL_USD} need a person's approval: answer with refundUsd ${amountUsd} and refundIssued false instead`,
      );
    return payRefund({
      key: ctx.key,
      runId: ctx.runId,
      orderId,
      amountUsd,
      via: 'tool',
      approvedBy: null,
    });
  },
});

const resolution = (outputs: Record<string, unknown>): Resolution => outputs.resolve as Resolution;
const approval = (outputs: Record<string, unknown>) =>
  (outputs.approval ?? null) as z.infer<typeof Approval> | null;

export default definePipeline({
  name: 'support',
  version: '1',
  input: Message,
  limits: { budgetUsd: 0.5, maxIterations: 40 },
  steps: [
    agent({
      name: 'resolve',
      model: 'claude-sonnet-4-6',
      system:
        'You are the support agent of a small online shop. Look the order up before you answer. ' +
        `You may refund up to $${REFUND_APPROVAL_USD} yourself with issueRefund; for more, propose ` +
        'it (refundUsd, refundIssued false) and tell the customer a colleague will approve it.',
      prompt: ({ input }) => {
        const m = input as z.infer<typeof Message>;
        return `Message ${m.id} from ${m.from}:\n\n${m.text}`;
      },
      tools: { lookupOrder, issueRefund },
      output: Resolution,
      maxTurns: 6,
    }),
    route({
      name: 'refund-path',
      choose: ({ outputs }) => {
        const r = resolution(outputs);
        return r.refundUsd > REFUND_APPROVAL_USD && !r.refundIssued ? 'approval' : 'none';
      },
      branches: {
        approval: [
          wait({
            name: 'approval',
            signal: 'approve',
            schema: Approval,
            timeoutMs: 3 * 24 * 3_600_000,
            // Not approved in three days: continue with a null approval (the refund is skipped).
            onTimeout: 'continue',
          }),
          effect({
            name: 'refund',
            key: ({ runId }) => `refund-${runId}`,
            skip: ({ outputs }) => {
              const a = approval(outputs);
              return a === null
                ? 'not approved within 3 days'
                : a.ok
                  ? false
                  : `declined by ${a.by}`;
            },
            run: ({ key, runId, outputs }) => {
              const r = resolution(outputs);
              return payRefund({
                key,
                runId,
                orderId: r.orderId ?? '',
                amountUsd: r.refundUsd,
                via: 'approval',
                approvedBy: approval(outputs)?.by ?? null,
              });
            },
          }),
        ],
        none: [],
      },
    }),
    step({
      name: 'outcome',
      run: ({ outputs }) => {
        const r = resolution(outputs);
        const a = approval(outputs);
        const paid = outputs.refund as { refundId: string } | null | undefined;
        const status = r.refundIssued
          ? 'refunded'
          : paid
            ? 'refunded after approval'
            : outputs['refund-path'] === 'approval'
              ? a === null
                ? 'refund not approved in time'
                : 'refund declined'
              : 'answered';
        return {
          status,
          reply: r.reply,
          orderId: r.orderId,
          refundUsd: r.refundUsd,
          approvedBy: a?.ok ? a.by : null,
        };
      },
    }),
  ],
});
