/**
 * `cost` from the JetStream rollups while another store connection ends runs (as a second worker
 * would): the rollup rows and the unfinished runs are read as of one moment of the cost journal.
 * Read apart, a run that ends in between (its index entry ended, its contribution not read yet)
 * is in neither, and the report dips below what it said a moment before.
 */
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { costReport } from '../src/cli/cost.js';
import { openJetStreamStore, type JetStreamStore } from '../src/store/jetstream.js';
import { outcome, started, stepDone } from './helpers/envelopes.js';
import { readWhile, totalUnits as total, UNIT } from './helpers/rollupWatch.js';
import { startNatsServer, type NatsServerHandle } from './helpers/natsServer.js';

const DAY = 86_400_000;
const T0 = Date.UTC(2026, 0, 1);
const RUNS = 1_200;

describe(
  'jetstream cost rollups read while another connection ends runs',
  { timeout: 180_000 },
  () => {
    let server: NatsServerHandle;
    let writer: JetStreamStore;
    let reader: JetStreamStore;
    beforeAll(async () => {
      server = await startNatsServer();
      // Compacting often: the reader also meets day keys folded while it reads.
      const opts = { servers: server.url, prefix: 'rr', rollupCompactEvery: 8 };
      writer = await openJetStreamStore(opts);
      reader = await openJetStreamStore(opts);
    });
    afterAll(async () => {
      await writer?.close();
      await reader?.close();
      await server?.[Symbol.asyncDispose]();
    });

    it('never count less than they did a moment before, and every call once in the end', async () => {
      let done = false;
      // Sixteen runs at a time, each opened (start and call) then ended, a day each.
      const writing = (async () => {
        for (let i = 0; i < RUNS; i += 16) {
          await Promise.all(
            Array.from({ length: Math.min(16, RUNS - i) }, async (_, k) => {
              const n = i + k;
              const at = T0 + n * DAY;
              const id = `r${n}`;
              const call = outcome(at + 1, (n + 1) * UNIT, 'claude-haiku-4-5');
              await writer.log.append(id, [started('p', at), call], 'no_stream');
              await writer.log.append(id, [stepDone(1, 'completed', 0, at + 2)], 2);
            }),
          );
        }
      })().finally(() => (done = true));
      const { reads, dips } = await readWhile(reader.log, () => done);
      await writing;
      const end = await reader.log.costRollup?.();
      expect(end === undefined ? -1 : total(end)).toBe((RUNS * (RUNS + 1)) / 2);
      expect(await costReport(reader, 'day')).toEqual(
        await costReport(reader, 'day', { fromLog: true }),
      );
      expect(reads).toBeGreaterThan(10);
      expect(dips).toEqual([]);
    });

    it('count a run whose index entry ended before its contribution was published (its writer died in between), and roll it up before unlisting it', async () => {
      // The state such a writer leaves: the entry says completed, the run still listed as
      // unfinished, no contribution in the journal (a catch-up would publish it later). Made
      // here by deleting the contribution before anything folded it into a day key.
      const opts = { servers: server.url, prefix: 'dd', rollupCompactEvery: 1_000 };
      const w = await openJetStreamStore(opts);
      const r = await openJetStreamStore({ ...opts, readOnly: true });
      try {
        const jsm = await jetstreamManager(w.connection);
        // A dead writer's contribution was never published; this one is deleted after it was.
        // Its id must not still be in the journal's duplicate window when it is published again.
        await jsm.streams.update('DD_COSTS', { duplicate_window: 100 * 1_000_000 }); // 100 ms in ns
        const at = T0;
        const call = outcome(at + 1, 7 * UNIT, 'claude-haiku-4-5');
        await w.log.append('dead', [started('p', at), call], 'no_stream');
        await w.log.append('dead', [stepDone(1, 'completed', 0, at + 2)], 2);
        const contribution = async () =>
          jsm.streams.getMessage('DD_COSTS', { last_by_subj: 'dd.cost.dead' });
        // Poll until the contribution is published…
        const deadline = Date.now() + 60_000;
        let c = await contribution();
        while (c === null && Date.now() < deadline) {
          await new Promise((resolve) => setTimeout(resolve, 20));
          c = await contribution();
        }
        if (c === null) throw new Error('the run was never rolled up');
        // …and until its writer has taken it off the unfinished runs (after the contribution).
        const listed = async () =>
          Object.keys(
            (await jsm.streams.info('DD_ACTIVE', { subjects_filter: 'dd.active.dead' })).state
              .subjects ?? {},
          ).length;
        while ((await listed()) > 0 && Date.now() < deadline)
          await new Promise((resolve) => setTimeout(resolve, 20));
        expect(await listed()).toBe(0);
        await jsm.streams.deleteMessage('DD_COSTS', c.seq);
        // Past the duplicate window (a lower bound: waiting longer changes nothing).
        await new Promise((resolve) => setTimeout(resolve, 300));
        await jetstream(w.connection).publish('dd.active.dead', 'dead');
        const rollup = await r.log.costRollup?.();
        expect(rollup === undefined ? -1 : total(rollup)).toBe(7);
        // A writer's listing of the unfinished runs finds it ended and unlists it, rolling its
        // costs up first: still counted once it is no longer listed.
        expect(await w.log.listRuns({ status: 'running' })).toEqual([]);
        while ((await listed()) > 0 && Date.now() < deadline)
          await new Promise((resolve) => setTimeout(resolve, 20));
        expect(await listed()).toBe(0);
        expect(await contribution()).not.toBeNull();
        const unlisted = await r.log.costRollup?.();
        expect(unlisted === undefined ? -1 : total(unlisted)).toBe(7);
      } finally {
        await r.close();
        await w.close();
      }
    });
  },
);
