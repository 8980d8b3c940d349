/**
 * Small HTTP helpers for the visualizer (node:http only): JSON answers, JSON errors that say
 * what to do, and the page's static files.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { extname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PACKAGE_DIR } from '../version.js';

/** An error answered as `{ error: { status, message } }` (with `headers`, e.g. `retry-after`). */
export class HttpError extends Error {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  constructor(status: number, message: string, headers: Record<string, string> = {}) {
    super(message);
    this.name = 'HttpError';
    this.status = status;
    this.headers = headers;
  }
}

/**
 * `decodeURIComponent` of one part of a URL; 400 (not a 500 from its `URIError`) when the
 * percent-encoding is malformed.
 */
export function decodePart(raw: string, what: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    throw new HttpError(
      400,
      `malformed percent-encoding in the ${what} '${raw.slice(0, 200)}': encode it with encodeURIComponent`,
    );
  }
}

/** Sends `body` as JSON. */
export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Readonly<Record<string, string>> = {},
): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    ...headers,
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
  });
  res.end(text);
}

/** Sends an error as JSON. */
export function sendError(
  res: ServerResponse,
  status: number,
  message: string,
  headers: Readonly<Record<string, string>> = {},
): void {
  sendJson(res, status, { error: { status, message } }, headers);
}

/**
 * The directory of the page's files: beside this module (run from source), or the package's
 * `src/viz/public/` (a build: neither `tsc` nor the bundle copies them into `dist/`).
 */
export const PUBLIC_DIR =
  [
    fileURLToPath(new URL('./public/', import.meta.url)),
    join(PACKAGE_DIR, 'src', 'viz', 'public'),
  ].find((dir) => existsSync(join(dir, 'index.html'))) ??
  fileURLToPath(new URL('./public/', import.meta.url));

const TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json; charset=utf-8',
};

/** Serves a file of {@link PUBLIC_DIR}; false when there is no such file. */
export async function serveStatic(
  req: IncomingMessage,
  res: ServerResponse,
  path: string,
): Promise<boolean> {
  const rel = path === '/' ? 'index.html' : decodePart(path, 'path').replace(/^\/+/, '');
  const file = resolve(PUBLIC_DIR, rel);
  if (!file.startsWith(PUBLIC_DIR.endsWith(sep) ? PUBLIC_DIR : PUBLIC_DIR + sep)) return false;
  const type = TYPES[extname(file)];
  if (type === undefined) return false;
  let body: Buffer;
  try {
    body = await readFile(file);
  } catch {
    return false;
  }
  res.writeHead(200, {
    'content-type': type,
    'content-length': body.length,
    'cache-control': 'no-cache',
  });
  res.end(req.method === 'HEAD' ? undefined : body);
  return true;
}

/** A non-negative integer query parameter, or `fallback` when absent; 400 when malformed. */
export function intParam(
  params: URLSearchParams,
  name: string,
  fallback: number | undefined,
): number | undefined {
  const raw = params.get(name);
  if (raw === null || raw === '') return fallback;
  if (!/^\d{1,15}$/.test(raw))
    throw new HttpError(
      400,
      `query parameter '${name}' must be a non-negative integer, got '${raw}'`,
    );
  return Number(raw);
}

/** Largest request body the visualizer reads (a signal's payload): 64 KiB. */
export const MAX_BODY_BYTES = 64 * 1024;

/**
 * Reads a JSON request body: 415 unless it is `application/json` (a cross-site form cannot send
 * that without a preflight the server never answers), 413 past `maxBytes`, 400 when malformed.
 */
export async function readJsonBody(
  req: IncomingMessage,
  maxBytes = MAX_BODY_BYTES,
): Promise<unknown> {
  const type = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
  if (type !== 'application/json')
    throw new HttpError(
      415,
      `send the body as JSON (content-type: application/json), got '${type ?? ''}'`,
    );
  const declared = Number(req.headers['content-length'] ?? NaN);
  if (Number.isFinite(declared) && declared > maxBytes)
    throw new HttpError(413, `request body of ${declared} bytes is over the ${maxBytes}-byte cap`, {
      connection: 'close',
    });
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    const b = chunk as Buffer;
    size += b.length;
    if (size > maxBytes)
      throw new HttpError(413, `request body is over the ${maxBytes}-byte cap`, {
        connection: 'close',
      });
    chunks.push(b);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  try {
    return JSON.parse(text === '' ? 'null' : text) as unknown;
  } catch (e) {
    throw new HttpError(
      400,
      `the body is not valid JSON (${(e as Error).message}): send {"payload": {…}}`,
    );
  }
}
