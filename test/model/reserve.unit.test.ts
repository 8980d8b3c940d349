import { describe, expect, it } from 'vitest';
import { estimateInputTokens, reservedForCount } from '../../src/model/cost.js';
import { Lru } from '../../src/model/lru.js';
import { reserveInputTokens } from '../../src/model/reserve.js';
import type { ModelClient, ModelRequest } from '../../src/model/types.js';

const request: ModelRequest = {
  model: 'claude-haiku-4-5',
  messages: [{ role: 'user', content: '漢字 😀 \u0000' }],
  maxTokens: 100,
  schema: { type: 'object', properties: { note: { type: 'string' } } },
  schemaName: 'note',
  mode: 'native',
};

const calling: ModelClient['call'] = () => Promise.reject(new Error('not called'));

describe('reserveInputTokens', () => {
  it('reserves the count + margin when the client counts', async () => {
    const seen: ModelRequest[] = [];
    const client: ModelClient = {
      call: calling,
      countTokens: (r) => {
        seen.push(r);
        return Promise.resolve(1_000);
      },
    };
    expect(await reserveInputTokens(() => client, request)).toBe(reservedForCount(1_000));
    expect(reservedForCount(1_000)).toBe(1_066);
    expect(seen).toEqual([request]);
  });

  it.each<[string, () => ModelClient]>([
    ['a client without countTokens', () => ({ call: calling })],
    [
      'a count that failed (null)',
      () => ({ call: calling, countTokens: () => Promise.resolve(null) }),
    ],
    [
      'a count that rejects',
      () => ({ call: calling, countTokens: () => Promise.reject(new Error('x')) }),
    ],
    [
      'a count that throws',
      () => ({
        call: calling,
        countTokens: () => {
          throw new Error('x');
        },
      }),
    ],
    [
      'a count that is not a whole number',
      () => ({ call: calling, countTokens: () => Promise.resolve(1.5) }),
    ],
    ['a negative count', () => ({ call: calling, countTokens: () => Promise.resolve(-1) })],
    [
      'no model configured',
      () => {
        throw new Error('no model client is configured');
      },
    ],
  ])('falls back to the byte bound for %s', async (_, client) => {
    expect(await reserveInputTokens(client, request)).toBe(estimateInputTokens(request));
  });
});

describe('Lru', () => {
  it('drops the least recently used beyond its capacity', () => {
    const lru = new Lru<number>(2);
    lru.set('a', 1);
    lru.set('b', 2);
    expect(lru.get('a')).toBe(1); // a is now the most recent
    lru.set('c', 3);
    expect(lru.get('b')).toBeUndefined();
    expect(lru.get('a')).toBe(1);
    expect(lru.get('c')).toBe(3);
    expect(lru.size).toBe(2);
  });

  it('deleteIf removes only the value it was given', () => {
    const lru = new Lru<object>(4);
    const first = {};
    const second = {};
    lru.set('k', first);
    lru.set('k', second);
    lru.deleteIf('k', first);
    expect(lru.get('k')).toBe(second);
    lru.deleteIf('k', second);
    expect(lru.get('k')).toBeUndefined();
  });

  it('refuses a capacity below 1', () => {
    expect(() => new Lru(0)).toThrow(RangeError);
  });
});
