/**
 * The check a store makes before summing an unfinished run's model outcomes without the log's
 * checked read (SQLite's rollup read): every figure `addOutcome` adds must be a finite number.
 */
import { describe, expect, it } from 'vitest';
import { outcomeFieldsOk } from '../src/store/costRollup.js';

describe('outcomeFieldsOk', () => {
  const ok = {
    model: 'claude-haiku-4-5',
    costUsd: 0.002,
    usage: { inputTokens: 10, outputTokens: 5, cacheReadTokens: 0 },
  };

  it('takes an outcome with its figures, and one without usage or cost (an error)', () => {
    expect(outcomeFieldsOk(ok)).toBe(true);
    expect(outcomeFieldsOk({ model: 'm', usage: null, unconfirmed: true, costUsd: 0.1 })).toBe(
      true,
    );
    expect(outcomeFieldsOk({ model: 'm' })).toBe(true);
  });

  it.each([
    ['no model', { ...ok, model: undefined }],
    ['a cost that is text', { ...ok, costUsd: '0.002' }],
    ['an infinite cost', { ...ok, costUsd: Infinity }],
    ['unconfirmed as text', { ...ok, unconfirmed: 'yes' }],
    ['usage without output tokens', { ...ok, usage: { inputTokens: 1 } }],
    [
      'cache tokens that are not numbers',
      { ...ok, usage: { ...ok.usage, cacheWrite1hTokens: 'x' } },
    ],
    ['usage that is a number', { ...ok, usage: 3 }],
    ['not an object', 'MODEL_RESPONSE'],
    ['null', null],
  ])('refuses %s', (_what, ev) => {
    expect(outcomeFieldsOk(ev)).toBe(false);
  });
});
