/**
 * `plumbline cost`: spend by pipeline, model, day or top-level run, from the store's rollups.
 * (The implementation, imported by commands.ts only when the verb runs; it loads the store and
 * nothing of the runtime: issue 14.)
 */
import type { Command } from 'commander';
import { UsageError } from '../errors.js';
import { costReport, type CostBy } from './cost.js';
import { usd } from './format.js';
import type { ExitBox } from './main.js';
import { globals, out, outJson } from './options.js';
import { openReadStore } from './readStore.js';

/** The `cost` verb, imported only when it runs. */
export function costAction(box: ExitBox) {
  return async (o: { by?: string; json?: boolean; fromLog?: boolean }, cmd: Command) => {
    const by = o.by ?? 'pipeline';
    if (!['pipeline', 'model', 'day', 'run'].includes(by))
      throw new UsageError(`--by ${by}: use pipeline, model, day or run`);
    // Only reads: the store alone, without the runtime a full client brings (issue 14).
    const store = await openReadStore(globals(cmd));
    try {
      const { rows, skipped } = await costReport(store, by as CostBy, {
        fromLog: o.fromLog === true,
      });
      for (const r of skipped)
        process.stderr.write(`plumbline: cost: skipped run ${r.runId}: ${r.reason}\n`);
      if (skipped.length > 0) {
        process.stderr.write(
          `plumbline: cost: ${skipped.length} unreadable run(s) left out of the totals; \`plumbline verify --all\` names them all\n`,
        );
        box.code = 1;
      }
      if (o.json) rows.forEach((r) => outJson(r));
      else {
        const w = Math.max(24, ...rows.map((r) => r.key.length));
        out(
          `${by.padEnd(w)} ${'calls'.padStart(6)} ${'input'.padStart(9)} ${'output'.padStart(9)} ${'cache r'.padStart(9)} ${'cache w'.padStart(9)} ${'cost'.padStart(12)} ${'unconfirmed'.padStart(12)}`,
        );
        for (const r of rows)
          out(
            `${r.key.padEnd(w)} ${String(r.calls).padStart(6)} ${String(r.inputTokens).padStart(9)} ${String(r.outputTokens).padStart(9)} ${String(r.cacheReadTokens).padStart(9)} ${String(r.cacheWriteTokens).padStart(9)} ${usd(r.costUsd).padStart(12)} ${(r.unconfirmedCalls > 0 ? usd(r.unconfirmedUsd) : '-').padStart(12)}`,
          );
        const unconfirmed = rows.reduce((a, r) => a + r.unconfirmedCalls, 0);
        if (unconfirmed > 0)
          out(
            `${unconfirmed} call(s) lost mid-flight are counted at their reservation (unconfirmed: the provider may have billed less, or nothing)`,
          );
      }
    } finally {
      await store.close();
    }
  };
}
