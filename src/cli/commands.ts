/**
 * The CLI verbs, registered cheaply: names, flags and help here; each verb's implementation
 * (commandsVerbs.ts and its siblings) is imported only when that verb runs (issue 14).
 */
import type { Command } from 'commander';
import type { ExitBox } from './main.js';
import { nonNegativeNumber, parseDuration, positiveInteger } from './options.js';
import { lazyAction } from './lazy.js';
import { registerFakeClaudeCommand } from './fakeClaude.js';
import { registerOperatorCommands } from './operate.js';
import { registerRunsCommand } from './runs.js';
import { registerFleetCommands } from './fleet.js';
import { addLimitOptions } from './limitOptions.js';
import { registerForecastCommand } from './forecast.js';
import { registerSignalCommand } from './signal.js';

/** Registers every verb on `program`. */
export function registerCommands(program: Command, box: ExitBox): void {
  addLimitOptions(
    program
      .command('run')
      .description('drive one run of a pipeline to the end in this process')
      .argument('<pipeline-file>', 'a .ts or .js module whose default export is a pipeline')
      .option('--input <json>', 'the run input: JSON, or @file.json')
      .option('--run-id <id>', 'the run id (default: a new ULID)')
      .option('--json', 'print events and a summary as NDJSON (nothing else on stdout)')
      .option('--verbose', 'log lines to stderr (default on a terminal: a file under the store)')
      .addHelpText(
        'after',
        '\nOn a terminal: one live progress line, a short summary, log lines in <store dir>/logs/<date>.log.\n\nExample:\n  plumbline run examples/triage.ts --input \'{"id":"T-1","from":"a@b.c","subject":"down","body":"prod is down"}\'',
      ),
  ).action(lazyAction(async () => (await import('./commandsVerbs.js')).runAction(box)));

  program
    .command('resume')
    .description(
      'resume one unfinished run (raising its limits if parked), or every unfinished run',
    )
    .argument('[runId]', 'the run to resume (default: every run still running)')
    .option(
      '--pipelines <paths...>',
      'pipeline files or directories (default: the module recorded with the run)',
    )
    .option('--include-parked', 'without a run id: also resume parked runs')
    .option('--budget-usd <n>', 'new budget cap in USD', nonNegativeNumber('--budget-usd'))
    .option('--max-iterations <n>', 'new cap on model calls', positiveInteger('--max-iterations'))
    .option('--deadline <duration>', 'new wall-clock limit from now', parseDuration)
    .option(
      '--max-input-tokens <n>',
      'new cap on input tokens',
      positiveInteger('--max-input-tokens'),
    )
    .option(
      '--max-output-tokens <n>',
      'new cap on output tokens',
      positiveInteger('--max-output-tokens'),
    )
    .option('--json', 'print one summary line per run as JSON')
    .addHelpText('after', '\nExample:\n  plumbline resume 01J9Z... --budget-usd 0.05')
    .action(lazyAction(async () => (await import('./commandsVerbs.js')).resumeAction(box)));

  program
    .command('replay')
    .description(
      "fold a run's log without side effects, print every transition, check the recorded states; under each join, the child runs' outcomes",
    )
    .argument('<runId>')
    .option('--until <seq>', 'stop after this seq', positiveInteger('--until'))
    .option(
      '--pipelines <paths...>',
      'pipeline files or directories (default: the module recorded with the run)',
    )
    .option('--json', 'one JSON object per transition')
    .addHelpText('after', '\nExample:\n  plumbline replay 01J9Z... --until 12')
    .action(lazyAction(async () => (await import('./commandsVerbs.js')).replayAction()));

  registerRunsCommand(program);

  program
    .command('cost')
    .description('spend from the log: totals by pipeline, model, day or top-level run')
    .option(
      '--by <key>',
      'pipeline | model | day | run (a top-level run with its child runs: folds every log)',
      'pipeline',
    )
    .option(
      '--from-log',
      'fold every log instead of reading the rollups (slow; names unreadable runs)',
    )
    .option('--json', 'one JSON object per row')
    .addHelpText(
      'after',
      "\nA call whose process died mid-call is counted at its reservation and shown as unconfirmed.\nA fork's copied calls count once, to the run that made them; a child run's calls\n(map items, parallel branches, calls) count once, to the child (its pipeline), never again in\nits parent's rolled-up cost; --by run sums each top-level run with all its children.\nTotals come from rollups kept as runs end, plus the events of unfinished runs; with --from-log,\nruns whose log cannot be read are left out and named on stderr (exit 1).\n\nExample:\n  plumbline cost --by model\n  plumbline cost --by run",
    )
    .action(lazyAction(async () => (await import('./costVerb.js')).costAction(box)));

  program
    .command('kill')
    .description(
      'set a durable kill flag: the run stops before its next call or effect, and never resumes',
    )
    .argument('[runId]')
    .option('--all', 'kill every unfinished run')
    .option('--pipeline <name>', 'with --all: only runs of this pipeline')
    .option('--reason <text>', 'why (recorded in the log)', 'killed by operator')
    .option(
      '--pipelines <paths...>',
      'pipeline files or directories (to record the kill in parked runs)',
    )
    .option('--json', 'one JSON object per run killed')
    .addHelpText(
      'after',
      '\nExample:\n  plumbline kill 01J9Z... --reason "runaway loop"\n  plumbline kill --all --pipeline triage',
    )
    .action(lazyAction(async () => (await import('./commandsVerbs.js')).killAction()));

  registerOperatorCommands(program, box);
  registerFleetCommands(program);
  registerForecastCommand(program);
  registerSignalCommand(program, box);
  registerFakeClaudeCommand(program);

  program
    .command('demo')
    .description(
      'run the examples end to end: ticket triage, a route and a map (fake Claude when ANTHROPIC_API_KEY is unset)',
    )
    .option(
      '--tickets <n>',
      'how many sample tickets to triage (default 5)',
      positiveInteger('--tickets'),
    )
    .addHelpText('after', '\nExample:\n  plumbline demo --store /tmp/demo.db')
    .action(lazyAction(async () => (await import('./commandsVerbs.js')).demoAction(box)));
}
