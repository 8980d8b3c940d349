import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  addUsage,
  costUsd,
  estimateInputTokens,
  overrunUsd,
  REQUEST_OVERHEAD_TOKENS,
  reservedForCount,
  usageFromApi,
  utf8Bytes,
  worstCaseUsd,
  ZERO_USAGE,
} from '../../src/model/cost.js';
import { buildParams } from '../../src/model/anthropic.js';
import { priceFor } from '../../src/model/prices.js';
import type { ModelRequest } from '../../src/model/types.js';

const usage = {
  inputTokens: 1_234,
  outputTokens: 567,
  cacheReadTokens: 20_000,
  cacheWrite5mTokens: 3_000,
  cacheWrite1hTokens: 1_500,
};

describe('costUsd', () => {
  it('prices every field once (Sonnet 4.6: 3 / 3.75 / 6 / 0.30 / 15 per MTok)', () => {
    // input    1,234 × 3     =  3,702
    // write5m  3,000 × 3.75  = 11,250
    // write1h  1,500 × 6     =  9,000
    // read    20,000 × 0.30  =  6,000
    // output     567 × 15    =  8,505
    // total                  = 38,457 µ$ → $0.038457
    expect(costUsd(usage, priceFor('claude-sonnet-4-6'))).toBe(0.038457);
  });

  it('prices every field once (Opus 4.5: 5 / 6.25 / 10 / 0.50 / 25 per MTok)', () => {
    // 1,234×5 = 6,170; 3,000×6.25 = 18,750; 1,500×10 = 15,000; 20,000×0.5 = 10,000;
    // 567×25 = 14,175; total 64,095 µ$ → $0.064095
    expect(costUsd(usage, priceFor('claude-opus-4-5'))).toBe(0.064095);
  });

  it('prices Haiku 4.5 (1 / 1.25 / 2 / 0.10 / 5 per MTok)', () => {
    // 1,234 + 3,750 + 3,000 + 2,000 + 2,835 = 12,819 µ$
    expect(costUsd(usage, priceFor('claude-haiku-4-5'))).toBe(0.012819);
  });

  it('rounds away float noise', () => {
    // 3 × 0.1 is 0.30000000000000004 in floating point; the cost is 0.3 µ$.
    const reads = { ...ZERO_USAGE, cacheReadTokens: 3 };
    expect(costUsd(reads, priceFor('claude-haiku-4-5'))).toBe(3e-7);
    expect(costUsd(ZERO_USAGE, priceFor('claude-haiku-4-5'))).toBe(0);
  });
});

describe('usageFromApi', () => {
  it('takes cache writes from the cache_creation breakdown', () => {
    const u = usageFromApi({
      input_tokens: 1_234,
      output_tokens: 567,
      cache_read_input_tokens: 20_000,
      cache_creation_input_tokens: 4_500,
      cache_creation: { ephemeral_5m_input_tokens: 3_000, ephemeral_1h_input_tokens: 1_500 },
    });
    expect(u).toEqual(usage);
  });

  it('counts cache_creation_input_tokens as 5-minute writes when the breakdown is absent', () => {
    const u = usageFromApi({
      input_tokens: 10,
      output_tokens: 5,
      cache_creation_input_tokens: 4_500,
      cache_creation: null,
    });
    expect(u).toEqual({
      inputTokens: 10,
      outputTokens: 5,
      cacheReadTokens: 0,
      cacheWrite5mTokens: 4_500,
      cacheWrite1hTokens: 0,
    });
  });

  it('never double counts: writes add up to cache_creation_input_tokens', () => {
    const u = usageFromApi({
      input_tokens: 0,
      output_tokens: 0,
      cache_creation_input_tokens: 5_000,
      cache_creation: { ephemeral_1h_input_tokens: 1_500 },
    });
    expect(u.cacheWrite5mTokens + u.cacheWrite1hTokens).toBe(5_000);
    expect(u).toMatchObject({ cacheWrite5mTokens: 3_500, cacheWrite1hTokens: 1_500 });
  });

  it('maps nulls and absences to zero', () => {
    expect(usageFromApi(null)).toEqual(ZERO_USAGE);
    expect(
      usageFromApi({
        input_tokens: 7,
        output_tokens: 3,
        cache_creation_input_tokens: null,
        cache_read_input_tokens: null,
      }),
    ).toEqual({ ...ZERO_USAGE, inputTokens: 7, outputTokens: 3 });
  });

  it('adds usages field by field', () => {
    expect(addUsage(usage, usage)).toEqual({
      inputTokens: 2_468,
      outputTokens: 1_134,
      cacheReadTokens: 40_000,
      cacheWrite5mTokens: 6_000,
      cacheWrite1hTokens: 3_000,
    });
  });
});

describe('estimates', () => {
  const request: ModelRequest = {
    model: 'claude-sonnet-4-6',
    system: 'abc',
    messages: [{ role: 'user', content: 'hello' }],
    maxTokens: 1_000,
    schema: { type: 'object', properties: {}, additionalProperties: false },
    schemaName: 'out',
    mode: 'native',
  };

  it('bounds input tokens by the UTF-8 bytes of the body sent, plus the fixed overhead', () => {
    const body = JSON.stringify(buildParams(request));
    expect(estimateInputTokens(request)).toBe(utf8(body) + REQUEST_OVERHEAD_TOKENS);
  });

  it('bounds ordinary text (about 4 characters per token)', () => {
    const long = {
      ...request,
      messages: [{ role: 'user' as const, content: 'word '.repeat(4_000) }],
    };
    expect(estimateInputTokens(long)).toBeGreaterThan(20_000);
  });

  it('bounds the worst case: input bound at input price + maxTokens at output price', () => {
    const tokens = estimateInputTokens(request);
    expect(worstCaseUsd(request, priceFor('claude-sonnet-4-6'))).toBe(
      (tokens * 3 + 1_000 * 15) / 1e6,
    );
    // A counted reservation replaces the bound.
    expect(worstCaseUsd(request, priceFor('claude-sonnet-4-6'), 1_000)).toBe(0.018);
  });
});

