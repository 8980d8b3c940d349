/**
 * `plumbline fake-claude`: the bundled fake Anthropic Messages API as a process, scripted by a
 * JSON file, for tests in any language. Its URL goes to ANTHROPIC_BASE_URL. Registered cheaply;
 * the implementation is fakeClaudeVerbs.ts, imported when it runs.
 */
import type { Command } from 'commander';
import { lazyAction } from './lazy.js';
import { portNumber, positiveInteger } from './options.js';

const FORMAT_HELP = `
Script (JSON): answers used in order, then "then": "repeat" (the last answer again, the default)
or an action. A bare array is the answers. Without --script every request gets "valid".
  {
    "usage": { "input_tokens": 420, "output_tokens": 85 },
    "answers": [
      { "kind": "status", "status": 529 },
      { "kind": "delay", "ms": 200, "then": { "kind": "json", "value": { "label": "bug" } } }
    ],
    "then": { "kind": "valid" }
  }
Kinds: valid (a sample of the requested schema), json {value}, text {text},
  status {status, message?, errorType?, errorCode?, headers?, body?}, drop (closes the socket),
  delay {ms, then}, refusal {text?}, max_tokens; answers take an optional usage.
Message Batches (/v1/messages/batches) are served too: each item takes the next answer (a
  status answer makes an errored item); "batches": {"endAfterPolls": 3} ends each batch at its
  third retrieve (default the first).

Prints the base URL on stdout, then serves until Ctrl-C (SIGINT/SIGTERM).

Example:
  plumbline fake-claude --port 4010 --script answers.json &
  ANTHROPIC_BASE_URL=http://127.0.0.1:4010 plumbline run examples/triage.ts --input @ticket.json`;

/** Registers `fake-claude`. */
export function registerFakeClaudeCommand(program: Command): void {
  program
    .command('fake-claude')
    .description('serve a scripted fake Claude (Messages API) on 127.0.0.1 for tests')
    .option('--port <port>', 'port (default 0: any free port)', portNumber('--port'))
    .option('--script <file>', 'a JSON script of answers (format below)')
    .option(
      '--rpm <n>',
      'enforce this many requests per minute (429 + retry-after; anthropic-ratelimit-* headers on every answer)',
      positiveInteger('--rpm'),
    )
    .option(
      '--itpm <n>',
      'enforce this many input tokens per minute (needs --rpm)',
      positiveInteger('--itpm'),
    )
    .option(
      '--otpm <n>',
      'enforce this many output tokens per minute, charged at max_tokens on arrival (needs --rpm)',
      positiveInteger('--otpm'),
    )
    .addHelpText('after', FORMAT_HELP)
    .action(lazyAction(async () => (await import('./fakeClaudeVerbs.js')).fakeClaudeAction()));
}
