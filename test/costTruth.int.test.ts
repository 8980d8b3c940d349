/**
 * Cost truth (issue 15): a call lost with its process is counted at its reservation and shown as
 * unconfirmed by `replay`, `runs` and `cost`; `cost` counts a fork's copied calls once, to the
 * run that made them. Runs are driven in this process against the fake Claude; the CLI (from
 * dist/) reads the store.
 */
import { describe, expect, it } from 'vitest';
import { GENESIS, link } from '../src/machines/chain.js';
import type { NewEnvelope, StoredEnvelope } from '../src/machines/events.js';
import { forkRun } from '../src/runtime/fork.js';
import { loadPipeline } from '../src/runtime/load.js';
import { ndjson, plumbline } from './helpers/cli.js';
import { harness, ofType } from './helpers/harness.js';

const BUDGETED = 'test/fixtures/pipelines/budgeted.ts';
const input = { topic: 'owls' };

/** The cost of the model outcomes in `events` with seq above `after`. */
const spent = (events: StoredEnvelope[], after = 0): number =>
  events
    .filter((e) => e.seq > after)
    .reduce(
      (a, e) =>
        a +
        (e.event.type === 'MODEL_RESPONSE' || e.event.type === 'MODEL_ERROR' ? e.event.costUsd : 0),
      0,
    );

describe('cost truth', { timeout: 120_000 }, () => {
  it('a lost call is counted at its reservation and flagged unconfirmed; a fork is counted once', async () => {
    await using h = await harness({ script: () => ({ kind: 'json', value: { note: 'ok' } }) });
    const prepared = await loadPipeline(BUDGETED);
    const rt = h.runtime();
    expect((await rt.start(prepared, { input, runId: 'src' })).status).toBe('completed');
    const src = await h.events('src');

    // A process that died mid-call leaves its log ending at an ATTEMPT (written as it would be).
    const cut = src.findIndex((e) => e.event.type === 'ATTEMPT' && e.event.step === 'two');
    const prefix: NewEnvelope[] = src
      .slice(0, cut + 1)
      .map((e) => ({ v: 1, at: e.at, event: e.event, state: e.state }));
    await h.store.log.append('crashed', link(prefix, GENESIS, 1), 'no_stream');
    const requestsBefore = h.fake.requests.length;
    expect((await rt.resume(prepared, 'crashed')).status).toBe('completed');
    const crashed = await h.events('crashed');
    const lost = ofType(crashed, 'MODEL_ERROR').filter((e) => e.event.kind === 'lost');
    expect(lost).toHaveLength(1);
    const reservation = ofType(prefix as StoredEnvelope[], 'ATTEMPT').at(-1)?.event.estimate.usd;
    expect(reservation).toBeGreaterThan(0);
    expect(lost[0]?.event).toMatchObject({ unconfirmed: true, costUsd: reservation });
    // The resumed run called 'two' again and the three after it: four billed requests.
    expect(h.fake.requests.length - requestsBefore).toBe(4);

    // A fork of the finished run after its third call: seqs up to `at` are copies.
    const at = ofType(src, 'MODEL_RESPONSE')[2]?.seq ?? 0;
    await forkRun(rt, prepared, 'src', { at, now: Date.now(), runId: 'fork' });
    expect((await rt.drive(prepared, 'fork')).status).toBe('completed');
    const fork = await h.events('fork');
    expect(ofType(fork.slice(0, at), 'MODEL_RESPONSE')).toHaveLength(3);

    const truth = spent(src) + spent(crashed) + spent(fork, at);
    const naive = spent(src) + spent(crashed) + spent(fork);
    expect(naive - truth).toBeGreaterThan(0);

    const cost = await plumbline(['cost', '--json', '--store', h.dbPath]);
    expect(cost.code, cost.stderr).toBe(0);
    const [row, ...more] = ndjson(cost.stdout) as Array<Record<string, number | string>>;
    expect(more).toEqual([]);
    expect(row).toMatchObject({ key: 'budgeted', unconfirmedCalls: 1 });
    expect(Math.abs(Number(row?.costUsd) - truth)).toBeLessThan(1e-9);
    expect(Math.abs(Number(row?.unconfirmedUsd) - (reservation ?? 0))).toBeLessThan(1e-9);
    // calls: 5 (src) + 6 (crashed: 'one', the lost 'two', then 'two' to 'five') + 2 (the fork's own).
    expect(row?.calls).toBe(13);

    const text = await plumbline(['cost', '--by', 'model', '--store', h.dbPath]);
    expect(text.code, text.stderr).toBe(0);
    const [head, line] = text.stdout.split('\n');
    expect(head).toMatch(/cost +unconfirmed$/);
    expect(line).toContain(`$${(reservation ?? 0).toFixed(6)}`);
    expect(text.stdout).toContain('1 call(s) lost mid-flight are counted at their reservation');

    const runs = await plumbline(['runs', '--json', '--store', h.dbPath]);
    expect(runs.code, runs.stderr).toBe(0);
    const byId = new Map(
      (ndjson(runs.stdout) as Array<{ runId: string; unconfirmedUsd: number }>).map((r) => [
        r.runId,
        r.unconfirmedUsd,
      ]),
    );
    expect(Object.fromEntries(byId)).toEqual({ src: 0, crashed: reservation, fork: 0 });

    const replay = await plumbline(['replay', 'crashed', '--store', h.dbPath]);
    expect(replay.code, replay.stderr).toBe(0);
    const lostLine = replay.stdout.split('\n').find((l) => l.includes('MODEL_ERROR'));
    expect(lostLine).toMatch(/retryable lost, delay 0 ms, cost \$\d\.\d{6} unconfirmed/);
    expect(replay.stdout).toContain(`($${(reservation ?? 0).toFixed(6)} of it unconfirmed`);
  });
});
