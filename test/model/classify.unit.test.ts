import {
  AnthropicError,
  APIConnectionError,
  APIConnectionTimeoutError,
  APIError,
  APIUserAbortError,
  OverloadedError,
  RateLimitError,
} from '@anthropic-ai/sdk';
import {
  ContractSpendLimitReachedError,
  EnforcedSpendLimitReachedError,
} from '@anthropic-ai/sdk/resources/shared';
import { describe, expect, it } from 'vitest';
import { classifyError, retryAfterFromHeaders } from '../../src/model/classify.js';

function body(type: string, message = `${type} happened`, errorCode?: string) {
  return {
    type: 'error',
    error: { type, message, ...(errorCode ? { details: { error_code: errorCode } } : {}) },
  };
}

function httpError(status: number, headers: Record<string, string> = {}, type = 'api_error') {
  return APIError.generate(
    status,
    body(type),
    undefined,
    new Headers({ 'request-id': 'req_1', ...headers }),
  );
}

describe('classifyError: statuses', () => {
  it.each([
    [400, 'bad_request', false],
    [401, 'auth', false],
    [402, 'billing', false],
    [403, 'permission', false],
    [404, 'not_found', false],
    [408, 'request_timeout', true],
    [409, 'conflict', true],
    [412, 'unknown', false],
    [413, 'too_large', false],
    [422, 'unprocessable', false],
    [429, 'rate_limit', true],
    [500, 'server', true],
    [501, 'server', true],
    [502, 'server', true],
    [503, 'server', true],
    [504, 'server', true],
    [520, 'server', true],
    [529, 'overloaded', true],
  ])('%i is %s (retryable %s)', (status, kind, retryable) => {
    const c = classifyError(httpError(status));
    expect(c).toMatchObject({ status, kind, retryable, requestId: 'req_1', retryAfterMs: null });
    expect(c.message).toBe('api_error happened');
  });

  it('529 comes from the SDK as OverloadedError', () => {
    expect(httpError(529)).toBeInstanceOf(OverloadedError);
  });
});

describe('classifyError: x-should-retry overrides the status both ways', () => {
  it.each([
    [400, 'true', true],
    [404, 'true', true],
    [429, 'false', false],
    [500, 'false', false],
    [529, 'false', false],
    [500, 'maybe', true],
  ])('%i with x-should-retry: %s → retryable %s', (status, header, retryable) => {
    expect(classifyError(httpError(status, { 'x-should-retry': header })).retryable).toBe(
      retryable,
    );
  });
});

describe('classifyError: spend limits are fatal', () => {
  const headers = new Headers({ 'request-id': 'req_2', 'retry-after': '30' });
  it.each([
    [
      'EnforcedSpendLimitReachedError',
      new EnforcedSpendLimitReachedError(
        429,
        body('rate_limit_error', 'limit', 'enforced_spend_limit_reached'),
        undefined,
        headers,
      ),
    ],
    [
      'ContractSpendLimitReachedError',
      new ContractSpendLimitReachedError(
        429,
        body('rate_limit_error', 'limit', 'contract_spend_limit_reached'),
        undefined,
        headers,
      ),
    ],
    [
      'a 429 whose error_code names a spend limit',
      new RateLimitError(
        429,
        body('rate_limit_error', 'limit', 'some_spend_limit_reached'),
        undefined,
        headers,
      ),
    ],
    [
      'a 429 whose message names a spend limit',
      new RateLimitError(
        429,
        body('rate_limit_error', 'You have reached your spend limit.'),
        undefined,
        headers,
      ),
    ],
    [
      'a 429 with error.type spend_limit_error',
      new RateLimitError(429, body('spend_limit_error'), undefined, headers),
    ],
  ])('%s', (_name, err) => {
    expect(classifyError(err)).toMatchObject({
      kind: 'spend_limit',
      retryable: false,
      status: 429,
      requestId: 'req_2',
    });
  });

  it('even when x-should-retry says true', () => {
    const h = new Headers({ 'x-should-retry': 'true' });
    const err = new EnforcedSpendLimitReachedError(
      429,
      body('rate_limit_error', 'limit', 'enforced_spend_limit_reached'),
      undefined,
      h,
    );
    expect(classifyError(err).retryable).toBe(false);
  });

  it('a plain 429 stays retryable', () => {
    expect(classifyError(httpError(429, {}, 'rate_limit_error'))).toMatchObject({
      kind: 'rate_limit',
      retryable: true,
    });
  });
});

