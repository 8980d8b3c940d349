/**
 * What every CLI verb needs: the store named by `--store` / `PLUMBLINE_STORE`, a model client
 * from the environment, a logger, and output helpers that respect `--json`.
 */
import { createWriteStream, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Command } from 'commander';
import { DEFAULT_STORE_URL, openStoreFromUrl } from '../backend.js';
import { UsageError } from '../errors.js';
import { createAnthropicClient } from '../model/anthropic.js';
import type { ModelClient } from '../model/types.js';
import { createLogger, type Logger } from '../runtime/logger.js';
import { scrubText, secretsFromEnv } from '../runtime/redact.js';
import { redactingStore } from '../store/redacting.js';
import { parseStoreSpec } from '../store/spec.js';
import type { Store } from '../store/types.js';
import type { BreakerConfig } from '../machines/breaker.js';
import { Breakers } from '../runtime/breakers.js';
import { Runtime, type RuntimeOptions } from '../runtime/driver.js';
import type { Prepared } from '../runtime/prepare.js';

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

/**
 * Opens the store named by a spec (any form `openBackend` accepts: a SQLite path, a `nats://`
 * URL); what is written to it is scrubbed of {@link cliSecrets}.
 */
export async function openStore(spec: string): Promise<Store> {
  return scrubbedStore(spec, await openStoreFromUrl(spec));
}

/** Wraps a store opened from `spec` so that what is written to it is scrubbed of {@link cliSecrets}. */
export function scrubbedStore(spec: string, store: Store): Store {
  openedSpecs.add(spec);
  return redactingStore(store, cliSecrets(spec));
}

/** The model settings from the environment, or a UsageError naming the variables to set. */
function modelSettings(): { apiKey: string; baseURL?: string } {
  const apiKey = process.env.ANTHROPIC_API_KEY;
  const baseURL = process.env.ANTHROPIC_BASE_URL;
  if (apiKey === undefined || apiKey === '') {
    if (baseURL === undefined || baseURL === '') {
      throw new UsageError(
        'no model configured: set ANTHROPIC_API_KEY (or ANTHROPIC_BASE_URL for a fake Claude; `plumbline demo` starts one)',
      );
    }
    return { apiKey: 'no-key', baseURL };
  }
  return { apiKey, ...(baseURL ? { baseURL } : {}) };
}

/** A model client from the environment: `ANTHROPIC_API_KEY`, and `ANTHROPIC_BASE_URL` if set. */
export function modelFromEnv(): ModelClient {
  return createAnthropicClient(modelSettings());
}

/**
 * Refuses, before anything is written, to drive a pipeline that calls a model when none is
 * configured (otherwise the run would be recorded and then stop at its first call, unfinished).
 */
export function requireModelFor(prepared: Prepared): void {
  if (prepared.pipeline.steps.some((s) => s.kind === 'llm' || s.kind === 'agent')) modelSettings();
}

/**
 * The CLI's logger: JSON to stderr (pretty on a TTY), or JSON lines to `destination`; level
 * from `--log-level`.
 */
export function cliLogger(opts: GlobalOptions, destination?: NodeJS.WritableStream): Logger {
  const extra = (process.env.PLUMBLINE_REDACT ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  return createLogger({
    ...(opts.logLevel !== undefined ? { level: opts.logLevel } : {}),
    redact: extra,
    secrets: cliSecrets(storeSpec(opts)),
    ...(destination !== undefined ? { destination } : {}),
  });
}

/**
 * Where `run` writes its log lines when a person is watching: `<store dir>/logs/<UTC date>.log`
 * beside a SQLite store, `.plumbline/logs/` for a NATS one.
 */
export function logFileFor(spec: string, now = new Date()): string {
  const target = parseStoreSpec(spec);
  const dir =
    target.kind === 'sqlite' && target.path !== ':memory:' ? dirname(target.path) : '.plumbline';
  return join(dir, 'logs', `${now.toISOString().slice(0, 10)}.log`);
}

/** Opens a log file for appending, creating its folder. */
export function openLogFile(path: string): NodeJS.WritableStream {
  mkdirSync(dirname(path), { recursive: true });
  return createWriteStream(path, { flags: 'a' });
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

/** The runtime every verb drives runs with: store, model from the environment, breakers, logger. */
export function makeRuntime(
  store: Store,
  g: GlobalOptions,
  extra: Partial<RuntimeOptions> = {},
): Runtime {
  const logger = cliLogger(g);
  return new Runtime({
    store,
    modelFactory: modelFromEnv,
    logger,
    breakers: new Breakers(store.control, breakerConfigFromEnv(), logger),
    ...(process.env.PLUMBLINE_LOG_MAX_CHARS
      ? { logMaxChars: Number(process.env.PLUMBLINE_LOG_MAX_CHARS) }
      : {}),
    // A verb runs and exits: it must not leave breaker resumes behind it (workers resume
    // breaker-parked runs through the bus; `resume --include-parked` does it by hand).
    autoResume: false,
    ...extra,
  });
}

/** Breaker settings from `PLUMBLINE_BREAKER` (JSON, e.g. `{"coolDownMs":5000}`). */
export function breakerConfigFromEnv(): Partial<BreakerConfig> {
  const raw = process.env.PLUMBLINE_BREAKER;
  if (raw === undefined || raw === '') return {};
  try {
    return JSON.parse(raw) as Partial<BreakerConfig>;
  } catch {
    throw new UsageError(
      `PLUMBLINE_BREAKER is not JSON: use e.g. {"window":10,"failureRate":0.5,"coolDownMs":30000}`,
    );
  }
}
