/**
 * Sample customer messages for the demo's support agent, and the fake-Claude answers that play
 * the agent: look the order up, try to refund it when the customer asks, and answer. Each turn
 * is decided from the request's conversation alone (the tool results in it), so the same
 * conversation always gets the same answer: a resumed run continues it exactly.
 */
import type { FakeAction, FakeRequest } from '../testing/fakeClaude.js';

/** Sample messages: a question, a small refund (the tool pays it), a large one (approval). */
export const DEMO_SUPPORT_MESSAGES = [
  { id: 'S-3001', from: 'kim@example.com', text: 'Where is my order A-1001? It has been a week.' },
  {
    id: 'S-3002',
    from: 'lee@example.org',
    text: 'The cable from order A-1002 arrived damaged. Can I get a refund?',
  },
  {
    id: 'S-3003',
    from: 'cfo@bigco.com',
    text: 'The office chair (order A-1003) broke on day two. I want a refund.',
  },
];

type Block = {
  type: string;
  id?: string;
  name?: string;
  input?: { amountUsd?: number };
  tool_use_id?: string;
  content?: unknown;
};
type Msg = { role: string; content: string | Block[] };

const blocks = (m: Msg | undefined): Block[] => (Array.isArray(m?.content) ? m.content : []);
const textOf = (m: Msg | undefined): string =>
  typeof m?.content === 'string'
    ? m.content
    : blocks(m)
        .map((b) => ((b as { text?: unknown }).text as string | undefined) ?? '')
        .join('');

const answer = (
  reply: string,
  orderId: string | null,
  refundUsd: number,
  refundIssued: boolean,
): FakeAction => ({ kind: 'json', value: { reply, orderId, refundUsd, refundIssued } });

const usd = (n: number): string => `$${n.toFixed(2)}`;

/**
 * The fake's answer to a turn of the support agent (a request offering `lookupOrder`), or
 * undefined for other requests.
 */
export function supportAnswer(req: FakeRequest): FakeAction | undefined {
  const tools = (req.body.tools ?? []) as Array<{ name?: string }>;
  if (!tools.some((t) => t.name === 'lookupOrder')) return undefined;
  const messages = (req.body.messages ?? []) as Msg[];
  const asked = textOf(messages[0]);
  const orderId = /\bA-\d{4}\b/.exec(asked)?.[0] ?? null;
  const wantsRefund = /refund|money back/i.test(asked);
  if (messages.length === 1)
    return orderId === null
      ? answer('Could you tell me your order number (it starts with A-)?', null, 0, false)
      : { kind: 'tool_use', calls: [{ name: 'lookupOrder', input: { orderId } }] };
  // The last turn's tool calls (by id) and their results, in the last user message.
  const calls = new Map(blocks(messages[messages.length - 2]).map((b) => [b.id ?? '', b] as const));
  const result = blocks(messages[messages.length - 1]).find((b) => b.type === 'tool_result');
  const call = calls.get(result?.tool_use_id ?? '');
  const tool = call?.name ?? '';
  const failed = (result as { is_error?: boolean } | undefined)?.is_error === true;
  const content = typeof result?.content === 'string' ? result.content : '';
  if (tool === 'lookupOrder') {
    if (failed) return answer(`I could not find order ${orderId ?? '?'}.`, orderId, 0, false);
    const order = JSON.parse(content) as { item: string; totalUsd: number; status: string };
    if (!wantsRefund)
      return answer(`Your ${order.item} (${orderId}) is ${order.status}.`, orderId, 0, false);
    return {
      kind: 'tool_use',
      text: `I will refund the ${order.item}.`,
      calls: [{ name: 'issueRefund', input: { orderId, amountUsd: order.totalUsd } }],
    };
  }
  if (tool === 'issueRefund') {
    const total = call?.input?.amountUsd ?? 0;
    if (failed)
      return answer(
        `A refund of ${usd(total)} needs a colleague's approval: you will hear from us within a day.`,
        orderId,
        total,
        false,
      );
    return answer(
      `Done: ${usd(total)} is refunded to your card; it shows in 3-5 days.`,
      orderId,
      total,
      true,
    );
  }
  return answer('Sorry, something went wrong on our side.', orderId, 0, false);
}
