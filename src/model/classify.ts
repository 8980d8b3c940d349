/**
 * Classifies what the Anthropic SDK threw into a {@link ClassifiedError} for the retry guard.
 * Pure: no I/O, no clock (an HTTP-date `retry-after` is resolved against the `now` given).
 */
import {
  APIConnectionError,
  APIConnectionTimeoutError,
  APIError,
  APIUserAbortError,
} from '@anthropic-ai/sdk/core/error';
import {
  ContractSpendLimitReachedError,
  EnforcedSpendLimitReachedError,
  LinkedOrganizationSpendLimitReachedError,
} from '@anthropic-ai/sdk/resources/shared';
import type { ClassifiedError } from './types.js';

/** Kind and default retryability for each HTTP status the Messages API returns. */
const STATUS_KINDS: ReadonlyMap<number, { kind: string; retryable: boolean }> = new Map([
  [400, { kind: 'bad_request', retryable: false }],
  [401, { kind: 'auth', retryable: false }],
  [402, { kind: 'billing', retryable: false }],
  [403, { kind: 'permission', retryable: false }],
  [404, { kind: 'not_found', retryable: false }],
  [408, { kind: 'request_timeout', retryable: true }],
  [409, { kind: 'conflict', retryable: true }],
  [413, { kind: 'too_large', retryable: false }],
  [422, { kind: 'unprocessable', retryable: false }],
  [429, { kind: 'rate_limit', retryable: true }],
  [529, { kind: 'overloaded', retryable: true }],
]);

/** Kinds for an error without a status (a mid-stream `event: error`), by its `error.type`. */
const TYPE_KINDS: ReadonlyMap<string, { kind: string; retryable: boolean }> = new Map([
  ['overloaded_error', { kind: 'overloaded', retryable: true }],
  ['api_error', { kind: 'server', retryable: true }],
  ['rate_limit_error', { kind: 'rate_limit', retryable: true }],
  ['timeout_error', { kind: 'timeout', retryable: true }],
  ['invalid_request_error', { kind: 'bad_request', retryable: false }],
  ['authentication_error', { kind: 'auth', retryable: false }],
  ['permission_error', { kind: 'permission', retryable: false }],
  ['not_found_error', { kind: 'not_found', retryable: false }],
  ['billing_error', { kind: 'billing', retryable: false }],
]);

/**
 * Classifies an error thrown by `@anthropic-ai/sdk` (or anything else) for the retry guard.
 * `now` (epoch ms) resolves an HTTP-date `retry-after`; without it such a header gives null.
 * @example classifyError(err, clock.now()) // { kind: 'rate_limit', retryable: true, retryAfterMs: 2000, ... }
 */
export function classifyError(err: unknown, now?: number): ClassifiedError {
  if (err instanceof APIUserAbortError || isDomAbort(err)) {
    return base('aborted', false, null, messageOf(err));
  }
  if (err instanceof APIConnectionTimeoutError) {
    return base('timeout', true, null, messageOf(err));
  }
  if (err instanceof APIConnectionError) {
    return base('connection', true, null, messageOf(err));
  }
  if (!(err instanceof APIError)) {
    // A plain Error the SDK raises before any request when it finds no credential at all.
    if (err instanceof Error && /could not resolve authentication/i.test(err.message)) {
      const fix =
        'no Anthropic credentials: set ANTHROPIC_API_KEY or pass apiKey to createAnthropicClient';
      return base('auth', false, null, `${fix} (${err.message})`);
    }
    return base('unknown', false, null, messageOf(err));
  }

  const status = typeof err.status === 'number' ? err.status : null;
  const message = err.apiMessage ?? err.message;
  const headers = err.headers ?? null;
  const requestId = err.requestID ?? header(headers, 'request-id') ?? null;
  const retryAfterMs = headers ? retryAfterFromHeaders(headers, now) : null;
  const done = (kind: string, retryable: boolean): ClassifiedError => ({
    kind,
    status,
    retryable,
    message,
    retryAfterMs,
    requestId,
  });

  // A spend limit is the account's decision, not congestion: waiting will not lift it.
  if (isSpendLimit(err)) return done('spend_limit', false);

  const classified =
    status === null
      ? (TYPE_KINDS.get(err.type ?? '') ?? { kind: 'unknown', retryable: false })
      : (STATUS_KINDS.get(status) ??
        (status >= 500
          ? { kind: 'server', retryable: true }
          : { kind: 'unknown', retryable: false }));

  // The server's explicit word beats the status, both ways (as the SDK's own retry loop does).
  const shouldRetry = header(headers, 'x-should-retry');
  const retryable =
    shouldRetry === 'true' ? true : shouldRetry === 'false' ? false : classified.retryable;
  return done(classified.kind, retryable);
}

