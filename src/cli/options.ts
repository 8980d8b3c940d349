/**
 * The light half of the CLI context: global options, the store spec, secrets scrubbing, output
 * and flag parsers. Verb registration imports only this (no store adapter, SDK, zod or pino),
 * so that `--help` and a light verb start fast (issue 14); {@link ./context.ts} has the rest.
 */
import type { Command } from 'commander';
import { DEFAULT_STORE_URL } from '../backend.js';
import { UsageError } from '../errors.js';
import { scrubText, secretsFromEnv } from '../runtime/redact.js';
import { parseStoreSpec } from '../store/spec.js';

/** The default embedded store path. */
export const DEFAULT_STORE = DEFAULT_STORE_URL;

/** Options every verb accepts. */
export interface GlobalOptions {
  store?: string;
  json?: boolean;
  logLevel?: string;
}

/** The global options (`--store`, `--log-level`) merged with a verb's own. */
export function globals(cmd: Command): GlobalOptions {
  return cmd.optsWithGlobals<GlobalOptions>();
}

/**
 * The store spec: `--store`, then `PLUMBLINE_STORE`, then `./.plumbline/plumbline.db`; a spec
 * that is neither a file path nor a NATS URL is refused here, naming where it came from.
 */
export function storeSpec(opts: GlobalOptions): string {
  const env = process.env.PLUMBLINE_STORE;
  const spec = opts.store ?? (env !== undefined && env !== '' ? env : DEFAULT_STORE);
  parseStoreSpec(spec, opts.store !== undefined ? '--store' : 'PLUMBLINE_STORE');
  return spec;
}

/** Store specs opened by this process, so that output scrubs their credentials too. */
const openedSpecs = new Set<string>();

/** Records a store spec this process opened, so that {@link cliSecrets} scrubs its credentials. */
export function rememberSpec(spec: string): void {
  openedSpecs.add(spec);
}

const secretsMemo = new Map<string, string[]>();

/**
 * The secret values the CLI scrubs everywhere: the environment's (read once per process) and
 * the store specs' credentials.
 */
export function cliSecrets(spec?: string): string[] {
  const specs = [spec, ...openedSpecs];
  const key = specs.join('\n');
  let secrets = secretsMemo.get(key);
  if (secrets === undefined) {
    secrets = secretsFromEnv(process.env, specs);
    secretsMemo.set(key, secrets);
  }
  return secrets;
}

/** Writes one line to stdout, scrubbed of the environment's secrets. */
export function out(line: string): void {
  process.stdout.write(`${scrubText(line, cliSecrets())}\n`);
}

/** Writes one JSON object as a line to stdout, scrubbed of the environment's secrets. */
export function outJson(value: unknown): void {
  process.stdout.write(`${scrubText(JSON.stringify(value), cliSecrets())}\n`);
}

/** Parses `--input JSON` or `--input @file.json`. */
export async function parseInput(raw: string | undefined): Promise<unknown> {
  if (raw === undefined) return {};
  let text = raw;
  if (raw.startsWith('@')) {
    const { readFile } = await import('node:fs/promises');
    try {
      text = await readFile(raw.slice(1), 'utf8');
    } catch (e) {
      throw new UsageError(`--input ${raw}: cannot read the file (${(e as Error).message})`);
    }
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new UsageError(
      `--input is not valid JSON (${(e as Error).message}): pass a JSON object or @file.json`,
    );
  }
}

/** A CLI option parser: throws a one-line UsageError naming the flag and what it accepts. */
export type OptionParser = (v: string) => number;

const DECIMAL = /^(\d+(\.\d*)?|\.\d+)$/;
const WHOLE = /^\d+$/;

function numberOption(name: string, what: string, ok: (raw: string, n: number) => boolean) {
  return (v: string): number => {
    const raw = v.trim();
    const n = Number(raw);
    if (!ok(raw, n) || !Number.isFinite(n))
      throw new UsageError(`${name} must be ${what}, got '${v}'`);
    return n;
  };
}

/** Parses an amount like `--budget-usd`: a decimal number >= 0. */
export function nonNegativeNumber(name: string): OptionParser {
  return numberOption(name, 'a number >= 0, e.g. 0.25', (raw) => DECIMAL.test(raw));
}

/** Parses a count or a seq like `--max-iterations`: a whole number >= 1. */
export function positiveInteger(name: string): OptionParser {
  return numberOption(name, 'a whole number >= 1', (raw, n) => WHOLE.test(raw) && n >= 1);
}

/** Parses a TCP port: a whole number from 0 (any free port) to 65535. */
export function portNumber(name: string): OptionParser {
  return numberOption(
    name,
    'a port from 0 (any free port) to 65535',
    (raw, n) => WHOLE.test(raw) && n <= 65_535,
  );
}

/**
 * Parses a duration with its unit (`500ms`, `90s`, `15m`, `2h`, `1d`) for option `name`; a bare
 * number is refused, since `--deadline 5` reads as five somethings but would be 5 ms.
 */
export function duration(name: string): OptionParser {
  return (v) => {
    const raw = v.trim();
    if (/^\d+(?:\.\d+)?$/.test(raw))
      throw new UsageError(`${name} ${raw}: give a unit, e.g. ${raw}s or ${raw}m (ms, s, m, h, d)`);
    const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(raw);
    if (m === null)
      throw new UsageError(`${name} '${v}' is not a duration: use e.g. 500ms, 90s, 15m, 2h`);
    const unit = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as 'ms'];
    return Number(m[1]) * unit;
  };
}

/** Parses `--deadline` (see {@link duration}). */
export const parseDuration: OptionParser = duration('--deadline');
