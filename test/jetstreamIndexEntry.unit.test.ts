/**
 * The JetStream run index entry is checked by hand on read (`parseIndexEntry`), so the read
 * verbs start without zod (issue 14). What foldIndex writes comes back unchanged through JSON;
 * older entries (no costs, no parent) are accepted; unknown fields are dropped; each malformed
 * field is refused with its path, as the zod schema it replaces did.
 */
import { describe, expect, it } from 'vitest';
import type { StoredEnvelope } from '../src/machines/events.js';
import { foldIndex, parseIndexEntry, type Located } from '../src/store/jetstreamIndex.js';
import { outcome, started, stepDone } from './helpers/envelopes.js';

/** The entry foldIndex builds for a child run with a cost, as JSON would carry it. */
function written(): Record<string, unknown> {
  const head = started('p', 1_000);
  const first = {
    ...head,
    event: { ...head.event, parent: { runId: 'parent-1', step: 'each', part: 2 } },
  };
  const envs = [first, outcome(1_100, 0.25, 'claude-haiku-4-5'), stepDone(2, 'completed', 0.25)];
  const located: Located[] = envs.map((e, i) => ({
    env: { ...e, runId: 'r-1', seq: i + 1 } as StoredEnvelope,
    streamSeq: 10 + i,
  }));
  return JSON.parse(JSON.stringify(foldIndex('r-1', undefined, located))) as Record<
    string,
    unknown
  >;
}

/** `written()` with one field replaced (a dotted path; `undefined` deletes it). */
function withField(path: string, value: unknown): Record<string, unknown> {
  const entry = written();
  const keys = path.split('.');
  let o = entry as Record<string, unknown>;
  for (const k of keys.slice(0, -1)) o = o[k] as Record<string, unknown>;
  const last = keys[keys.length - 1] as string;
  if (value === undefined) delete o[last];
  else o[last] = value;
  return entry;
}

describe('parseIndexEntry', () => {
  it('returns what foldIndex wrote, through JSON', () => {
    const raw = written();
    const r = parseIndexEntry(raw);
    expect(r).toEqual({ ok: true, entry: raw });
    if (!r.ok) return;
    expect(r.entry.summary.parent).toEqual({ runId: 'parent-1', step: 'each', part: 2 });
    expect(r.entry.summary.status).toBe('completed');
    expect(Object.keys(r.entry.costs ?? {})).toHaveLength(1);
  });

  it('accepts entries written before costs, parents and unconfirmed totals', () => {
    let raw = withField('costs', undefined);
    for (const f of ['costFrom', 'unconfirmedUsd', 'summary.parent']) raw = withFieldOf(raw, f);
    expect(Object.keys(raw).sort()).toEqual([
      'firstStreamSeq',
      'lastStreamSeq',
      'marks',
      'summary',
      'v',
    ]);
    const r = parseIndexEntry(raw);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect('costs' in r.entry).toBe(false);
    expect('parent' in r.entry.summary).toBe(false);
  });

  it('drops unknown fields, as the zod schema did', () => {
    const raw = withField('summary.extra', 'x');
    raw.later = 1;
    const r = parseIndexEntry(raw);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect('extra' in r.entry.summary).toBe(false);
    expect('later' in r.entry).toBe(false);
  });

  it.each([
    ['v', 2, 'v: expected 1'],
    ['summary', 'x', 'summary: expected an object'],
    ['summary.runId', 7, 'summary.runId: expected a string'],
    ['summary.module', 3, 'summary.module: expected a string or null'],
    ['summary.status', 'done', 'summary.status: expected one of running, completed'],
    ['summary.costUsd', '0.1', 'summary.costUsd: expected a number'],
    ['summary.lastSeq', -1, 'summary.lastSeq: expected a non-negative integer'],
    ['summary.lastSeq', 1.5, 'summary.lastSeq: expected a non-negative integer'],
    ['summary.endedAt', undefined, 'summary.endedAt: expected a number or null'],
    ['summary.parent.part', -1, 'summary.parent.part: expected a non-negative integer'],
    ['summary.parent.step', null, 'summary.parent.step: expected a string'],
    ['firstStreamSeq', 0, 'firstStreamSeq: expected a positive integer'],
    ['lastStreamSeq', undefined, 'lastStreamSeq: expected a positive integer'],
    ['marks', {}, 'marks: expected an array'],
    ['marks.0', 0, 'marks.0: expected a positive integer'],
    ['costs', [], 'costs: expected an object'],
    ['costFrom', -2, 'costFrom: expected a non-negative integer'],
    ['unconfirmedUsd', 'x', 'unconfirmedUsd: expected a number'],
  ])('refuses %s = %j, naming it', (path, value, message) => {
    const r = parseIndexEntry(withField(path, value));
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.issues).toContain(message);
  });

  it('refuses a cost list holding something else than numbers', () => {
    const raw = written();
    const costs = raw.costs as Record<string, unknown[]>;
    const key = Object.keys(costs)[0] as string;
    (costs[key] as unknown[])[0] = 'x';
    const r = parseIndexEntry(raw);
    expect(r).toEqual({ ok: false, issues: `costs.${key}.0: expected a number` });
  });

  it('refuses what is not an object', () => {
    for (const raw of [null, 3, 'x', []])
      expect(parseIndexEntry(raw)).toEqual({ ok: false, issues: '(entry): expected an object' });
  });
});

/** `raw` with `path` deleted. */
function withFieldOf(raw: Record<string, unknown>, path: string): Record<string, unknown> {
  const copy = JSON.parse(JSON.stringify(raw)) as Record<string, unknown>;
  const keys = path.split('.');
  let o = copy;
  for (const k of keys.slice(0, -1)) o = o[k] as Record<string, unknown>;
  delete o[keys[keys.length - 1] as string];
  return copy;
}
