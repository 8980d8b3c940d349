/**
 * JetStream cost rollups (issue 14): kept as runs end, from two store connections (two workers)
 * ending runs at once, compacted into one KV key per day by compare-and-set, and idempotent per run —
 * a run whose end is handled twice (its index rebuilt from the log) is counted once, and a run
 * that gets more calls after its end adds only those. `cost` from the rollups must equal the
 * fold of every log, by pipeline, model and day.
 */
import { Kvm } from '@nats-io/kv';
import { jetstreamManager } from '@nats-io/jetstream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { costReport, isUnconfirmed, unconfirmedByRun } from '../src/cli/cost.js';
import { openJetStreamStore, type JetStreamStore } from '../src/store/jetstream.js';
import { outcome, started, stepDone } from './helpers/envelopes.js';
import { startNatsServer, type NatsServerHandle } from './helpers/natsServer.js';

const DAY = 86_400_000;
const T0 = Date.UTC(2026, 10, 1, 22, 0, 0);
const RUNS = 24;

describe('jetstream cost rollups', { timeout: 120_000 }, () => {
  let server: NatsServerHandle;
  let a: JetStreamStore;
  let b: JetStreamStore;
  let truth = 0;

  /** Messages in the cost journal: one per contribution. */
  const journal = async (): Promise<number> =>
    (await (await jetstreamManager(a.connection)).streams.info('CR_COSTS')).state.messages;

  /** The three reports from the rollups, each equal to the fold of every log. */
  const checkAgainstFold = async (): Promise<void> => {
    for (const by of ['pipeline', 'model', 'day'] as const) {
      const fromRollup = await costReport(b, by);
      expect(fromRollup).toEqual(await costReport(b, by, { fromLog: true }));
      expect(fromRollup.rows.reduce((s, r) => s + r.costUsd, 0)).toBeCloseTo(truth, 9);
      expect(fromRollup.rows.reduce((s, r) => s + r.unconfirmedCalls, 0)).toBe(1);
    }
  };

  beforeAll(async () => {
    server = await startNatsServer();
    const opts = { servers: server.url, prefix: 'cr', rollupCompactEvery: 3 };
    a = await openJetStreamStore(opts);
    b = await openJetStreamStore(opts);
    // Runs started by one worker and ended by the other, all at once: contributions and
    // compactions from both connections race.
    await Promise.all(
      Array.from({ length: RUNS }, async (_, i) => {
        const [first, second] = i % 2 === 0 ? [a, b] : [b, a];
        const at = T0 + i * 10 * 60_000;
        const calls = [
          outcome(at + 1, 0.001 * (i + 1), i % 3 ? 'claude-haiku-4-5' : 'claude-sonnet-4-6'),
          outcome(at + 2, 0.0005, 'claude-haiku-4-5', i === 5),
        ];
        truth += 0.001 * (i + 1) + 0.0005;
        const id = `run-${String(i).padStart(2, '0')}`;
        await first.log.append(id, [started(i < 12 ? 'p' : 'q', at), ...calls], 'no_stream');
        // Runs 3, 7, 11, … stay unfinished: their calls are counted from their index entries.
        const spent = 0.001 * (i + 1) + 0.0005;
        if (i % 4 !== 3) await second.log.append(id, [stepDone(1, 'completed', spent, at + 3)], 3);
      }),
    );
    // A fork of run-00 after its first call: the copied call counts once, to run-00.
    const fork = started('p', T0 + DAY);
    (fork.event as { forkedFrom: unknown }).forkedFrom = { runId: 'run-00', seq: 2 };
    const copied = outcome(T0, 0.001, 'claude-sonnet-4-6');
    await a.log.append('fork', [fork, copied, outcome(T0 + DAY + 1, 0.25, 'o')], 'no_stream');
    await b.log.append('fork', [stepDone(1, 'failed', 0, T0 + DAY + 2)], 3);
    truth += 0.25;
  });

  afterAll(async () => {
    await a?.close();
    await b?.close();
    await server?.[Symbol.asyncDispose]();
  });

  it('cost reads the rollups (one contribution per ended run, compacted), equal to the fold', async () => {
    const rollup = await b.log.costRollup?.();
    expect(rollup).toBeDefined();
    expect(rollup?.pending).toEqual([]);
    // 18 ended runs and the fork: one journal message each.
    expect(await journal()).toBe(19);
    // Writers folded the journal into the day keys as they went (every 3rd contribution).
    const kv = await new Kvm(a.connection).open('cr_costs');
    const head = (await kv.get('head'))?.json<{ seq: number }>();
    expect(head?.seq).toBeGreaterThanOrEqual(15);
    const day = (await kv.get('day.2026-11-01'))?.json<{ seq: number; rows: unknown[] }>();
    expect(day?.rows.length).toBeGreaterThan(0);
    await checkAgainstFold();
    const days = (await costReport(a, 'day')).rows.map((r) => r.key).sort();
    expect(days).toEqual(['2026-11-01', '2026-11-02']);
  });

  it("runs' unconfirmed column comes from the index entries, equal to reading the logs", async () => {
    const page = await b.log.listRuns({ limit: 30 });
    expect(page.map((r) => r.runId)).toContain('run-05');
    const before = b.stats.consumers;
    const { byRun } = await unconfirmedByRun(b, page);
    // No log was read (a read makes a consumer).
    expect(b.stats.consumers).toBe(before);
    expect([...byRun]).toEqual([['run-05', 0.0005]]);
    for (const r of page) {
      const lost = (await b.log.read(r.runId))
        .filter((e) => isUnconfirmed(e.event))
        .reduce((s, e) => s + (e.event as { costUsd: number }).costUsd, 0);
      expect(byRun.get(r.runId) ?? 0).toBeCloseTo(lost, 12);
    }
  });

  it('a run whose end is handled twice is rolled up once; calls after an end add only themselves', async () => {
    // run-00's index entry is lost: both workers rebuild it from the log and handle its end
    // again; the rollups must not count it a second time.
    const runs = await new Kvm(a.connection).open('cr_runs');
    await runs.delete('run-00');
    const [x, y] = await Promise.all([a.log.getRun('run-00'), b.log.getRun('run-00')]);
    expect(x?.status).toBe('completed');
    expect(y?.status).toBe('completed');
    expect(await journal()).toBe(19);
    await checkAgainstFold();
    // A call recorded after run-01 ended: a second contribution with only that call.
    await a.log.append('run-01', [outcome(T0 + DAY + 5, 0.125, 'claude-haiku-4-5')], 4);
    await a.log.append('run-01', [stepDone(2, 'completed', 0, T0 + DAY + 6)], 5);
    truth += 0.125;
    expect(await journal()).toBe(20);
    await checkAgainstFold();
  });

  it('a run that ends moves its calls from the unfinished part into the rows, counted once', async () => {
    const before = await a.log.costRollup?.();
    await a.log.append('run-03', [stepDone(1, 'completed', 0, T0 + 3 * 600_000 + 3)], 3);
    await b.log.append('run-07', [stepDone(1, 'killed', 0, T0 + 7 * 600_000 + 3)], 3);
    expect(await journal()).toBe(22);
    const after = await b.log.costRollup?.();
    const sum = (r: typeof before): number => (r?.rows ?? []).reduce((s, x) => s + x.costUsd, 0);
    expect(sum(after)).toBeCloseTo(sum(before), 9);
    await checkAgainstFold();
  });
});
