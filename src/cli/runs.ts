/**
 * `plumbline runs`: the run index, a page at a time. Child runs (map items, parallel branches,
 * calls) are not rows of their own: each run says how many children it has and how they ended,
 * `--tree` nests them under their parent (a long map as a few rows and a count of the rest),
 * `--parent <runId>` pages through one run's children, and `--flat` lists every run as a row.
 * Registered cheaply; the implementation is runsVerbs.ts, imported when it runs.
 */
import type { Command } from 'commander';
import { lazyAction } from './lazy.js';
import { duration, positiveInteger } from './options.js';

/** How many children `--tree` shows under each run unless told (`--children`). */
export const TREE_CHILDREN = 20;

/** Registers `plumbline runs`. */
export function registerRunsCommand(program: Command): void {
  program
    .command('runs')
    .description(
      'list runs: id, pipeline, version, status, cost (and how much of it is unconfirmed), events, started, ended, children',
    )
    .option('--status <status>', 'only runs with this status')
    .option('--pipeline <name>', 'only runs of this pipeline')
    .option(
      '--limit <n>',
      'at most this many runs, newest first (default 50)',
      positiveInteger('--limit'),
    )
    .option('--after <runId>', 'the page after this run (the last one of the previous page)')
    .option('--all', 'every run (no paging)')
    .option('--tree', "each run's child runs nested beneath it")
    .option(
      '--children <n>',
      `with --tree: at most this many children shown per run, failed ones first (default ${TREE_CHILDREN})`,
      positiveInteger('--children'),
    )
    .option('--parent <runId>', 'the child runs of this run (paged like the runs)')
    .option('--flat', 'child runs as rows of their own, among the top-level runs')
    .option(
      '--stranded',
      'only running runs whose driver is gone (no live lease), quiet for --older-than (default 30s)',
    )
    .option('--older-than <duration>', 'with --stranded: idle threshold', duration('--older-than'))
    .option(
      '--waiting',
      'only waiting runs: what each waits for (a signal or a time) and since when',
    )
    .option('--json', 'one JSON object per run')
    .addHelpText(
      'after',
      "\nChild runs (map items, parallel branches, calls) are counted in their parent's row, not listed;\n" +
        "a parent's cost includes its children's once they joined.\n" +
        '\nWhen more runs follow the page, stderr says how to ask for the next one (more: --after <runId>).\n' +
        '\nExample:\n  plumbline runs --status parked --json\n  plumbline runs --limit 20 --after 01J9Z...\n  plumbline runs --tree\n  plumbline runs --parent 01J9Z... --status failed\n  plumbline runs --stranded --older-than 10m',
    )
    .action(lazyAction(async () => (await import('./runsVerbs.js')).runsAction()));
}
