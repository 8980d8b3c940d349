/**
 * Fleet verbs: `start` (queue a run on the bus) and `worker` (drive queued runs), over the
 * embedded store (a SQLite work queue) or NATS JetStream (a work-queue stream). Registered
 * cheaply; the implementation is fleetVerbs.ts, imported when one runs.
 */
import type { Command } from 'commander';
import { addLimitOptions } from './limitOptions.js';
import { addRateOptions } from './rateOptions.js';
import { lazyAction } from './lazy.js';
import { duration, portNumber, positiveInteger } from './options.js';

/** Registers `start` and `worker`. */
export function registerFleetCommands(program: Command): void {
  addLimitOptions(
    program
      .command('start')
      .description(
        'queue a run for the workers (a duplicate start of the same run id is dropped, and says so)',
      )
      .argument('<pipeline>', 'a pipeline module path, or a pipeline name the workers load')
      .option('--input <json>', 'the run input: JSON, or @file.json')
      .option('--run-id <id>', 'the run id (default: a new ULID); also the deduplication key'),
  )
    .option('--json', 'print {runId, duplicate} as JSON')
    .addHelpText(
      'after',
      '\nExample:\n  plumbline start examples/triage.ts --store nats://127.0.0.1:4222 --input @ticket.json --run-id T-1001',
    )
    .action(lazyAction(async () => (await import('./fleetVerbs.js')).startAction()));

  program
    .command('dlq')
    .description('list dead-lettered commands with the reason each was given up on')
    .option('--json', 'one JSON object per dead letter')
    .addHelpText('after', '\nExample:\n  plumbline dlq --store nats://127.0.0.1:4222')
    .action(lazyAction(async () => (await import('./fleetVerbs.js')).dlqAction()));

  const worker = program
    .command('worker')
    .description(
      'drive queued runs: take start/resume commands, heartbeat, ack when terminal or parked',
    )
    .requiredOption('--pipelines <paths...>', 'pipeline files or directories this worker can run')
    .option(
      '--concurrency <n>',
      'runs driven at once (default 8)',
      positiveInteger('--concurrency'),
    )
    .option(
      '--ack-wait <duration>',
      "a dead worker's runs go to another worker this long after its last heartbeat, sent every ack wait / 5 (default 1.5s)",
      duration('--ack-wait'),
    )
    .option(
      '--max-deliver <n>',
      'deliveries before a command is dead-lettered (default 5)',
      positiveInteger('--max-deliver'),
    )
    .option(
      '--metrics-port <port>',
      'serve Prometheus metrics on HOST:PORT/metrics',
      portNumber('--metrics-port'),
    )
    .option(
      '--metrics-host <host>',
      'address for the metrics server (default 127.0.0.1)',
      '127.0.0.1',
    )
    .option(
      '--stranded-after <duration>',
      're-queue running runs untouched this long whose lease lapsed (default 60s)',
      duration('--stranded-after'),
    )
    .option(
      '--unload-backoff <duration>',
      'a run whose retry backoff is at least this long waits for it in the store, not in this worker (default 10s)',
      duration('--unload-backoff'),
    );
  addRateOptions(worker)
    .addHelpText(
      'after',
      '\nExample:\n  plumbline worker --store nats://127.0.0.1:4222 --pipelines examples/ --concurrency 16 --metrics-port 9464',
    )
    .action(lazyAction(async () => (await import('./fleetVerbs.js')).workerAction()));
}
