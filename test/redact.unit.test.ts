/**
 * Redaction by value: secrets scrubbed from any string at any depth, and every logger line
 * scrubbed whatever field or depth echoed them. Assertions use `includes` booleans so that a
 * failure never prints a secret.
 */
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../src/runtime/logger.js';
import {
  redactValue,
  scrubText,
  secretsFromEnv,
  secretValues,
  urlSecrets,
} from '../src/runtime/redact.js';

const KEY = 'sk-ant-api03-REDACTME-0123456789abcdef';
const NATS_PASS = 'n4ts-p@ss/word-Zq9';
const NATS_URL = `nats://plumb:${encodeURIComponent(NATS_PASS)}@127.0.0.1:4222`;

function deep(value: string): unknown {
  return { run: { steps: [{ detail: { note: value, n: 1 } }] }, ok: true };
}

describe('redactValue', () => {
  it('scrubs a secret nested 4 levels deep under an unrelated field, in keys, and its Bearer form', () => {
    const secrets = secretValues([KEY]);
    const out = redactValue(
      {
        ...(deep(`upstream said: invalid x-api-key ${KEY}`) as object),
        headers: [`Authorization: Bearer ${KEY}`],
        [`by-${KEY}`]: 1,
      },
      secrets,
    );
    const text = JSON.stringify(out);
    expect(text.includes(KEY)).toBe(false);
    expect(text.includes('invalid x-api-key [redacted]')).toBe(true);
    expect(text.includes('Bearer [redacted]')).toBe(true);
    expect(text.includes('"by-[redacted]":1')).toBe(true);
  });

  it('returns the same value when nothing matches, and ignores secrets shorter than 8 characters', () => {
    const value = deep('nothing to see');
    expect(redactValue(value, secretValues([KEY]))).toBe(value);
    expect(secretValues(['short', '', undefined, null])).toEqual([]);
    expect(scrubText('a short secret', ['short'])).toBe('a short secret');
  });

  it('scrubs the URL-encoded and JSON-escaped spellings too', () => {
    const odd = 'pa"ss word\\x';
    const secrets = secretValues([odd]);
    const text = `${encodeURIComponent(odd)} ${JSON.stringify(odd)}`;
    const out = scrubText(text, secrets);
    expect(out.includes(encodeURIComponent(odd)) || out.includes(odd)).toBe(false);
    expect(out.includes(JSON.stringify(odd).slice(1, -1))).toBe(false);
  });

  it('censors fields named like a secret at any depth when asked', () => {
    const out = redactValue(
      { a: { b: { c: { apiKey: 'x', 'X-Api-Key': 'y', password: 'z', inputTokens: 5 } } } },
      [],
      { fieldNames: new Set(['apikey', 'xapikey', 'password']) },
    );
    expect(out).toEqual({
      a: {
        b: {
          c: {
            apiKey: '[redacted]',
            'X-Api-Key': '[redacted]',
            password: '[redacted]',
            inputTokens: 5,
          },
        },
      },
    });
  });
});

describe('secrets of the configuration', () => {
  it('finds the password of a NATS URL (decoded and as written), a token URL and ?token=', () => {
    expect(urlSecrets(NATS_URL)).toContain(NATS_PASS);
    expect(urlSecrets(`nats://a:b@h:1,nats://only-a-token-value@h2:4222`)).toContain(
      'only-a-token-value',
    );
    expect(urlSecrets('wss://h/x?token=querytoken123')).toContain('querytoken123');
    expect(urlSecrets('.plumbline/plumbline.db')).toEqual([]);
  });

  it('reads the API key, NATS credentials, PLUMBLINE_* secrets and the store URL from the environment', () => {
    const secrets = secretsFromEnv(
      {
        ANTHROPIC_API_KEY: KEY,
        NATS_TOKEN: 'nats-token-value',
        PLUMBLINE_WEBHOOK_TOKEN: 'webhook-token-value',
        PLUMBLINE_LOG_LEVEL: 'debug-but-not-secret',
        PLUMBLINE_STORE: NATS_URL,
      },
      ['nats://u:spec-password@h:4222'],
    );
    for (const s of [KEY, 'nats-token-value', 'webhook-token-value', NATS_PASS, 'spec-password'])
      expect(secrets.includes(s)).toBe(true);
    expect(secrets.includes('debug-but-not-secret')).toBe(false);
  });
});

