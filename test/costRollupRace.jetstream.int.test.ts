/**
 * `cost` from the JetStream rollups while another store connection ends runs (as a second worker
 * would): the rollup rows and the unfinished runs are read as of one moment of the cost journal.
 * Read apart, a run that ends in between (its index entry ended, its contribution not read yet)
 * is in neither, and the report dips below what it said a moment before.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { costReport } from '../src/cli/cost.js';
import { openJetStreamStore, type JetStreamStore } from '../src/store/jetstream.js';
import type { CostRollup } from '../src/store/types.js';
import { outcome, started, stepDone } from './helpers/envelopes.js';
import { startNatsServer, type NatsServerHandle } from './helpers/natsServer.js';

const DAY = 86_400_000;
const T0 = Date.UTC(2026, 0, 1);
const RUNS = 600;
/** Run i's one call costs (i + 1) micro-dollars: sums stay exact in whole micro-dollars. */
const UNIT = 1e-6;

/** Everything `cost` would count, in micro-dollars. */
function total(r: CostRollup): number {
  let usd = r.rows.reduce((a, row) => a + row.costUsd, 0);
  for (const p of r.pending) usd += (p.rows ?? []).reduce((a, row) => a + row.costUsd, 0);
  return Math.round(usd / UNIT);
}

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
      // Eight runs at a time, each opened (start and call) then ended, a day each.
      const writing = (async () => {
        for (let i = 0; i < RUNS; i += 8) {
          await Promise.all(
            Array.from({ length: Math.min(8, RUNS - i) }, async (_, k) => {
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
      const dips: string[] = [];
      let last = 0;
      let reads = 0;
      while (!done) {
        const r = await reader.log.costRollup?.();
        if (r === undefined) throw new Error('the store has no rollups');
        const now = total(r);
        if (now < last) dips.push(`read ${reads}: ${last} then ${now}`);
        last = Math.max(last, now);
        reads += 1;
      }
      await writing;
      const end = await reader.log.costRollup?.();
      expect(end === undefined ? -1 : total(end)).toBe((RUNS * (RUNS + 1)) / 2);
      expect(await costReport(reader, 'day')).toEqual(
        await costReport(reader, 'day', { fromLog: true }),
      );
      expect(reads).toBeGreaterThan(10);
      expect(dips).toEqual([]);
    });
  },
);
