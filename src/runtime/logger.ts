/**
 * Logging: pino JSON lines (pretty on a TTY), secrets redacted. One line per decision, each
 * with runId, pipeline, step, attempt, seq, event, decision and reason, so you can grep a run.
 */
import { pino, type Logger } from 'pino';
import {
  REDACTED,
  redactValue,
  SECRET_FIELD_NAMES,
  scrubText,
  secretsFromEnv,
  secretValues,
} from './redact.js';
import { TurnLines } from './turnLines.js';

export type { Logger } from 'pino';

/**
 * Top-level fields pino censors, child bindings included (which no formatter sees); fields
 * named like a secret are censored at any depth by the `log` formatter.
 */
export const REDACT_PATHS = [
  'apiKey',
  'api_key',
  'authorization',
  'Authorization',
  '["x-api-key"]',
  'token',
  'password',
  'secret',
];

/** Options of {@link createLogger}. */
export interface LoggerOptions {
  level?: string;
  /**
   * More field paths to redact (pino redact syntax); fields named like a secret
   * ({@link SECRET_FIELD_NAMES}) are censored at any depth without being listed.
   */
  redact?: string[];
  /** Pretty output; defaults to stderr being a TTY. */
  pretty?: boolean;
  /** Where lines go (default stderr, fd 2). */
  destination?: NodeJS.WritableStream | number;
  /** Secret values scrubbed from every line, at any depth (default: {@link secretsFromEnv}). */
  secrets?: readonly string[];
}

/**
 * Creates the root logger (level from options, then `PLUMBLINE_LOG_LEVEL`, then `info`).
 * Every line is scrubbed of the secret values as written, whatever field, depth or message
 * they were echoed in, and fields named like a secret are censored at any depth.
 */
export function createLogger(options: LoggerOptions = {}): Logger {
  const level = options.level ?? process.env.PLUMBLINE_LOG_LEVEL ?? 'info';
  const paths = [...REDACT_PATHS, ...(options.redact ?? [])];
  const secrets = secretValues(options.secrets ?? secretsFromEnv(process.env));
  const censor = (obj: Record<string, unknown>) =>
    redactValue(obj, secrets, { fieldNames: SECRET_FIELD_NAMES });
  const scrubbing = {
    redact: { paths, censor: REDACTED },
    formatters: { log: censor },
    // The finished line: catches error messages and stacks, bindings and `msg` too.
    hooks: { streamWrite: (line: string) => scrubText(line, secrets) },
  };
  const dest = options.destination ?? 2;
  const pretty = options.pretty ?? (dest === 2 && process.stderr.isTTY === true);
  if (pretty) {
    return pino({
      level,
      ...scrubbing,
      transport: {
        target: 'pino-pretty',
        options: { destination: 2, colorize: true, ignore: 'pid,hostname' },
      },
    });
  }
  // A descriptor gets its lines once per turn of the event loop (turnLines.ts).
  const stream = typeof dest === 'number' ? new TurnLines(dest) : dest;
  return pino({ level, ...scrubbing, base: { pid: process.pid } }, stream);
}

/** A logger that writes nothing (replays are silent). */
export const silentLogger: Logger = pino({ level: 'silent' });

/** Truncates a value's JSON to `max` characters for a log line. */
export function truncate(value: unknown, max: number): unknown {
  if (value === undefined) return undefined;
  const s = JSON.stringify(value);
  if (s === undefined) return undefined;
  if (s.length <= max) return value;
  return `${s.slice(0, max)}… (${s.length} chars)`;
}