describe('createLogger scrubs every line by value', () => {
  function capture(secrets: string[]) {
    const stream = new PassThrough();
    let text = '';
    stream.on('data', (d: Buffer) => (text += d.toString()));
    const logger = createLogger({ level: 'debug', pretty: false, destination: stream, secrets });
    return { logger, text: () => text };
  }

  it('the API key nested 4 levels deep under an unrelated field, in msg, in an error and in bindings', () => {
    const { logger, text } = capture([KEY]);
    logger
      .child({ session: `started with ${KEY}` })
      .info(
        deep(`provider said: invalid x-api-key ${KEY}`) as object,
        `call failed (Bearer ${KEY})`,
      );
    logger.error({ err: new Error(`401 {"message":"bad key ${KEY}"}`) }, 'model error');
    const lines = text();
    expect(lines.split('\n').filter((l) => l !== '')).toHaveLength(2);
    expect(lines.includes(KEY)).toBe(false);
    expect(lines.includes('provider said: invalid x-api-key [redacted]')).toBe(true);
    expect(lines.includes('Bearer [redacted]')).toBe(true);
  });

  it('fields named like a secret are censored at any depth, not only the first level', () => {
    const { logger, text } = capture([]);
    logger.info({ a: { b: { c: { apiKey: 'short-but-secret', token: 'tok', note: 'kept' } } } });
    const line = JSON.parse(text()) as { a: { b: { c: Record<string, string> } } };
    expect(line.a.b.c).toEqual({ apiKey: '[redacted]', token: '[redacted]', note: 'kept' });
  });

  it('censors x-api-key headers and Authorization in child bindings; extra pino paths still apply', () => {
    const stream = new PassThrough();
    let out = '';
    stream.on('data', (d: Buffer) => (out += d.toString()));
    createLogger({ pretty: false, destination: stream, secrets: [], redact: ['extra.field'] })
      .child({ Authorization: 'Bearer short' })
      .info({ req: { headers: { 'x-api-key': 'k', accept: 'json' } }, extra: { field: 'custom' } });
    const line = JSON.parse(out) as Record<string, unknown>;
    expect(line.Authorization).toBe('[redacted]');
    expect(line.req).toEqual({ headers: { 'x-api-key': '[redacted]', accept: 'json' } });
    expect(line.extra).toEqual({ field: '[redacted]' });
  });

  it('a NATS URL password is scrubbed from a line that quotes the URL', () => {
    const { logger, text } = capture(urlSecrets(NATS_URL));
    logger.warn({ store: { spec: NATS_URL, decoded: `pass=${NATS_PASS}` } }, `opening ${NATS_URL}`);
    const line = text();
    expect(line.includes(NATS_PASS)).toBe(false);
    expect(line.includes(encodeURIComponent(NATS_PASS))).toBe(false);
    expect(line.includes('nats://plumb:[redacted]@127.0.0.1:4222')).toBe(true);
  });

  it('defaults to the secrets of the environment', () => {
    const saved = process.env.ANTHROPIC_API_KEY;
    process.env.ANTHROPIC_API_KEY = KEY;
    try {
      const stream = new PassThrough();
      let out = '';
      stream.on('data', (d: Buffer) => (out += d.toString()));
      createLogger({ pretty: false, destination: stream }).info({ x: { y: { z: { w: KEY } } } });
      expect(out.includes(KEY)).toBe(false);
      expect(out.includes('[redacted]')).toBe(true);
    } finally {
      if (saved === undefined) delete process.env.ANTHROPIC_API_KEY;
      else process.env.ANTHROPIC_API_KEY = saved;
    }
  });
});
