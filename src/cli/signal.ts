/**
 * `plumbline signal <runId> <signal> --data '{…}'`: sends a signal to a run's wait step (the
 * payload checked against its schema first: a bad one is refused, nothing kept). A run already
 * waiting is driven on here (embedded store) or queued for a worker (NATS, or `--queue`); a run
 * not there yet takes it when it arrives. Registered cheaply; the implementation is
 * signalVerbs.ts, imported when it runs.
 */
import type { Command } from 'commander';
import type { ExitBox } from './main.js';
import { lazyAction } from './lazy.js';

/** Registers `plumbline signal`. */
export function registerSignalCommand(program: Command, box: ExitBox): void {
  program
    .command('signal')
    .description("send a signal to a run's wait step: its payload becomes the step's output")
    .argument('<runId>')
    .argument('<signal>', "the wait step's signal name")
    .option('--data <json>', 'the payload (JSON), checked against the wait step schema', '{}')
    .option('--by <who>', 'who sends it (recorded in the log)')
    .option('--queue', 'queue the waiting run for a worker instead of driving it here')
    .option(
      '--pipelines <paths...>',
      'pipeline files or directories (default: the module recorded with the run)',
    )
    .option('--json', 'print the outcome as JSON')
    .addHelpText(
      'after',
      `\nExample:\n  plumbline signal 01J9Z... approve --data '{"ok":true,"by":"ana"}' --by ana`,
    )
    .action(lazyAction(async () => (await import('./signalVerbs.js')).signalAction(box)));
}