describe('classifyError: without an HTTP status', () => {
  it('a mid-stream overloaded_error is retryable', () => {
    const err = new APIError(
      undefined,
      body('overloaded_error', 'Overloaded'),
      undefined,
      undefined,
    );
    expect(classifyError(err)).toMatchObject({
      kind: 'overloaded',
      retryable: true,
      status: null,
      message: 'Overloaded',
    });
  });
  it('a mid-stream overloaded_error as the SDK stream raises it (200 headers, no status)', () => {
    const headers = new Headers({ 'request-id': 'req_stream' });
    const err = new APIError(
      undefined,
      body('overloaded_error', 'Overloaded'),
      undefined,
      headers,
      'overloaded_error',
    );
    expect(classifyError(err)).toMatchObject({
      kind: 'overloaded',
      retryable: true,
      status: null,
      requestId: 'req_stream',
    });
  });
  it('a mid-stream api_error is retryable', () => {
    const err = new APIError(undefined, body('api_error'), undefined, undefined);
    expect(classifyError(err)).toMatchObject({ kind: 'server', retryable: true });
  });
  it('a mid-stream invalid_request_error is fatal', () => {
    const err = new APIError(undefined, body('invalid_request_error'), undefined, undefined);
    expect(classifyError(err)).toMatchObject({ kind: 'bad_request', retryable: false });
  });
  it('a connection error is retryable', () => {
    expect(classifyError(new APIConnectionError({ message: 'Connection error.' }))).toMatchObject({
      kind: 'connection',
      retryable: true,
      status: null,
    });
  });
  it('a timeout is retryable', () => {
    expect(classifyError(new APIConnectionTimeoutError())).toMatchObject({
      kind: 'timeout',
      retryable: true,
    });
  });
  it('an abort is not retryable', () => {
    expect(classifyError(new APIUserAbortError())).toMatchObject({
      kind: 'aborted',
      retryable: false,
    });
    const dom = new DOMException('aborted', 'AbortError');
    expect(classifyError(dom)).toMatchObject({ kind: 'aborted', retryable: false });
  });
  it('a missing credential is a fatal auth error naming the fix', () => {
    // SDK 1.14 throws a plain Error here, before any request.
    const err = new Error('Could not resolve authentication method. Expected one of apiKey, ...');
    const c = classifyError(err);
    expect(c).toMatchObject({ kind: 'auth', retryable: false, status: null });
    expect(c.message).toMatch(/^no Anthropic credentials: set ANTHROPIC_API_KEY or pass apiKey/);
  });
  it.each([
    new Error('boom'),
    new AnthropicError('local SDK problem'),
    'a string',
    { odd: true },
    null,
    undefined,
  ])('%s is unknown and fatal', (err) => {
    expect(classifyError(err)).toMatchObject({
      kind: 'unknown',
      retryable: false,
      status: null,
      requestId: null,
    });
  });
});

describe('retry-after', () => {
  const now = Date.parse('2026-11-27T12:00:00Z');
  it.each<[Record<string, string>, number | null]>([
    [{}, null],
    [{ 'retry-after-ms': '1500' }, 1500],
    [{ 'retry-after-ms': '12.2' }, 13],
    [{ 'retry-after-ms': '250', 'retry-after': '9' }, 250],
    [{ 'retry-after-ms': 'soon', 'retry-after': '9' }, 9000],
    [{ 'retry-after': '2' }, 2000],
    [{ 'retry-after': '61' }, 61000],
    [{ 'retry-after': '0.5' }, 500],
    [{ 'retry-after': '-3' }, 0],
    [{ 'retry-after': 'Fri, 27 Nov 2026 12:00:30 GMT' }, 30000],
    [{ 'retry-after': 'Fri, 27 Nov 2026 11:59:00 GMT' }, 0],
    [{ 'retry-after': 'not a date' }, null],
  ])('%j → %s', (headers, expected) => {
    expect(retryAfterFromHeaders(new Headers(headers), now)).toBe(expected);
    expect(classifyError(httpError(429, headers), now).retryAfterMs).toBe(expected);
  });

  it('an HTTP date without `now` cannot be resolved purely, so it gives null', () => {
    expect(retryAfterFromHeaders({ 'Retry-After': 'Fri, 27 Nov 2026 12:00:30 GMT' })).toBeNull();
  });

  it('reads plain header records case-insensitively', () => {
    expect(retryAfterFromHeaders({ 'Retry-After': '3' })).toBe(3000);
  });
});
