/**
 * What every CLI verb needs: the store named by `--store` / `PLUMBLINE_STORE`, a model client
 * from the environment, a logger, and output helpers that respect `--json`.
 */
import { createWriteStream, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { openStoreFromUrl } from '../backend.js';
import { UsageError } from '../errors.js';
import type { ModelClient } from '../model/types.js';
import { createLogger, type Logger } from '../runtime/logger.js';
import { redactingStore } from '../store/redacting.js';
import { parseStoreSpec } from '../store/spec.js';
import type { Store } from '../store/types.js';
import type { BreakerConfig } from '../machines/breaker.js';
import { Breakers } from '../runtime/breakers.js';
import { rateLimitsFrom } from './rateOptions.js';
import { Runtime, type RuntimeOptions } from '../runtime/driver.js';
import type { Prepared } from '../runtime/prepare.js';
import { batchConfigFromEnv } from './batchConfig.js';
import { lazyAnthropicClient } from './lazyModel.js';
import { cliSecrets, rememberSpec, storeSpec, type GlobalOptions } from './options.js';

export {
  DEFAULT_STORE,
  cliSecrets,
  duration,
  globals,
  nonNegativeNumber,
  out,
  outJson,
  parseDuration,
  parseInput,
  portNumber,
  positiveInteger,
  storeSpec,
  type GlobalOptions,
  type OptionParser,
} from './options.js';

/**
 * Opens the store named by a spec (any form `openBackend` accepts: a SQLite path, a `nats://`
 * URL); what is written to it is scrubbed of {@link cliSecrets}.
 */
export async function openStore(spec: string): Promise<Store> {
  return scrubbedStore(spec, await openStoreFromUrl(spec));
}

/** Wraps a store opened from `spec` so that what is written to it is scrubbed of {@link cliSecrets}. */
export function scrubbedStore(spec: string, store: Store): Store {
  rememberSpec(spec);
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
  // The SDK is imported at the first call: a verb that never calls a model never loads it.
  return lazyAnthropicClient(modelSettings());
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

/** The runtime every verb drives runs with: store, model from the environment, breakers, logger. */
export function makeRuntime(
  store: Store,
  g: GlobalOptions,
  extra: Partial<RuntimeOptions> = {},
): Runtime {
  const logger = cliLogger(g);
  const rates = rateLimitsFrom();
  return new Runtime({
    store,
    modelFactory: modelFromEnv,
    logger,
    breakers: new Breakers(store.control, breakerConfigFromEnv(), logger),
    batch: batchConfigFromEnv(),
    ...(process.env.PLUMBLINE_LOG_MAX_CHARS
      ? { logMaxChars: Number(process.env.PLUMBLINE_LOG_MAX_CHARS) }
      : {}),
    // A verb runs and exits: it must not leave breaker resumes behind it (workers resume
    // breaker-parked runs through the bus; `resume --include-parked` does it by hand).
    autoResume: false,
    ...(rates !== undefined ? { rateLimits: rates } : {}),
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
