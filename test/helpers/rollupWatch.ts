/**
 * For the cost-rollup race tests: reads a store's rollups in a loop while something else ends
 * runs, and records every read that counted less than the one before it.
 */
import type { CostRollup, EventLog } from '../../src/store/types.js';

/** Each test run's call costs a whole number of these dollars: sums stay exact. */
export const UNIT = 1e-6;

/** Everything `cost` would count (the rows plus the unfinished runs' summed calls), in UNITs. */
export function totalUnits(r: CostRollup): number {
  let usd = r.rows.reduce((a, row) => a + row.costUsd, 0);
  for (const p of r.pending) {
    if (p.rows === undefined) throw new Error(`run ${p.runId}: its calls were not summed`);
    usd += p.rows.reduce((a, row) => a + row.costUsd, 0);
  }
  return Math.round(usd / UNIT);
}

/** Reads `log`'s rollups until `done()`; returns how many reads and each dip below the last. */
export async function readWhile(
  log: EventLog,
  done: () => boolean,
): Promise<{ reads: number; dips: string[] }> {
  const dips: string[] = [];
  let last = 0;
  let reads = 0;
  while (!done()) {
    const r = await log.costRollup?.();
    if (r === undefined) throw new Error('the store has no rollups');
    const now = totalUnits(r);
    if (now < last) dips.push(`read ${reads}: ${last} then ${now}`);
    last = Math.max(last, now);
    reads += 1;
    // Let the event loop see the writer end.
    await new Promise((resolve) => setImmediate(resolve));
  }
  return { reads, dips };
}
