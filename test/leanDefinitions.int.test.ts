/**
 * Runs whose `run.started` carries no graph (`definition: null`, the graph stored once per
 * machine hash, issue 14): the visualizer draws them, `watch` shows their steps, and the
 * progress line of the writing process knows the steps without a store read.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NewEnvelope, StoredEnvelope } from '../src/machines/events.js';
import { stepsOf, updateLine } from '../src/cli/progress.js';
import { watch } from '../src/cli/watch.js';
import { recordDefinition } from '../src/store/definitions.js';
import { openSqliteStore } from '../src/store/sqlite.js';
import type { Store } from '../src/store/types.js';
import { startVizServer } from '../src/viz/index.js';
import type { VizServer } from '../src/viz/server.js';
import { eventfulRun, foldEnvelopes, graph } from './viz/fixtures.js';

let n = 0;
/** A hash no other test used, so this process has no cached graph for it. */
const freshHash = (): string => `${process.pid.toString(16)}${(n++).toString(16)}`.padEnd(16, 'a');

/** Appends a finished run of the fixture pipeline whose `run.started` has no graph. */
async function appendLeanRun(store: Store, runId: string, hash: string): Promise<void> {
  const envs = foldEnvelopes(eventfulRun).map((e: StoredEnvelope): NewEnvelope => {
    const { runId: _r, seq: _s, ...rest } = e;
    return rest.event.type === 'run.started'
      ? { ...rest, event: { ...rest.event, machineHash: hash, definition: null } }
      : rest;
  });
  await store.log.append(runId, envs, 'no_stream');
}

describe('runs recorded with definition: null', () => {
  let dir: string;
  let store: Store;
  let viz: VizServer;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'plumbline-lean-'));
    store = openSqliteStore(join(dir, 'runs.db'), { validateAppends: true });
    viz = await startVizServer({ store, port: 0 });
  });
  afterAll(async () => {
    await viz.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('the visualizer draws the graph stored for the machine hash', async () => {
    const hash = freshHash();
    // Stored through the port (not recordDefinition): this process has it in no cache.
    await store.definitions.put(hash, graph);
    await appendLeanRun(store, 'lean-viz', hash);
    const body = (await (await fetch(`${viz.url}api/runs/lean-viz`)).json()) as {
      chartSource: string | null;
      graph: unknown;
      path: { current: string | null } | null;
      warning: string | null;
    };
    expect(body.chartSource).toBe('recorded');
    expect(body.graph).toEqual(graph);
    expect(body.warning).toBeNull();
    expect(body.path).not.toBeNull();
    // Without a stored graph (and no loaded pipeline) there is nothing to draw, and it says so.
    await appendLeanRun(store, 'lean-missing', freshHash());
    const missing = (await (await fetch(`${viz.url}api/runs/lean-missing`)).json()) as {
      graph: unknown;
      warning: string | null;
    };
    expect(missing.graph).toBeNull();
    expect(missing.warning).toMatch(/--pipelines/);
  });

  it('watch shows the steps of a run whose graph is only in the store', async () => {
    const hash = freshHash();
    await store.definitions.put(hash, graph);
    await appendLeanRun(store, 'lean-watch', hash);
    let text = '';
    const status = await watch(store, {
      runId: 'lean-watch',
      json: false,
      tty: true,
      pollMs: 10,
      signal: new AbortController().signal,
      write: (t) => (text += t),
    });
    expect(status).toBe('completed');
    // Three steps in the bar, all done: the steps came from the stored graph.
    expect(stepsOf(graph)).toEqual(['classify', 'notify', 'route']);
    expect(text).toMatch(/ 3\/3 done /);
  });

  it('the writing process knows the steps at once after recordDefinition', async () => {
    const hash = freshHash();
    await recordDefinition(store, hash, graph);
    const [first] = foldEnvelopes([]);
    if (first?.event.type !== 'run.started') throw new Error('fixture has no run.started');
    const lean = { ...first, event: { ...first.event, machineHash: hash, definition: null } };
    expect(updateLine(undefined, lean).steps).toEqual(['classify', 'notify', 'route']);
    // An unknown hash, not looked up yet: no steps (the line still renders).
    const unknown = { ...lean, event: { ...lean.event, machineHash: freshHash() } };
    expect(updateLine(undefined, unknown).steps).toEqual([]);
  });
});
