/**
 * Checks for a finished wide map (test/fixtures/pipelines/mapThousand.ts): the parent's results
 * in input order, each child made once, the parent's log three events long, each effect key in
 * the sink once, and how many children ran at once, read from the children's own logs.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';
import type { StoredEnvelope } from '../../src/machines/events.js';
import type { Store } from '../../src/store/types.js';
import type { FakeAction, FakeRequest } from '../../src/testing/index.js';

/** The child pipeline's name: the map's steps run as `<parent pipeline>-<step>`. */
export const CHILD_PIPELINE = 'map-thousand-each';

/** Answers "item <i>" with `{ label: "L<i>" }` after 5–45 ms, so children overlap. */
export function labelScript(req: FakeRequest): FakeAction {
  const m = req.body.messages as Array<{ content: string }>;
  const i = /item (\d+)/.exec(m[0]?.content ?? '')?.[1] ?? '?';
  const then: FakeAction = { kind: 'json', value: { label: `L${i}` } };
  return { kind: 'delay', ms: 5 + Math.floor(Math.random() * 40), then };
}

/** Runs `f` over `items`, `n` at a time, results in order. */
export async function pool<T, R>(items: T[], n: number, f: (t: T) => Promise<R>): Promise<R[]> {
  const out: R[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: n }, async () => {
      while (next < items.length) {
        const k = next++;
        out[k] = await f(items[k] as T);
      }
    }),
  );
  return out;
}

/**
 * The most children between their first step and their end at once, from their logs: each
 * child runs from the event after `run.started` (all children are created up front) to its last.
 */
export function peakOverlap(logs: StoredEnvelope[][]): number {
  const edges: Array<[number, number]> = [];
  for (const log of logs) {
    const first = log[1];
    const last = log[log.length - 1];
    if (first === undefined || last === undefined) continue;
    edges.push([first.at, 1], [last.at, -1]);
  }
  // Ends before starts at the same millisecond: a child that ended lets the next one in.
  edges.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let now = 0;
  let peak = 0;
  for (const [, d] of edges) peak = Math.max(peak, (now += d));
  return peak;
}

/** What {@link checkMap} measured. */
export interface MapReport {
  childEvents: number;
  /** Most children running at once, from their logs. */
  peak: number;
  /** Effect executions in the sink's log (≥ n: a crash between run and record repeats one). */
  executions: number;
  /** Keys whose effect ran more than once, `key×count`. */
  repeated: string[];
  /** Times the parent parked because an open breaker parked its children (then resumed). */
  parks: number;
}

/**
 * Asserts the map run `parentId` of `n` items completed as one would without crashes: results
 * `{ i, label: "L<i>" }` in input order, exactly `n` children (one `run.started` each, each
 * completed with one EFFECT_DONE), the parent's log `run.started, CHILDREN_STARTED,
 * CHILDREN_DONE`, and one sink file per item key.
 */
export async function checkMap(
  store: Store,
  parentId: string,
  n: number,
  sink: string,
): Promise<MapReport> {
  const parent = await store.log.read(parentId);
  // Started, fanned out, joined; and, only if an open breaker parked the children, a park,
  // its resume and the fan-out again (making none twice) per opening: never an event per child.
  const types = parent.map((e) => e.event.type);
  const parks = types.filter((t) => t === 'CHILDREN_PARKED').length;
  expect(types).toEqual([
    'run.started',
    'CHILDREN_STARTED',
    ...Array.from({ length: parks }, () => [
      'CHILDREN_PARKED',
      'RESUME',
      'CHILDREN_STARTED',
    ]).flat(),
    'CHILDREN_DONE',
  ]);
  for (const e of parent)
    if (e.event.type === 'CHILDREN_PARKED') expect(e.event.reason).toBe('breaker');
  const done = parent[parent.length - 1]?.event as {
    results: unknown[];
    errors: unknown[];
    failed: boolean;
  };
  expect(done.failed).toBe(false);
  expect(done.errors).toEqual([]);
  expect(done.results).toHaveLength(n);
  expect(done.results).toEqual(Array.from({ length: n }, (_, i) => ({ i, label: `L${i}` })));
  expect((await store.log.getRun(parentId))?.status).toBe('completed');

  const ids = Array.from({ length: n }, (_, i) => `${parentId}-each-${i}`);
  const children = (await store.log.listRuns({ pipeline: CHILD_PIPELINE })).filter((r) =>
    r.runId.startsWith(`${parentId}-`),
  );
  expect(children.map((r) => r.runId).sort()).toEqual([...ids].sort());
  expect(children.every((r) => r.status === 'completed')).toBe(true);
  const logs = await pool(ids, 16, (id) => store.log.read(id));
  let childEvents = 0;
  logs.forEach((log, i) => {
    childEvents += log.length;
    const id = ids[i] as string;
    expect(
      log.map((e) => e.seq),
      `${id}: seqs`,
    ).toEqual(log.map((_, k) => k + 1));
    expect(log.filter((e) => e.event.type === 'run.started').length, `${id}: starts`).toBe(1);
    expect(log[0]?.event).toMatchObject({ parent: { runId: parentId, step: 'each', part: i } });
    expect(log.filter((e) => e.event.type === 'EFFECT_DONE').length, `${id}: effects`).toBe(1);
  });

  const keys = new Set(Array.from({ length: n }, (_, i) => `item-${i}`));
  for (const k of keys) expect(existsSync(join(sink, `${k}.json`)), `${k} in the sink`).toBe(true);
  const files = readdirSync(sink).filter((f) => keys.has(f.replace(/\.json$/, '')));
  expect(files).toHaveLength(n);
  const lines = readFileSync(join(sink, 'executions.log'), 'utf8')
    .split('\n')
    .filter((l) => keys.has(l));
  const counts = new Map<string, number>();
  for (const l of lines) counts.set(l, (counts.get(l) ?? 0) + 1);
  const repeated = [...counts].filter(([, c]) => c > 1).map(([k, c]) => `${k}×${c}`);
  return { childEvents, peak: peakOverlap(logs), executions: lines.length, repeated, parks };
}
