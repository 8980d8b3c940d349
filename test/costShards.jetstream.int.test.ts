/**
 * JetStream cost rollups kept as one KV key per day (issue 14: one key for every row would
 * outgrow a NATS message at about 10,000 rows). Totals equal the fold of every log; a store
 * written before the day keys (one `rollup` key) is still read, and its first writer copies it
 * into day keys without counting anything twice; day keys ahead of `head` (a writer that died
 * between the two) are not counted twice either.
 */
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { costReport } from '../src/cli/cost.js';
import {
  mergeRollupRows,
  ROLLUP_FIELDS,
  runCostRows,
  type RunCosts,
} from '../src/store/costRollup.js';
import { openJetStreamStore, type JetStreamStore } from '../src/store/jetstream.js';
import { readRange } from '../src/store/natsRead.js';
import type { CostRollupRow } from '../src/store/types.js';
import { outcome, started, stepDone } from './helpers/envelopes.js';
import { startNatsServer, type NatsServerHandle } from './helpers/natsServer.js';

const DAY = 86_400_000;
const T0 = Date.UTC(2026, 9, 1, 12);

describe('jetstream cost rollups, one key per day', { timeout: 120_000 }, () => {
  let server: NatsServerHandle;
  let store: JetStreamStore;
  let kv: KV;
  let n = 0;

  /** Ends a run with two calls on day `d`. */
  const endRun = async (d: number): Promise<void> => {
    const id = `run-${n++}`;
    const at = T0 + d * DAY;
    await store.log.append(
      id,
      [
        started(d % 2 ? 'p' : 'q', at),
        outcome(at + 1, 0.01 * (d + 1), 'claude-haiku-4-5'),
        outcome(at + 2, 0.003, 'claude-sonnet-4-6'),
      ],
      'no_stream',
    );
    await store.log.append(id, [stepDone(1, 'completed', 0, at + 3)], 3);
  };

  /** `cost --by day` and `--by pipeline` from the rollups equal the fold of every log. */
  const expectTruth = async (s: JetStreamStore): Promise<void> => {
    for (const by of ['day', 'pipeline'] as const)
      expect(await costReport(s, by)).toEqual(await costReport(store, by, { fromLog: true }));
  };

  const keys = async (): Promise<string[]> => {
    const out: string[] = [];
    for await (const k of await kv.keys()) out.push(k);
    return out.sort();
  };

  beforeAll(async () => {
    server = await startNatsServer();
    store = await openJetStreamStore({ servers: server.url, prefix: 'sh', rollupCompactEvery: 2 });
    kv = await new Kvm(store.connection).open('sh_costs');
    for (let i = 0; i < 15; i++) await endRun(i % 5);
    // One unfinished run: its calls come from its index entry.
    await store.log.append(
      'open',
      [started('p', T0), outcome(T0 + 5, 0.5, 'claude-haiku-4-5')],
      'no_stream',
    );
  });
  afterAll(async () => {
    await store?.close();
    await server?.[Symbol.asyncDispose]();
  });

  it('keeps one key per day, and the totals equal the fold', async () => {
    expect(await keys()).toEqual([
      'day.2026-10-01',
      'day.2026-10-02',
      'day.2026-10-03',
      'day.2026-10-04',
      'day.2026-10-05',
      'head',
    ]);
    await expectTruth(store);
    const reader = await openJetStreamStore({ servers: server.url, prefix: 'sh', readOnly: true });
    try {
      await expectTruth(reader);
    } finally {
      await reader.close();
    }
  });

  it('day keys ahead of head (a writer died between them) count nothing twice', async () => {
    await store.log.costRollup?.(); // folds the tail into the day keys
    const head = await kv.get('head');
    await kv.update('head', JSON.stringify({ v: 2, seq: 1 }), head?.revision ?? 0);
    // A reader (which folds nothing) reads the whole journal as the tail: each day key says
    // which contributions it has.
    const reader = await openJetStreamStore({ servers: server.url, prefix: 'sh', readOnly: true });
    try {
      await expectTruth(reader);
    } finally {
      await reader.close();
    }
    // A writer moves head on at its next fold, and counts nothing twice either.
    await expectTruth(store);
    await endRun(6);
    await endRun(6);
    await expectTruth(store);
  });

  it('a store with the one old key is read, then copied into day keys by its first writer', async () => {
    // The layout plumbline wrote before: `rollup` holds every row up to journal sequence `upTo`.
    const jsm = await jetstreamManager(store.connection);
    const journal = await readRange(jetstream(store.connection), jsm, { stream: 'SH_COSTS' });
    const upTo = journal[Math.floor(journal.length / 2)]?.seq ?? 0;
    const table = new Map<string, CostRollupRow>();
    for (const m of journal.filter((x) => x.seq <= upTo)) {
      const c = m.json<{ pipeline: string; delta: RunCosts }>();
      mergeRollupRows(table, runCostRows(c.pipeline, c.delta));
    }
    const rows = [...table.values()].map((r) => [
      r.day,
      r.pipeline,
      r.model,
      ...ROLLUP_FIELDS.map((f) => r[f]),
    ]);
    for (const k of await keys()) await kv.purge(k);
    await kv.put('rollup', JSON.stringify({ v: 1, seq: upTo, rows }));

    // A reader reads the old key and its tail, and writes nothing.
    const reader = await openJetStreamStore({ servers: server.url, prefix: 'sh', readOnly: true });
    try {
      await expectTruth(reader);
    } finally {
      await reader.close();
    }
    expect(await keys()).toEqual(['rollup']);

    // A writer copies it into day keys (the old key stays for an older plumbline), same totals.
    await expectTruth(store);
    expect(await keys()).toContain('head');
    expect((await keys()).filter((k) => k.startsWith('day.')).length).toBe(6);
    expect((await kv.get('rollup'))?.json<{ seq: number }>().seq).toBe(upTo);
    await endRun(8);
    await expectTruth(store);
  });
});
