/**
 * The demo's prompt-cache line: what a run's model calls wrote to and read from the prompt
 * cache, in tokens and dollars, from the usage its log recorded (the fake Claude simulates the
 * cache as the API does: a request with `cache_control` reads the prefix cached before).
 */
import type { StoredEnvelope } from '../machines/events.js';
import type { LlmStep } from '../machines/pipeline.js';
import type { Prepared } from '../runtime/prepare.js';
import { usd } from './format.js';

const tokens = (n: number): string => n.toLocaleString('en-US');

/**
 * One line saying what the run's calls wrote to the prompt cache and read from it, priced at
 * each step's model (a read also shows what those tokens cost at the input price), or null
 * when no call used the cache.
 * @example cacheLine(prepared, events) // '  prompt cache: read 4,391 tokens $0.001317 (…)'
 */
export function cacheLine(prepared: Prepared, events: readonly StoredEnvelope[]): string | null {
  let written = 0;
  let writeUsd = 0;
  let read = 0;
  let readUsd = 0;
  let readAtInputUsd = 0;
  for (const { event: e } of events) {
    if (e.type !== 'MODEL_RESPONSE') continue;
    const step = prepared.pipeline.steps.find((s) => s.name === e.step);
    if (step?.kind !== 'llm') continue;
    const price = prepared.priceOf(step as LlmStep);
    const u = e.usage;
    written += u.cacheWrite5mTokens + u.cacheWrite1hTokens;
    writeUsd +=
      (u.cacheWrite5mTokens * price.cacheWrite5m + u.cacheWrite1hTokens * price.cacheWrite1h) / 1e6;
    read += u.cacheReadTokens;
    readUsd += (u.cacheReadTokens * price.cacheRead) / 1e6;
    readAtInputUsd += (u.cacheReadTokens * price.input) / 1e6;
  }
  const parts: string[] = [];
  if (written > 0) parts.push(`wrote ${tokens(written)} tokens ${usd(writeUsd)}`);
  if (read > 0)
    parts.push(
      `read ${tokens(read)} tokens ${usd(readUsd)} (${usd(readAtInputUsd)} at the input price)`,
    );
  return parts.length === 0 ? null : `  prompt cache: ${parts.join(', ')}`;
}