/**
 * The server's requested delay in ms: `retry-after-ms`, then `retry-after` (seconds or an
 * HTTP date, relative to `now`); null when absent or unparseable. Never negative, never capped.
 */
export function retryAfterFromHeaders(
  headers: Headers | Record<string, string | undefined>,
  now?: number,
): number | null {
  const ms = header(headers, 'retry-after-ms');
  if (ms !== null && ms.trim() !== '') {
    const value = Number(ms);
    if (Number.isFinite(value)) return Math.max(0, Math.ceil(value));
  }
  const after = header(headers, 'retry-after');
  if (after === null || after.trim() === '') return null;
  const seconds = Number(after);
  if (Number.isFinite(seconds)) return Math.max(0, Math.ceil(seconds * 1000));
  const at = Date.parse(after);
  if (Number.isNaN(at) || now === undefined) return null;
  return Math.max(0, at - now);
}

function isSpendLimit(err: APIError): boolean {
  if (
    err instanceof EnforcedSpendLimitReachedError ||
    err instanceof ContractSpendLimitReachedError ||
    err instanceof LinkedOrganizationSpendLimitReachedError
  ) {
    return true;
  }
  if (err.status !== 429 && err.status !== 402) return false;
  const body = (err.error ?? {}) as {
    error?: { type?: unknown; message?: unknown; error_code?: unknown };
  };
  const clues = [err.errorCode, err.type, body.error?.type, body.error?.error_code, err.apiMessage];
  return clues.some((c) => typeof c === 'string' && /spend[ _-]?limit/i.test(c));
}

function header(
  headers: Headers | Record<string, string | undefined> | null | undefined,
  name: string,
): string | null {
  if (!headers) return null;
  if (typeof (headers as Headers).get === 'function') return (headers as Headers).get(name);
  const record = headers as Record<string, string | undefined>;
  const key = Object.keys(record).find((k) => k.toLowerCase() === name);
  return key === undefined ? null : (record[key] ?? null);
}

function isDomAbort(err: unknown): boolean {
  return err instanceof Error && err.name === 'AbortError';
}

function messageOf(err: unknown): string {
  if (err instanceof Error) return err.message;
  if (typeof err === 'string') return err;
  try {
    return JSON.stringify(err) ?? String(err);
  } catch {
    return String(err);
  }
}

function base(
  kind: string,
  retryable: boolean,
  status: number | null,
  message: string,
): ClassifiedError {
  return { kind, status, retryable, message, retryAfterMs: null, requestId: null };
}

/**
 * Classifies an error the API reports in a body rather than a status (an errored batch item's
 * `error: { type, message }`), by its `type`, as a streamed error is.
 * @example classifyErrorBody({ type: 'overloaded_error', message: 'Overloaded' }).retryable // true
 */
export function classifyErrorBody(
  error: { type?: unknown; message?: unknown } | null | undefined,
  requestId: string | null = null,
): ClassifiedError {
  const type = typeof error?.type === 'string' ? error.type : '';
  const message = typeof error?.message === 'string' ? error.message : `error ${type || 'unknown'}`;
  const c = TYPE_KINDS.get(type) ?? { kind: 'unknown', retryable: false };
  return { ...base(c.kind, c.retryable, null, message), requestId };
}
