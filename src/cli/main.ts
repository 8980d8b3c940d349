/**
 * The `plumbline` command: run, resume, replay, runs, cost, kill, demo (and more verbs as they land).
 * Exit codes: 0 completed, 1 failed, 2 usage or configuration error, 3 killed or parked.
 */
import { Command, CommanderError, Option } from 'commander';
import { isPlumblineError, isUsageError, serializeError } from '../errors.js';
import type { RunStatus } from '../machines/events.js';
import { registerCommands } from './commands.js';
import { cliSecrets } from './options.js';
import { exitQuietlyOnBrokenPipe } from './pipes.js';
import { scrubText } from '../runtime/redact.js';
import { VERSION } from '../version.js';

/** Exit code for a run status. */
export function exitCodeFor(status: RunStatus): number {
  if (status === 'completed') return 0;
  if (status === 'failed') return 1;
  if (status === 'running') return 1;
  return 3;
}

/** A holder for the exit code verbs set. */
export interface ExitBox {
  code: number;
}

/** Builds the program (exported for tests of the help text). */
export function buildProgram(box: ExitBox): Command {
  const program = new Command('plumbline')
    .description(
      'A durable runtime for LLM pipelines: every step logged, replayable, resumable, capped.',
    )
    .addOption(
      new Option('--store <spec>', 'SQLite path or nats:// URL (env PLUMBLINE_STORE)').default(
        undefined,
      ),
    )
    .option(
      '--log-level <level>',
      'pino level: trace, debug, info, warn, error, silent (env PLUMBLINE_LOG_LEVEL)',
    )
    .version(VERSION, '-V, --version', 'print the version of plumbline')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  registerCommands(program, box);
  program.commands.forEach((c) => c.exitOverride());
  return program;
}

/** Runs the CLI with `argv` and returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  exitQuietlyOnBrokenPipe();
  const box: ExitBox = { code: 0 };
  const program = buildProgram(box);
  // An error may quote a credential (a provider's message, a store URL): never print it.
  const fail = (text: string): void => {
    const spec = program.opts<{ store?: string }>().store;
    process.stderr.write(`plumbline: ${scrubText(text, cliSecrets(spec))}\n`);
  };
  try {
    await program.parseAsync(argv);
    return box.code;
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version') return 0;
      // `plumbline help` exits 0; help shown because no verb was given is a usage error.
      if (e.code === 'commander.help') return e.exitCode === 0 ? 0 : 2;
      return 2;
    }
    if (isUsageError(e)) {
      fail(e.message);
      return 2;
    }
    if (isPlumblineError(e)) {
      fail(e.message);
      return 1;
    }
    const err = serializeError(e);
    fail(`unexpected ${err.name}: ${err.message}`);
    return 1;
  }
}
