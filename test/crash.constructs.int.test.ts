/**
 * Crash test across the constructs: a child process drives a tree of runs (classify → route →
 * parallel {llm | step + effect} → map of 20 items at concurrency 5 with an effect each → call of
 * a pipeline with an effect → finish), all in one process on one SQLite store, and SIGKILLs
 * itself after the k-th append counted over the whole tree, or mid-effect (after the ledger
 * claim; after the effect ran, before it was recorded). A fresh `plumbline resume` of the root
 * must finish with the uninterrupted run's outputs, every child made once, every effect recorded
 * once, and run again only where it ran but was not recorded when the process died.
 *
 * Kill points: by default every append of the root, the parallel branches and the called run
 * (the constructs' own boundaries) and an even sample of MAP_SAMPLE appends of the map items;
 * CRASH_TREE_POINTS=all kills at every append of the tree (an even sample of 200 if more), as
 * the issue asks. Measured at load average 14-19 on 2 cores: the default (40 points) 347 s,
 * all (110 points) 711 s; each point costs ~3.7 CPU-s (two node processes importing zod and the
 * SDK). CRASH_TREE_WORKERS: kill points run at once (default 3).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeClaude, type FakeClaude } from '../src/testing/index.js';
import { ndjson, plumbline, runNode } from './helpers/cli.js';
import {
  evenSample,
  executions,
  inspectTree,
  recordedEffects,
  sinkKeys,
  type TreeState,
} from './helpers/crashTree.js';

const CHILD = 'test/fixtures/crashTreeChild.mjs';
const ROOT_ID = 'root';
const ITEMS = 20;
const ALL_POINTS = process.env.CRASH_TREE_POINTS === 'all';
const MAP_SAMPLE = 10;
const WORKERS = Number(process.env.CRASH_TREE_WORKERS ?? 3);
const TERMINAL = new Set(['completed', 'failed', 'killed']);

let dir: string;
let fake: FakeClaude;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'plumbline-crash-tree-'));
  // Answers depend on the prompt only: an uninterrupted run's outputs are a fixed reference.
  fake = await startFakeClaude({
    script: (req) => {
      const m = req.body.messages as Array<{ content: unknown }>;
      const prompt = JSON.stringify(m[0]?.content ?? '');
      return { kind: 'json', value: { label: `${prompt}-ok`, score: prompt.length % 10 } };
    },
  });
});

afterAll(async () => {
  await fake.close();
  rmSync(dir, { recursive: true, force: true });
});

/** The append numbers to kill at (1-based, over the whole tree), from the reference trace. */
function pickAppends(trace: Array<[string, number, string]>): number[] {
  const all = trace.map((_, i) => i + 1);
  if (ALL_POINTS) return evenSample(all.length, 200);
  const isItem = (k: number): boolean => trace[k - 1]?.[0].startsWith(`${ROOT_ID}-each-`) ?? false;
  const items = all.filter(isItem);
  const picked = new Set([
    ...all.filter((k) => !isItem(k)),
    ...evenSample(items.length, MAP_SAMPLE).map((i) => items[i - 1] as number),
  ]);
  return [...picked].sort((a, b) => a - b);
}

/** One kill point's own store and sink. */
function place(name: string): { store: string; sink: string; env: Record<string, string> } {
  const at = mkdtempSync(join(dir, `${name.replace(/[^a-z0-9-]/gi, '-')}-`));
  const sink = join(at, 'sink');
  return {
    store: join(at, 'store.db'),
    sink,
    env: {
      ANTHROPIC_BASE_URL: fake.url,
      ANTHROPIC_API_KEY: 'test-key',
      CRASH_TREE_SINK: sink,
      CRASH_TREE_ITEMS: String(ITEMS),
    },
  };
}

