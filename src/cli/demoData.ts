/**
 * Sample tickets for the demo, and a fake-Claude script that answers them plausibly
 * (urgency from keywords), including one malformed first answer to show a re-ask.
 */
import type { FakeAction, FakeRequest } from '../testing/fakeClaude.js';
import { supportAnswer } from './demoAgentData.js';
import { shapesAnswer } from './demoShapesData.js';

/** Sample support tickets. */
export const DEMO_TICKETS = [
  {
    id: 'T-1001',
    from: 'ops@acme.io',
    subject: 'Checkout is down',
    body: 'Since 09:12 every checkout returns a 500. Production outage, customers cannot pay.',
  },
  {
    id: 'T-1002',
    from: 'kim@example.com',
    subject: 'Invoice question',
    body: 'Could you resend my October invoice? No rush.',
  },
  {
    id: 'T-1003',
    from: 'dev@shop.dev',
    subject: 'Webhook retries duplicate orders',
    body: 'Your webhook retried and we got duplicate orders. This is a bug and it is costing us money.',
  },
  {
    id: 'T-1004',
    from: 'lee@example.org',
    subject: 'Feature idea',
    body: 'It would be nice to export reports as CSV.',
  },
  {
    id: 'T-1005',
    from: 'cfo@bigco.com',
    subject: 'Charged twice',
    body: 'We were charged twice this month. Please refund urgently.',
  },
];

function text(req: FakeRequest): string {
  // The ticket itself: the prompt's instructions after it mention words like "down".
  return JSON.stringify(req.body.messages ?? '').split('urgency:')[0] ?? '';
}

let malformedSent = false;

/**
 * Answers classification and draft requests from the ticket's words, the router's and the
 * summariser's requests (demoShapesData.ts), and the support agent's turns (demoAgentData.ts).
 */
export function demoScript(req: FakeRequest): FakeAction {
  const shaped = shapesAnswer(req) ?? supportAnswer(req);
  if (shaped !== undefined) return shaped;
  const t = text(req);
  if (JSON.stringify(req.body.messages ?? '').includes('Classify this ticket')) {
    if (
      t.includes('duplicate orders') &&
      !malformedSent &&
      !JSON.stringify(req.body.messages ?? '').includes('previous answer')
    ) {
      malformedSent = true;
      return {
        kind: 'text',
        text: 'Sure! Here is the classification: {"category":"bug","urgency":4}',
      };
    }
    const urgency = /outage|down|500/i.test(t)
      ? 5
      : /twice|duplicate|urgent/i.test(t)
        ? 4
        : /invoice/i.test(t)
          ? 2
          : 1;
    const category = /charged|invoice|refund/i.test(t)
      ? 'billing'
      : /outage|down/i.test(t)
        ? 'outage'
        : /bug|duplicate/i.test(t)
          ? 'bug'
          : /idea|nice/i.test(t)
            ? 'other'
            : 'question';
    return {
      kind: 'json',
      value: { category, urgency, summary: `Customer reports: ${category} (urgency ${urgency}).` },
    };
  }
  return {
    kind: 'json',
    value: {
      reply: 'Thanks for reporting this — we are on it and will update you within the hour.',
      escalate: true,
    },
  };
}