/** The estimate before the byte bound: characters ÷ 3 plus fixed overheads. */
function oldEstimate(r: ModelRequest): number {
  let chars = (r.system ?? '').length + JSON.stringify(r.schema).length + r.schemaName.length;
  for (const m of r.messages) chars += m.content.length;
  return Math.ceil(chars / 3) + 50 + 8 * r.messages.length;
}

function utf8(s: string): number {
  return Buffer.byteLength(s, 'utf8');
}

describe('the input bound holds for text that tokenises densely', () => {
  const control = Array.from({ length: 5_000 }, (_, i) => String.fromCharCode(1 + (i % 31))).join(
    '',
  );
  const cases: Array<[string, string]> = [
    ['5,000 NUL characters', '\u0000'.repeat(5_000)],
    ['control characters', control],
    ['CJK', '漢字仮名交じり文'.repeat(600)],
    ['emoji', '😀🎉👩‍👩‍👧‍👦🏳️‍🌈'.repeat(300)],
    ['mixed', `a\u0000漢😀\u0007é`.repeat(800)],
  ];
  const ask = (content: string, mode: 'native' | 'tool' = 'native'): ModelRequest => ({
    model: 'claude-haiku-4-5',
    system: content.slice(0, 500),
    messages: [{ role: 'user', content }],
    maxTokens: 10,
    schema: { type: 'object', properties: { note: { type: 'string' } }, required: ['note'] },
    schemaName: 'note',
    mode,
  });

  it.each(cases)('%s: bound ≥ UTF-8 bytes of the prompt, where chars ÷ 3 fell short', (_, text) => {
    const r = ask(text);
    const bytes = utf8(text) + utf8(r.system ?? '');
    // A token is at least one byte, so the bytes of the text bound its tokens.
    expect(estimateInputTokens(r)).toBeGreaterThanOrEqual(bytes);
    expect(oldEstimate(r)).toBeLessThan(bytes);
  });

  it.each(cases)('%s: bound ≥ UTF-8 bytes of the whole body, native and tool mode', (_, text) => {
    for (const mode of ['native', 'tool'] as const) {
      const r = ask(text, mode);
      expect(estimateInputTokens(r)).toBeGreaterThanOrEqual(utf8(JSON.stringify(buildParams(r))));
    }
  });

  it('counts the schema as sent, after the SDK moves constraints into descriptions', () => {
    const r: ModelRequest = {
      ...ask('x'),
      schema: {
        type: 'object',
        properties: {
          tags: { type: 'array', items: { type: 'string', pattern: '^"\\\\"+$' }, minItems: 5 },
          n: { type: 'integer', minimum: 3, maximum: 99 },
        },
      },
    };
    const sent = buildParams(r).output_config?.format;
    expect(JSON.stringify(sent).length).toBeGreaterThan(JSON.stringify(r.schema).length);
    expect(estimateInputTokens(r)).toBeGreaterThanOrEqual(
      utf8(JSON.stringify(buildParams(r))) + REQUEST_OVERHEAD_TOKENS,
    );
  });
});

describe('utf8Bytes', () => {
  it.each(['', 'abc', '\u0000\u0007\u001f', 'é', '漢字', '😀', '👩‍👩‍👧‍👦', 'a\u0000漢😀é'])(
    'equals the UTF-8 length of %j',
    (s) => {
      expect(utf8Bytes(s)).toBe(Buffer.byteLength(s, 'utf8'));
    },
  );

  it('equals the length of the bytes sent (TextEncoder), lone surrogates included', () => {
    const unit = fc.oneof(
      fc.integer({ min: 0, max: 0x7f }),
      fc.integer({ min: 0x80, max: 0xffff }),
      fc.integer({ min: 0xd800, max: 0xdfff }),
    );
    const text = fc.array(unit, { maxLength: 12 }).map((u) => String.fromCharCode(...u));
    const enc = new TextEncoder();
    fc.assert(
      fc.property(text, (s) => utf8Bytes(s) === enc.encode(s).length),
      { numRuns: 2000 },
    );
  });

  it('counts a lone surrogate as U+FFFD (3 bytes)', () => {
    expect(utf8Bytes('\ud800')).toBe(3);
    expect(utf8Bytes('a\udc00b')).toBe(5);
  });
});

describe('reconciliation', () => {
  it('reserves a counted input with a margin', () => {
    expect(reservedForCount(0)).toBe(16);
    expect(reservedForCount(10_000)).toBe(10_516);
  });

  it('measures how far an actual cost went over its reservation', () => {
    expect(overrunUsd(0.01, 0.009)).toBe(0);
    expect(overrunUsd(0.01, 0.01)).toBe(0);
    expect(overrunUsd(0.01, 0.0144)).toBe(0.0044);
  });
});
