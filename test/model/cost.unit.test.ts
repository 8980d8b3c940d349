import { describe, expect, it } from 'vitest';
import {
  addUsage,
  costUsd,
  estimateInputTokens,
  usageFromApi,
  worstCaseUsd,
  ZERO_USAGE,
} from '../../src/model/cost.js';
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
    schema: {},
    schemaName: 'out',
    mode: 'native',
  };

  it('estimates input tokens conservatively', () => {
    // chars: system 3 + "{}" 2 + "out" 3 + "hello" 5 = 13 → ceil(13/3) = 5; + 50 + 8 per message = 63
    expect(estimateInputTokens(request)).toBe(63);
  });

  it('over-estimates ordinary text (about 4 characters per token)', () => {
    const long = {
      ...request,
      messages: [{ role: 'user' as const, content: 'word '.repeat(4_000) }],
    };
    expect(estimateInputTokens(long)).toBeGreaterThan(20_000 / 4);
  });

  it('bounds the worst case: estimated input at input price + maxTokens at output price', () => {
    // 63 × 3 + 1,000 × 15 = 15,189 µ$
    expect(worstCaseUsd(request, priceFor('claude-sonnet-4-6'))).toBe(0.015189);
  });
});
