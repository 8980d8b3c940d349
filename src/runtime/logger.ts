/**
 * Logging: pino JSON lines (pretty on a TTY), secrets redacted. One line per decision, each
 * with runId, pipeline, step, attempt, seq, event, decision and reason, so you can grep a run.
 */
import { pino, type Logger } from 'pino';

export type { Logger } from 'pino';

/** Paths redacted in every line: API keys and anything named like a secret. */
export const REDACT_PATHS = [
  'apiKey',
  '*.apiKey',
  'api_key',
  '*.api_key',
  'authorization',
  '*.authorization',
  'headers["x-api-key"]',
  '*.headers["x-api-key"]',
  'token',
  '*.token',
  'password',
  '*.password',
  'secret',
  '*.secret',
];

/** Options of {@link createLogger}. */
export interface LoggerOptions {
  level?: string;
  /** More field paths to redact (pino redact syntax). */
  redact?: string[];
  /** Pretty output; defaults to stderr being a TTY. */
  pretty?: boolean;
  /** Where lines go (default stderr, fd 2). */
  destination?: NodeJS.WritableStream | number;
}

/** Creates the root logger (level from options, then `PLUMBLINE_LOG_LEVEL`, then `info`). */
export function createLogger(options: LoggerOptions = {}): Logger {
  const level = options.level ?? process.env.PLUMBLINE_LOG_LEVEL ?? 'info';
  const redact = { paths: [...REDACT_PATHS, ...(options.redact ?? [])], censor: '[redacted]' };
  const dest = options.destination ?? 2;
  const pretty = options.pretty ?? (dest === 2 && process.stderr.isTTY === true);
  if (pretty) {
    return pino({
      level,
      redact,
      transport: {
        target: 'pino-pretty',
        options: { destination: 2, colorize: true, ignore: 'pid,hostname' },
      },
    });
  }
  const stream = typeof dest === 'number' ? pino.destination({ fd: dest, sync: true }) : dest;
  return pino({ level, redact, base: { pid: process.pid } }, stream);
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

/** Removes every occurrence of the secrets from `text` (for messages that may quote them). */
export function scrub(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const s of secrets) if (s.length >= 8) out = out.split(s).join('[redacted]');
  return out;
}