/** Kills the tree at `point`, resumes the root in fresh processes until it ends, checks it. */
async function crashAndResume(point: string, ref: TreeState): Promise<void> {
  const p = place(point);
  const child = await runNode([CHILD, p.store, ROOT_ID], { ...p.env, CRASH_AT: point });
  expect(child.signal, `the child must die by SIGKILL (stderr: ${child.stderr})`).toBe('SIGKILL');
  // What happened before the crash: an effect runs again only if it ran but was not recorded.
  const recorded = recordedEffects(p.store);
  const ranBefore = executions(p.sink);

  let status = 'running';
  for (let i = 0; i < 5 && !TERMINAL.has(status); i++) {
    const r = await plumbline(['resume', ROOT_ID, '--store', p.store, '--json'], p.env);
    expect(r.code, `resume ${i + 1}: ${r.stderr}`).toBe(0);
    status = (ndjson(r.stdout)[0] as { status: string }).status;
  }
  expect(status).toBe('completed');

  const after = await inspectTree(p.store, ROOT_ID);
  expect(after.problems).toEqual([]);
  expect(after.rootStatus).toBe('completed');
  expect(after.outputs).toEqual(ref.outputs);
  // Each child made once: the same runs as the reference, none more (ids derive from the root's).
  expect(after.runIds).toEqual(ref.runIds);
  expect(after.effectsDone).toEqual(ref.effectsDone);
  expect(sinkKeys(p.sink)).toEqual(Object.keys(ref.effectsDone).sort());
  const ran = executions(p.sink);
  for (const key of Object.keys(ref.effectsDone)) {
    const before = ranBefore[key] ?? 0;
    expect(before, `${key} ran before the crash`).toBeLessThanOrEqual(1);
    expect(ran[key], `${key} runs`).toBe(before + (recorded.has(key) ? 0 : 1));
  }
  // The mid-effect points hit the window they name.
  const [kind, key = ''] = point.split(':');
  if (kind === 'claimed') expect([ranBefore[key] ?? 0, ran[key]]).toEqual([0, 1]);
  if (kind === 'ran') expect([ranBefore[key], recorded.has(key), ran[key]]).toEqual([1, false, 2]);
}

describe('crash and resume across route, parallel, map and call', () => {
  it('finishes the tree killed at any append or mid-effect with the reference outputs, each child made once, each effect recorded once', async () => {
    const p = place('reference');
    const base = await runNode([CHILD, p.store, ROOT_ID], p.env);
    expect(base.code, base.stderr).toBe(0);
    const { status, appends } = ndjson(base.stdout)[0] as { status: string; appends: number };
    expect(status).toBe('completed');
    const ref = await inspectTree(p.store, ROOT_ID);
    expect(ref.problems).toEqual([]);
    // root, two branches, the items, the call.
    expect(ref.runIds).toHaveLength(1 + 2 + ITEMS + 1);
    const keys = Object.keys(ref.effectsDone);
    expect(keys).toHaveLength(ITEMS + 2);
    expect(Object.values(ref.effectsDone).every((n) => n === 1)).toBe(true);
    expect(Object.values(executions(p.sink)).every((n) => n === 1)).toBe(true);
    const notify = keys.find((k) => k.startsWith('notify-')) as string;
    expect(notify).toBeDefined();

    // Each append's [runId, seq, type], in the order the reference run made them.
    const trace = (ndjson(base.stdout)[0] as { trace: Array<[string, number, string]> }).trace;
    expect(trace).toHaveLength(appends);
    const sampled = pickAppends(trace);
    const points = [
      ...sampled.map((k) => `append:${k}`),
      ...['item-7', 'b-save', notify].flatMap((k) => [`claimed:${k}`, `ran:${k}`]),
    ];
    process.stderr.write(
      `crash tree: ${appends} appends in the reference run; killing at ${sampled.length} of them (${ALL_POINTS ? 'all' : `those outside map items and ${MAP_SAMPLE} of the map items'`}) and at ${points.length - sampled.length} mid-effect points\n`,
    );

    const failures: string[] = [];
    let done = 0;
    const queue = [...points];
    const worker = async (): Promise<void> => {
      for (let point = queue.shift(); point !== undefined; point = queue.shift()) {
        try {
          await crashAndResume(point, ref);
          done++;
        } catch (e) {
          failures.push(`${point}: ${(e as Error).message}`);
          process.stderr.write(`crash tree: ${point} failed: ${(e as Error).message}\n`);
        }
      }
    };
    await Promise.all(Array.from({ length: WORKERS }, worker));
    expect(failures).toEqual([]);
    expect(done).toBe(points.length);
  }, 3_600_000);
});
