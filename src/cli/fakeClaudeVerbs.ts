/**
 * `plumbline fake-claude`: the bundled fake Anthropic Messages API as a process, scripted by a
 * JSON file, for tests in any language. Its URL goes to ANTHROPIC_BASE_URL.
 * (The implementation, imported by fakeClaude.ts only when the verb runs: issue 14.)
 */
import { readFile } from 'node:fs/promises';
import { UsageError } from '../errors.js';
import { startFakeClaude } from '../testing/fakeClaude.js';
import { fakeScriptFromJson, type JsonFakeScript } from '../testing/fakeScript.js';
import { out } from './options.js';
import { listening } from './listen.js';

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

/** The `fake-claude` verb, imported only when it runs. */
export function fakeClaudeAction() {
  return async (o: {
    port?: number;
    script?: string;
    rpm?: number;
    itpm?: number;
    otpm?: number;
  }) => {
    if (o.rpm === undefined && (o.itpm !== undefined || o.otpm !== undefined))
      throw new UsageError('--itpm and --otpm need --rpm: pass the requests per minute too');
    const scripted = o.script !== undefined ? await readFakeScript(o.script) : undefined;
    const port = o.port ?? 0;
    const fake = await listening('--port', port, '127.0.0.1', () =>
      startFakeClaude({
        port,
        ...(scripted !== undefined ? { script: scripted.script } : {}),
        ...(scripted?.usage !== undefined ? { usage: scripted.usage } : {}),
        ...(scripted?.batches !== undefined ? { batches: scripted.batches } : {}),
        ...(o.rpm !== undefined
          ? {
              rateLimits: {
                requestsPerMinute: o.rpm,
                ...(o.itpm !== undefined ? { inputTokensPerMinute: o.itpm } : {}),
                ...(o.otpm !== undefined ? { outputTokensPerMinute: o.otpm } : {}),
              },
            }
          : {}),
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
  };
}
