/**
 * `plumbline forecast`: what a run of a pipeline version costs, how many model calls it makes
 * and how long it takes, from the finished runs in the store; and `--budget-usd auto`.
 */
import type { Command } from 'commander';
import { UsageError } from '../errors.js';
import { loadPipeline } from '../runtime/load.js';
import { parseRunInput } from '../runtime/prepare.js';
import { AUTO_BUDGET_MARGIN, autoBudgetUsd, type Spread } from '../runtime/forecast.js';
import { forecastFromStore, type HistoryForecast } from '../runtime/forecastHistory.js';
import {
  globals,
  nonNegativeNumber,
  openStore,
  out,
  outJson,
  parseInput,
  positiveInteger,
  storeSpec,
} from './context.js';
import { usd } from './format.js';

/** True when a pipeline argument names a module file rather than a pipeline by name. */
export function isModulePath(arg: string): boolean {
  return /\.(m?ts|m?js)$/.test(arg);
}

/** Parses `--budget-usd`: a number >= 0, or `auto` (the forecast's p99 × a margin). */
export function budgetOrAuto(name: string): (v: string) => number | 'auto' {
  const num = nonNegativeNumber(name);
  return (v) => {
    if (v.trim() === 'auto') return 'auto';
    try {
      return num(v);
    } catch (e) {
      throw new UsageError(
        `${(e as Error).message}, or auto (from the finished runs: see plumbline forecast)`,
      );
    }
  };
}

/** The help text of `--budget-usd` where `auto` is accepted. */
export const BUDGET_AUTO_HELP = `budget cap in USD for this run, or auto: the forecast's p99 budget needed × ${AUTO_BUDGET_MARGIN} (needs finished runs of this pipeline version in the store; see plumbline forecast)`;

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

/** Registers `forecast`. */
export function registerForecastCommand(program: Command): void {
  program
    .command('forecast')
    .description(
      'p50 / p95 / p99 / max cost, model calls and duration of a run, per run and per step, from the finished runs of a pipeline version',
    )
    .argument('<pipeline>', 'a pipeline module path, or a pipeline name')
    .option(
      '--pipeline-version <v>',
      "the version (default: the module's, or the newest with finished runs)",
    )
    .option(
      '--input <json>',
      'base it on the runs that had this input when there are any (JSON, or @file.json)',
    )
    .option(
      '--limit <n>',
      'read at most this many runs, newest first (default 1000)',
      positiveInteger('--limit'),
    )
    .option('--json', 'print the forecast as one JSON object')
    .addHelpText(
      'after',
      '\nFinished runs are completed, failed or killed ones; forks are left out. Costs include calls lost mid-flight at their reservation.\n\nExample:\n  plumbline forecast examples/triage.ts\n  plumbline forecast triage --json',
    )
    .action(
      async (
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
      },
    );
}
