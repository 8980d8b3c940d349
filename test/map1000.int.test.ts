/**
 * A map of 1,000 items at concurrency 50 (issue 11): embedded on SQLite in one process; then
 * with 3 worker processes sharing the SQLite file and, on NATS JetStream, 3 workers taking the
 * children as queued commands, one worker SIGKILLed twice while children run. Every time: all
 * 1,000 results once and in order, each child made once, each effect key once in the sink.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadPipeline } from '../src/runtime/load.js';
import { openJetStreamStore } from '../src/store/jetstream.js';
import { openSqliteStore } from '../src/store/sqlite.js';
import type { Store } from '../src/store/types.js';
import { startFakeClaude, type FakeClaude } from '../src/testing/index.js';
import { harness, type Harness } from './helpers/harness.js';
import { checkMap, labelScript } from './helpers/mapCheck.js';
import { mapWithKills, type MapFleetReport } from './helpers/mapFleet.js';
import { startNatsServer, type NatsServerHandle } from './helpers/natsServer.js';
import { inFlight } from './fixtures/pipelines/mapThousand.js';

const FIXTURE = 'test/fixtures/pipelines/mapThousand.ts';
const N = Number(process.env.MAP1000_N ?? 1_000);
/** Until the parent completes, with workers killed: generous, for a loaded 2-core machine. */
const FLEET_DEADLINE_MS = 300_000;
const CONCURRENCY = 50;
/**
 * Children at once across a fleet: a parent taken over after a kill launches its first 50
 * unfinished children again while those the dead driver queued are still on the bus, so the
 * bound there is twice the map's (before the stranded-check fix, all 3 × 60 slots filled).
 */
const FLEET_PEAK = 2 * CONCURRENCY;

let root: string;
beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'plumbline-map1000-'));
});
afterAll(() => {
  if (process.env.MAP1000_KEEP === undefined) rmSync(root, { recursive: true, force: true });
  else console.log(`kept ${root}`);
});

describe('map of 1,000 items, embedded (SQLite, one process)', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await harness({ script: labelScript });
  });
  afterAll(() => h?.close());

  it('completes with every result once and in order, at most 50 children at once', async () => {
    const sink = join(root, 'embedded');
    process.env.MAP_SINK = sink;
    const prepared = await loadPipeline(FIXTURE);
    const t0 = Date.now();
    const r = await h.runtime().start(prepared, { input: { n: N }, runId: 'emb' });
    const ms = Date.now() - t0;
    expect(r.status, JSON.stringify(r.error)).toBe('completed');
    expect(r.outputs.each).toEqual(Array.from({ length: N }, (_, i) => ({ i, label: `L${i}` })));
    expect(h.fake.count).toBe(N);
    const report = await checkMap(h.store, 'emb', N, sink);
    expect(report.repeated).toEqual([]);
    expect(report.executions).toBe(N);
    // Counted inside the children's steps, and from their logs.
    expect(inFlight.now).toBe(0);
    expect(inFlight.peak).toBeLessThanOrEqual(CONCURRENCY);
    expect(inFlight.peak).toBeGreaterThan(CONCURRENCY / 2);
    expect(report.peak).toBeLessThanOrEqual(CONCURRENCY);
    console.log(
      `map1000 embedded: ${N} children, ${report.childEvents} child events in ${ms} ms; peak in flight ${inFlight.peak} (steps) / ${report.peak} (logs)`,
    );
  }, 180_000);
});

/** One line per fleet run, for the closing note. */
function describeFleet(what: string, r: MapFleetReport): string {
  const kills = r.kills
    .map(
      (k) =>
        `${k.worker}${k.drivingParent ? ' (driving the parent)' : ''} driving ${k.unfinished} children`,
    )
    .join('; ');
  return `map1000 ${what}: ${N} children, ${r.childEvents} child events in ${r.elapsedMs} ms; killed ${kills}; parent driven on by ${r.parentTakeovers.join(', ')}; peak children at once (logs) ${r.peak}; parent parked on the breaker ${r.parks}×; ${r.executions} effect executions for ${N} keys${r.repeated.length > 0 ? ` (re-run after a kill: ${r.repeated.join(', ')})` : ''}`;
}

describe('map of 1,000 items across 3 workers, one SIGKILLed twice', () => {
  let fake: FakeClaude;
  beforeAll(async () => {
    fake = await startFakeClaude({ script: labelScript });
  });
  afterAll(() => fake?.close());

  it(
    'SQLite: workers sharing the file finish the map, every result once and in order',
    async () => {
      const db = join(root, 'fleet.db');
      const sink = join(root, 'sqlite-sink');
      const store: Store = openSqliteStore(db);
      try {
        const r = await mapWithKills({
          spec: db,
          store,
          pipelines: FIXTURE,
          parentId: 'sq',
          n: N,
          env: { ANTHROPIC_BASE_URL: fake.url, MAP_SINK: sink },
          sink,
          deadlineMs: FLEET_DEADLINE_MS,
        });
        console.log(describeFleet('sqlite fleet', r));
        expect(r.peak).toBeLessThanOrEqual(FLEET_PEAK);
        expect(r.kills.map((k) => k.drivingParent)).toContain(true);
        expect(r.parentTakeovers).not.toContain('nobody');
      } finally {
        await store.close();
      }
    },
    FLEET_DEADLINE_MS + 60_000,
  );

  describe('NATS JetStream', () => {
    let server: NatsServerHandle;
    beforeAll(async () => {
      server = await startNatsServer();
    });
    afterAll(() => server?.[Symbol.asyncDispose]());

    it(
      'children queued as commands, any worker takes them; every result once and in order',
      async () => {
        const sink = join(root, 'nats-sink');
        const store = await openJetStreamStore({ servers: server.url });
        try {
          const r = await mapWithKills({
            spec: server.url,
            store,
            pipelines: FIXTURE,
            parentId: 'js',
            n: N,
            env: { ANTHROPIC_BASE_URL: fake.url, MAP_SINK: sink },
            sink,
            deadlineMs: FLEET_DEADLINE_MS,
          });
          console.log(describeFleet('nats fleet', r));
          expect(r.peak).toBeLessThanOrEqual(FLEET_PEAK);
          expect(r.kills.map((k) => k.drivingParent)).toContain(true);
          expect(r.parentTakeovers).not.toContain('nobody');
        } finally {
          await store.close();
        }
      },
      FLEET_DEADLINE_MS + 60_000,
    );
  });
});
