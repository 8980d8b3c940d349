/**
 * `plumbline fake-claude`: the bundled fake Anthropic Messages API as a process, scripted by a
 * JSON file, for tests in any language. Its URL goes to ANTHROPIC_BASE_URL.
 */
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { UsageError } from '../errors.js';
import { startFakeClaude } from '../testing/fakeClaude.js';
import { fakeScriptFromJson, type JsonFakeScript } from '../testing/fakeScript.js';
import { out, portNumber } from './context.js';
import { listening } from './listen.js';

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

Prints the base URL on stdout, then serves until Ctrl-C (SIGINT/SIGTERM).

Example:
  plumbline fake-claude --port 4010 --script answers.json &
  ANTHROPIC_BASE_URL=http://127.0.0.1:4010 plumbline run examples/triage.ts --input @ticket.json`;

/** Reads and checks a script file. */
export async function readFakeScript(file: string): Promise<JsonFakeScript> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new UsageError(`--script ${file}: cannot read it (${(e as Error).message})`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text) as unknown;
  } catch (e) {
    throw new UsageError(`--script ${file}: not JSON (${(e as Error).message})`);
  }
  return fakeScriptFromJson(value, `--script ${file}`);
}

/** Registers `fake-claude`. */
export function registerFakeClaudeCommand(program: Command): void {
  program
    .command('fake-claude')
    .description('serve a scripted fake Claude (Messages API) on 127.0.0.1 for tests')
    .option('--port <port>', 'port (default 0: any free port)', portNumber('--port'))
    .option('--script <file>', 'a JSON script of answers (format below)')
    .addHelpText('after', FORMAT_HELP)
    .action(async (o: { port?: number; script?: string }) => {
      const scripted = o.script !== undefined ? await readFakeScript(o.script) : undefined;
      const port = o.port ?? 0;
      const fake = await listening('--port', port, '127.0.0.1', () =>
        startFakeClaude({
          port,
          ...(scripted !== undefined ? { script: scripted.script } : {}),
          ...(scripted?.usage !== undefined ? { usage: scripted.usage } : {}),
        }),
      );
      out(fake.url);
      process.stderr.write(
        `plumbline: fake Claude on ${fake.url}: set ANTHROPIC_BASE_URL=${fake.url} (Ctrl-C to stop)\n`,
      );
      await new Promise<void>((resolve) => {
        process.once('SIGINT', resolve);
        process.once('SIGTERM', resolve);
      });
      process.stderr.write(`plumbline: fake Claude served ${fake.count} requests\n`);
      await fake.close();
    });
}
