/**
 * Rate-limit settings from the command line and the environment: flags first, then
 * PLUMBLINE_RATE_LIMITS; a malformed value is refused with the fix.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { rateLimitsFrom } from '../src/cli/rateOptions.js';

const saved = process.env.PLUMBLINE_RATE_LIMITS;
afterEach(() => {
  if (saved === undefined) delete process.env.PLUMBLINE_RATE_LIMITS;
  else process.env.PLUMBLINE_RATE_LIMITS = saved;
});

describe('rate-limit options', () => {
  it('off unless asked; --rate-limits learns; --rpm/--itpm/--otpm set levels for every model', () => {
    delete process.env.PLUMBLINE_RATE_LIMITS;
    expect(rateLimitsFrom({})).toBeUndefined();
    expect(rateLimitsFrom({ rateLimits: true })).toEqual({});
    expect(rateLimitsFrom({ rpm: 50, itpm: 40_000 })).toEqual({
      levels: { '*': { requests: 50, inputTokens: 40_000 } },
    });
    expect(rateLimitsFrom({ otpm: 8_000 })).toEqual({ levels: { '*': { outputTokens: 8_000 } } });
  });

  it('PLUMBLINE_RATE_LIMITS: on, off, or JSON levels by model; anything else names the fix', () => {
    process.env.PLUMBLINE_RATE_LIMITS = 'on';
    expect(rateLimitsFrom()).toEqual({});
    process.env.PLUMBLINE_RATE_LIMITS = 'off';
    expect(rateLimitsFrom()).toBeUndefined();
    process.env.PLUMBLINE_RATE_LIMITS =
      '{"*":{"requests":50},"claude-opus-4-8":{"outputTokens":8000}}';
    expect(rateLimitsFrom()).toEqual({
      levels: { '*': { requests: 50 }, 'claude-opus-4-8': { outputTokens: 8_000 } },
    });
    for (const bad of ['yes', '{"*":{"rpm":50}}', '{"*":{"requests":-1}}', '[1]'])
      expect(() => {
        process.env.PLUMBLINE_RATE_LIMITS = bad;
        rateLimitsFrom();
      }, bad).toThrow(/PLUMBLINE_RATE_LIMITS must be on, off, or JSON levels/);
  });
});
