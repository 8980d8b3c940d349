/**
 * The per-run limit flags shared by `run` and `start`: one definition, so both verbs take the
 * same caps with the same parsing and help.
 */
import type { Command } from 'commander';
import { parseDuration, positiveInteger } from './options.js';
import { BUDGET_AUTO_HELP, budgetOrAuto } from './forecast.js';

/** Adds --budget-usd, --max-iterations, --deadline and the token caps to `c`. */
export function addLimitOptions(c: Command): Command {
  return c
    .option('--budget-usd <n>', BUDGET_AUTO_HELP, budgetOrAuto('--budget-usd'))
    .option(
      '--max-iterations <n>',
      'cap on model calls for this run',
      positiveInteger('--max-iterations'),
    )
    .option('--deadline <duration>', 'wall-clock limit from now, e.g. 90s, 15m, 2h', parseDuration)
    .option(
      '--max-input-tokens <n>',
      'cap on input tokens for this run (each call reserves its input bound)',
      positiveInteger('--max-input-tokens'),
    )
    .option(
      '--max-output-tokens <n>',
      'cap on output tokens for this run (each call reserves its max_tokens)',
      positiveInteger('--max-output-tokens'),
    );
}
