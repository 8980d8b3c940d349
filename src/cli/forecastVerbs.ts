/**
 * `plumbline forecast`: what a run of a pipeline version costs, how many model calls it makes
 * and how long it takes, from the finished runs in the store; and `--budget-usd auto`.
 * (The implementation, imported by forecast.ts only when the verb runs: issue 14.)
 */
import type { Command } from 'commander';
import { loadPipeline } from '../runtime/load.js';
import { parseRunInput } from '../runtime/prepare.js';
import { AUTO_BUDGET_MARGIN, autoBudgetUsd, type Spread } from '../runtime/forecast.js';
import { forecastFromStore, type HistoryForecast } from '../runtime/forecastHistory.js';
import { globals, openStore, out, outJson, parseInput, storeSpec } from './context.js';
import { usd } from './format.js';

/** True when a pipeline argument names a module file rather than a pipeline by name. */
export function isModulePath(arg: string): boolean {
  return /\.(m?ts|m?js)$/.test(arg);
}

function ms(x: number): string {
  if (x < 1000) return `${Math.round(x)}ms`;
  return x >= 60_000 ? `${(x / 60_000).toFixed(1)}m` : `${(x / 1000).toFixed(1)}s`;
}

function row(label: string, s: Spread, f: (x: number) => string): string {
  return `${label.padEnd(24)} ${[s.p50, s.p95, s.p99, s.max].map((x) => f(x).padStart(11)).join(' ')}`;
}

function printForecast(h: HistoryForecast): void {
  const f = h.forecast;
  out(
    `forecast for ${h.pipeline} v${h.version} from ${f.runs} finished run(s)${h.basis === 'input' ? ' with this input' : ''}`,
  );
  out(
    `${'per run'.padEnd(24)} ${['p50', 'p95', 'p99', 'max'].map((x) => x.padStart(11)).join(' ')}`,
  );
  out(row('  cost', f.costUsd, usd));
  out(row('  budget needed', f.neededUsd, usd));
  out(row('  model calls', f.calls, String));
  out(row('  duration', f.durationMs, ms));
  for (const s of f.steps) {
    out(`step ${s.step} (${s.runs} run(s))`);
    out(row('  cost', s.costUsd, usd));
    out(row('  model calls', s.calls, String));
    out(row('  duration', s.durationMs, ms));
  }
  out(
    `--budget-usd auto would cap a run at ${usd(autoBudgetUsd(f))} (p99 of the budget needed, ${usd(f.neededUsd.p99)}, × ${AUTO_BUDGET_MARGIN}; the budget needed is a run's peak of spent + the next call's worst case, what the budget guard checks)`,
  );
}

/** The `forecast` verb, imported only when it runs. */
export function forecastAction() {
  return async (
    pipeline: string,
    o: { pipelineVersion?: string; input?: string; limit?: number; json?: boolean },
    cmd: Command,
  ) => {
    let name = pipeline;
    let version = o.pipelineVersion;
    const input = o.input !== undefined ? await parseInput(o.input) : undefined;
    if (isModulePath(pipeline)) {
      const prepared = await loadPipeline(pipeline);
      name = prepared.pipeline.name;
      version ??= prepared.pipeline.version;
      if (input !== undefined) parseRunInput(prepared.pipeline, input);
    }
    const store = await openStore(storeSpec(globals(cmd)));
    try {
      const h = await forecastFromStore(store, {
        pipeline: name,
        ...(version !== undefined ? { version } : {}),
        ...(input !== undefined ? { input } : {}),
        ...(o.limit !== undefined ? { limit: o.limit } : {}),
      });
      if (o.json)
        outJson({
          ...h,
          autoBudgetUsd: autoBudgetUsd(h.forecast),
          autoBudgetMargin: AUTO_BUDGET_MARGIN,
        });
      else printForecast(h);
    } finally {
      await store.close();
    }
  };
}
