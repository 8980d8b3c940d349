/**
 * `plumbline forecast`: what a run of a pipeline version costs, how many model calls it makes
 * and how long it takes, from the finished runs in the store; and `--budget-usd auto`.
 * Registered cheaply; the implementation is forecastVerbs.ts, imported when it runs.
 */
import type { Command } from 'commander';
import { UsageError } from '../errors.js';
import { lazyAction } from './lazy.js';
import { nonNegativeNumber, positiveInteger } from './options.js';

/**
 * The margin `--budget-usd auto` puts on the p99, for help text: equal to AUTO_BUDGET_MARGIN
 * in runtime/forecast.ts (a test checks), not imported from there since that loads xstate.
 */
export const HELP_AUTO_BUDGET_MARGIN = 1.5;

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
export const BUDGET_AUTO_HELP = `budget cap in USD for this run, or auto: the forecast's p99 budget needed × ${HELP_AUTO_BUDGET_MARGIN} (needs finished runs of this pipeline version in the store; see plumbline forecast)`;

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
    .action(lazyAction(async () => (await import('./forecastVerbs.js')).forecastAction()));
}
