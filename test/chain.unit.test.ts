/**
 * The envelope hash chain: a linked log checks, any edit or deletion is named by seq, old logs
 * (no `prev`) pass, a log that stops chaining does not, and the hash survives a JSON round trip.
 */
import { describe, expect, it } from 'vitest';
import {
  GENESIS,
  canonicalJson,
  checkChain,
  envelopeHash,
  link,
  nextPrev,
  type Chainable,
} from '../src/machines/chain.js';
import type { NewEnvelope } from '../src/machines/events.js';
import { started, stepDone } from './helpers/envelopes.js';

function log(n: number): NewEnvelope[] {
  return [started(), ...Array.from({ length: n - 1 }, (_, i) => stepDone(i + 1))];
}

/** Stored form: seq set, JSON round trip (as the store gives it back). */
function stored(envs: NewEnvelope[]): Chainable[] {
  return envs.map((e, i) => ({ ...(JSON.parse(JSON.stringify(e)) as NewEnvelope), seq: i + 1 }));
}

describe('checkChain', () => {
  it('accepts a linked log, and seq 1 carries the genesis hash', () => {
    const chained = stored(link(log(8), GENESIS, 1));
    expect(chained[0]?.prev).toBe(GENESIS);
    expect(new Set(chained.map((e) => e.prev)).size).toBe(8);
    expect(checkChain(chained)).toEqual({ ok: true });
  });

  it('accepts a log written before the chain (no prev at all)', () => {
    expect(checkChain(stored(log(5)))).toEqual({ ok: true });
  });

  it('names the seq after an edited event', () => {
    const chained = stored(link(log(8), GENESIS, 1));
    (chained[5]!.event as { output: unknown }).output = { n: 99 };
    expect(checkChain(chained)).toEqual({
      ok: false,
      seq: 7,
      reason: 'seq 7: prev hash does not match seq 6 — event 6 or 7 was edited',
    });
  });

  it('names an edited state, time or prev', () => {
    const a = stored(link(log(5), GENESIS, 1));
    (a[1]!.state as { costUsd: number }).costUsd = 1;
    expect(checkChain(a)).toMatchObject({ ok: false, seq: 3 });
    const b = stored(link(log(5), GENESIS, 1));
    b[2]!.at += 1;
    expect(checkChain(b)).toMatchObject({ ok: false, seq: 4 });
    const c = stored(link(log(5), GENESIS, 1));
    c[3]!.prev = envelopeHash(undefined, c[2]!);
    expect(checkChain(c)).toMatchObject({ ok: false, seq: 4 });
    const d = stored(link(log(3), GENESIS, 1));
    d[0]!.prev = 'f'.repeat(64);
    expect(checkChain(d)).toMatchObject({ ok: false, seq: 1, reason: /genesis/ });
  });

  it('names a deleted event, even with seqs renumbered', () => {
    const chained = stored(link(log(6), GENESIS, 1));
    const gap = [...chained.slice(0, 3), ...chained.slice(4)];
    expect(checkChain(gap)).toMatchObject({ ok: false, seq: 4, reason: /event 4 is missing/ });
    const renumbered = gap.map((e, i) => ({ ...e, seq: i + 1 }));
    expect(checkChain(renumbered)).toMatchObject({ ok: false, seq: 4 });
  });

  it('refuses a log that stops chaining once it began, accepts one that begins late', () => {
    const chained = stored(link(log(5), GENESIS, 1));
    delete chained[3]!.prev;
    expect(checkChain(chained)).toMatchObject({
      ok: false,
      seq: 4,
      reason: /no prev hash although the chain began at seq 1/,
    });
    // An old run resumed by a chaining writer: the chain starts at the first new event.
    const old = stored(log(3));
    const tail = link([stepDone(3), stepDone(4)], nextPrev(old[2]), 4);
    expect(checkChain([...old, ...stored([...log(3), ...tail]).slice(3)])).toEqual({ ok: true });
  });

  it('hashes the writer envelope and its stored form alike (defaults, undefined, key order)', () => {
    const env: Chainable = {
      seq: 2,
      at: 5,
      // `issues`, `text` and `durationMs` have defaults; `output` is undefined.
      event: {
        type: 'MODEL_RESPONSE',
        step: 's',
        attempt: 1,
        requestId: null,
        model: 'm',
        stopReason: 'end_turn',
        usage: { inputTokens: 1, outputTokens: 2 },
        costUsd: 0,
        verdict: 'invalid',
        output: undefined,
      },
      state: { value: { s: 'ready' }, status: 'running', step: 's', costUsd: 0 },
    };
    const round = JSON.parse(
      JSON.stringify({
        ...env,
        event: {
          issues: [],
          text: null,
          durationMs: 0,
          ...(env.event as object),
          usage: {
            cacheWrite1hTokens: 0,
            cacheWrite5mTokens: 0,
            cacheReadTokens: 0,
            outputTokens: 2,
            inputTokens: 1,
          },
        },
      }),
    ) as Chainable;
    expect(envelopeHash(GENESIS, round)).toBe(envelopeHash(GENESIS, env));
    expect(envelopeHash(GENESIS, env)).toMatch(/^[0-9a-f]{64}$/);
    expect(envelopeHash(undefined, env)).not.toBe(envelopeHash(GENESIS, env));
    expect(envelopeHash(GENESIS, { ...env, seq: 3 })).not.toBe(envelopeHash(GENESIS, env));
  });

  it('canonicalJson sorts keys at every depth and follows JSON.stringify otherwise', () => {
    expect(canonicalJson({ b: 1, a: { d: [2, { z: 1, y: undefined }], c: new Date(0) } })).toBe(
      '{"a":{"c":"1970-01-01T00:00:00.000Z","d":[2,{"z":1}]},"b":1}',
    );
  });
});
