/**
 * The fake Claude's prompt cache: a request whose blocks carry `cache_control` reads the longest
 * prefix it cached before (same model, same text, within its TTL) and writes the rest up to its
 * last breakpoint, answering the usage fields the API does. Tokens of a block are counted as
 * half its UTF-8 bytes, rounded up (as `countByBytes` counts).
 */
import { createHash } from 'node:crypto';

/** The cache fields of a usage object, as the API spells them. */
export interface CacheUsage {
  cache_read_input_tokens: number;
  cache_creation_input_tokens: number;
  cache_creation: { ephemeral_5m_input_tokens: number; ephemeral_1h_input_tokens: number };
}

const TTL_MS: Readonly<Record<string, number>> = { '5m': 300_000, '1h': 3_600_000 };

/** A segment of the prompt ending at a breakpoint. */
interface Segment {
  text: string;
  ttl: '5m' | '1h';
}

/** A prompt cache keyed by model and prefix, expiring by `now()`. */
export class FakePromptCache {
  private readonly expiry = new Map<string, number>();

  constructor(private readonly now: () => number) {}

  /** The cache usage of `body`, or null when it carries no `cache_control` (nothing cached). */
  use(body: Record<string, unknown>): CacheUsage | null {
    const segments = segmentsOf(body);
    if (segments.length === 0) return null;
    const now = this.now();
    const base = JSON.stringify([body.model ?? null, body.tools ?? null]);
    const keys: string[] = [];
    const hash = createHash('sha256').update(base);
    for (const s of segments) keys.push(hash.update(`\u0000${s.text}`).copy().digest('hex'));
    let hit = -1;
    for (let i = keys.length - 1; i >= 0; i--) {
      if ((this.expiry.get(keys[i] ?? '') ?? 0) > now) {
        hit = i;
        break;
      }
    }
    const usage: CacheUsage = {
      cache_read_input_tokens: 0,
      cache_creation_input_tokens: 0,
      cache_creation: { ephemeral_5m_input_tokens: 0, ephemeral_1h_input_tokens: 0 },
    };
    segments.forEach((s, i) => {
      const tokens = Math.ceil(Buffer.byteLength(s.text, 'utf8') / 2);
      if (i <= hit) usage.cache_read_input_tokens += tokens;
      else {
        usage.cache_creation_input_tokens += tokens;
        usage.cache_creation[
          s.ttl === '1h' ? 'ephemeral_1h_input_tokens' : 'ephemeral_5m_input_tokens'
        ] += tokens;
      }
      // A read refreshes the entry; a write creates it.
      this.expiry.set(keys[i] ?? '', now + (TTL_MS[s.ttl] ?? 0));
    });
    return usage;
  }

  /** Forgets every entry. */
  clear(): void {
    this.expiry.clear();
  }
}

/** The text of `system` then the messages' blocks, cut after each block with `cache_control`. */
function segmentsOf(body: Record<string, unknown>): Segment[] {
  const blocks: unknown[] = [];
  const add = (content: unknown): void => {
    if (Array.isArray(content)) blocks.push(...(content as unknown[]));
    else if (typeof content === 'string') blocks.push({ type: 'text', text: content });
  };
  add(body.system);
  if (Array.isArray(body.messages))
    for (const m of body.messages as Array<{ content?: unknown }>) add(m.content);
  const segments: Segment[] = [];
  let text = '';
  for (const b of blocks) {
    const block = (b ?? {}) as { text?: unknown; cache_control?: { ttl?: unknown } | null };
    text += typeof block.text === 'string' ? block.text : JSON.stringify(b);
    if (block.cache_control) {
      segments.push({ text, ttl: block.cache_control.ttl === '1h' ? '1h' : '5m' });
      text = '';
    }
  }
  return segments;
}
