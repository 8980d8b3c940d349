/**
 * Operator verbs: fork, verify, watch, viz and stranded-run detection, registered cheaply
 * (their implementation is operateVerbs.ts, imported when one runs).
 */
import type { Command } from 'commander';
import type { ExitBox } from './main.js';
import { lazyAction } from './lazy.js';
import { duration, nonNegativeNumber, portNumber, positiveInteger } from './options.js';

/** Collects a repeatable flag. */
const more = (v: string, prev: string[] = []): string[] => [...prev, v];

/** Registers fork, verify, watch and `runs --stranded`-style verbs. */
export function registerOperatorCommands(program: Command, box: ExitBox): void {
  program
    .command('fork')
    .description(
      'start a new run from the folded state of another at SEQ, reusing its recorded results before SEQ',
    )
    .argument('<runId>')
    .requiredOption(
      '--at <seq>',
      'copy the source log up to and including this seq',
      positiveInteger('--at'),
    )
    .option('--run-id <id>', 'the new run id')
    .option('--input <json>', 'a different input (JSON or @file.json)')
    .option(
      '--budget-usd <n>',
      'budget cap for the fork, from SEQ on',
      nonNegativeNumber('--budget-usd'),
    )
    .option(
      '--max-iterations <n>',
      'model-call cap for the fork, from SEQ on',
      positiveInteger('--max-iterations'),
    )
    .option(
      '--pipelines <paths...>',
      'pipeline files or directories (default: the module recorded with the run)',
    )
    .option('--json', 'print a JSON summary')
    .addHelpText('after', '\nExample:\n  plumbline fork 01J9Z... --at 5 --budget-usd 0.10')
    .action(lazyAction(async () => (await import('./operateVerbs.js')).forkAction(box)));

  program
    .command('verify')
    .description(
      'replay recorded logs against the current pipeline code; non-zero exit if any no longer matches',
    )
    .argument('[runIds...]')
    .option('--all', 'every run in the store')
    .option(
      '--pipelines <paths...>',
      'pipeline files or directories (default: the module recorded with each run)',
    )
    .option('--json', 'one JSON object per failing run (nothing else on stdout)')
    .addHelpText(
      'after',
      '\nChecks per run: the log reads back, its hash chain is unbroken, costs match usage and prices,\n' +
        "valid model outputs match their step's schema, today's code folds to the recorded states.\n" +
        'Ends with a table of the failing runs (run, seq, reason); exit 1 if any failed.\n' +
        '\nExample (CI, before a deploy):\n  plumbline verify --all --pipelines pipelines/',
    )
    .action(lazyAction(async () => (await import('./operateVerbs.js')).verifyAction(box)));

  program
    .command('watch')
    .description('live tail of run events: progress lines on a TTY, NDJSON with --json')
    .argument('[runId]')
    .option('--all', 'every run (live from now unless --from)')
    .option(
      '--from <seq>',
      'first seq of the run (or store position with --all)',
      positiveInteger('--from'),
    )
    .option('--json', 'NDJSON: one stored event per line')
    .addHelpText('after', '\nExample:\n  plumbline watch --all\n  plumbline watch 01J9Z... --json')
    .action(lazyAction(async () => (await import('./operateVerbs.js')).watchAction(box)));

  program
    .command('viz')
    .description('serve the statechart visualizer: runs drawn as paths through their charts, live')
    .option('--port <port>', 'port (default 7777; 0 picks one)', portNumber('--port'))
    .option('--host <host>', 'address to bind (default 127.0.0.1)', '127.0.0.1')
    .option('--pipelines <paths...>', 'also show these pipelines, even with no run yet')
    .option('--allowed-host <host>', 'also answer this Host (name or name:port); repeatable', more)
    .addHelpText('after', '\nExample:\n  plumbline viz --port 7777 --pipelines examples/')
    .action(lazyAction(async () => (await import('./operateVerbs.js')).vizAction()));

  program
    .command('stranded')
    .description(
      'list unfinished runs that nobody has touched for a while (then `resume` or `kill` them)',
    )
    .option(
      '--older-than <duration>',
      'idle for longer than this (default 30s); a run with a live lease is never listed',
      duration('--older-than'),
    )
    .option('--json', 'one JSON object per run')
    .addHelpText(
      'after',
      '\nExample:\n  plumbline stranded --older-than 10m   # same as: plumbline runs --stranded',
    )
    .action(lazyAction(async () => (await import('./operateVerbs.js')).strandedAction()));
}
