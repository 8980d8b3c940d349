/**
 * Sample messages and a long document for the demo's route and map, and the fake-Claude answers
 * for them: a category picked from each message's words (so the route takes a different branch
 * per message), a chunk summary that is the chunk's first sentence (after a short delay, so the
 * map's fan-out is visible), and a reduce that lists the chunk summaries. Plausible, not clever:
 * the demo says these answers come from the fake Claude.
 */
import type { FakeAction, FakeRequest } from '../testing/fakeClaude.js';

/** Sample customer messages, one per branch of the router example. */
export const DEMO_MESSAGES = [
  {
    id: 'M-2001',
    from: 'cfo@bigco.com',
    text: 'We were charged twice for the March invoice. Please refund the duplicate payment.',
  },
  {
    id: 'M-2002',
    from: 'dev@shop.dev',
    text: 'The export button crashes the dashboard with an error 500 since yesterday.',
  },
  {
    id: 'M-2003',
    from: 'lee@example.org',
    text: 'Can I invite teammates who do not have an account yet?',
  },
];

const PARAGRAPHS = [
  'At 09:12 UTC checkout began returning HTTP 500 for every order. Alerts fired within two minutes and the on-call engineer opened an incident. Customers could browse the store but not pay.',
  'The first hypothesis was the payment provider, whose status page showed degraded service in one region. Switching traffic to the secondary provider did not help: the errors came from our own checkout service before any call left the building.',
  'Logs showed the checkout service failing to read its configuration. A deploy at 09:05 had shipped a new feature flag whose default value was an empty string where a number was expected, and the parser threw on every request.',
  'Rolling back the deploy was blocked because the rollback job used the same configuration parser and failed the same way. The team patched the flag value by hand in the configuration store at 09:48 and checkout recovered at 09:51.',
  'In total 39 minutes of checkout were lost. About 4,100 payment attempts failed; 62 percent of those customers retried successfully within the hour. Support received 212 tickets, most asking whether they had been charged.',
  'Nobody was charged for a failed attempt: the service failed before authorising payment. A few customers who retried quickly saw two pending authorisations in their bank app; those expired on their own within three days.',
  'Three changes follow. Configuration values are now validated against a schema in continuous integration. The rollback path no longer depends on the configuration it rolls back. Feature flags ship disabled, with their defaults tested.',
  'The incident review also found that the alert named the symptom but not the deploy that caused it. Alerts now link the most recent deploys of the failing service, which would have pointed at the cause in minutes instead of half an hour.',
];

/** A long document for the summariser: 8 paragraphs, cut at 400 characters: a chunk each. */
export const DEMO_DOCUMENT = {
  title: 'Checkout outage postmortem',
  text: PARAGRAPHS.join('\n\n'),
  chunkChars: 400,
};

/** The prompt's text (a string, or the text blocks of a cached prompt). */
function userText(req: FakeRequest): string {
  const messages = (req.body.messages ?? []) as Array<{ content: unknown }>;
  const content = messages[0]?.content;
  if (typeof content === 'string') return content;
  if (Array.isArray(content))
    return content
      .map((b: { text?: unknown }) => (typeof b.text === 'string' ? b.text : ''))
      .join('');
  return '';
}

const firstSentence = (s: string): string => (/^.*?[.!?](\s|$)/.exec(s.trim())?.[0] ?? s).trim();

/** Milliseconds the fake waits before a chunk summary: long enough to see 5 children at once. */
export const CHUNK_DELAY_MS = 150;

/**
 * The fake's answer to a request of the router or the summariser, or undefined for other
 * requests (the triage script answers those).
 */
export function shapesAnswer(req: FakeRequest): FakeAction | undefined {
  const t = userText(req);
  if (t.startsWith('Which team should handle this message')) {
    const body = t.split('\n\n')[1] ?? '';
    const category = /charged|refund|invoice/i.test(body)
      ? 'billing'
      : /crash|error|bug|broken/i.test(body)
        ? 'bug'
        : 'question';
    return {
      kind: 'json',
      value: { category, reason: `The message reads like a ${category} matter.` },
    };
  }
  if (t.startsWith('Write a one-line bug title')) {
    const line = t.split('\n')[1] ?? 'Bug';
    return { kind: 'json', value: { title: firstSentence(line).slice(0, 110), severity: 'high' } };
  }
  if (t.startsWith('Answer this customer')) {
    return {
      kind: 'json',
      value: {
        reply:
          'Yes: invite them by email from Settings → Team; they create an account on the way in.',
      },
    };
  }
  const part = /^Summarise part (\d+) of (\d+)[^\n]*\n\n([\s\S]*)$/.exec(t);
  if (part !== null) {
    return {
      kind: 'delay',
      ms: CHUNK_DELAY_MS,
      then: { kind: 'json', value: { summary: firstSentence(part[3] ?? '') } },
    };
  }
  if (t.startsWith('Combine these summaries')) {
    const parts = [...t.matchAll(/^Part \d+: (.*)$/gm)].map((m) => m[1] ?? '');
    return {
      kind: 'json',
      value: {
        summary: `${parts.length} parts: ${parts[0] ?? ''} … ${parts[parts.length - 1] ?? ''}`,
        keyPoints: parts.slice(0, 8).map((p) => p.slice(0, 100)),
      },
    };
  }
  return undefined;
}
