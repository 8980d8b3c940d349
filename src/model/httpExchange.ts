/**
 * One HTTP exchange for the SDK's transport (httpFetch.ts) over node:http(s): the request sent on
 * a kept-alive connection, the answer returned as fetch would return it — a JSON body read whole
 * into a {@link BufferedResponse}, anything else as a WHATWG `Response` streaming from the socket.
 */
import type http from 'node:http';
import type https from 'node:https';
import { createRequire } from 'node:module';
import type { Socket } from 'node:net';
import { Readable } from 'node:stream';
import type zlib from 'node:zlib';
import { BufferedResponse } from './bufferedResponse.js';

// Loaded at first use, not with the model boundary: node:https (with TLS) alone takes ≈ 8 ms to
// load, which every importer of plumbline would pay, the CLI's read verbs included.
const builtin = createRequire(import.meta.url);
let zlibModule: typeof zlib | undefined;
const inflate = (): typeof zlib => (zlibModule ??= builtin('node:zlib') as typeof zlib);

/** undici's defaults: how long an unused connection is kept, and how long a connect may take. */
const KEEP_ALIVE_MS = 4_000;
const CONNECT_TIMEOUT_MS = 10_000;
const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const NULL_BODY = new Set([204, 205, 304]);

interface Scheme {
  request: typeof http.request;
  agent: http.Agent;
}
const schemes: { 'http:'?: Scheme; 'https:'?: Scheme } = {};
/** One agent per scheme and process, like fetch's one global dispatcher: clients share connections. */
function schemeOf(protocol: 'http:' | 'https:'): Scheme {
  let scheme = schemes[protocol];
  if (scheme === undefined) {
    const mod = builtin(protocol === 'https:' ? 'node:https' : 'node:http') as typeof https;
    const agent = new mod.Agent({ keepAlive: true, timeout: KEEP_ALIVE_MS });
    scheme = schemes[protocol] = { request: mod.request, agent };
  }
  return scheme;
}

/** Where a request goes, as node:http takes it. */
export interface Target {
  protocol: 'http:' | 'https:';
  hostname: string;
  port: string;
  path: string;
  href: string;
}

/** One request over the agents; resolves when a JSON body is complete or a streamed one starts. */
export function exchange(
  to: Target,
  init: RequestInit,
  resend: () => Promise<Response>,
): Promise<Response> {
  const signal = init.signal ?? null;
  if (signal?.aborted === true) return Promise.reject(signal.reason as Error);
  const method = init.method?.toUpperCase() ?? 'GET';
  const headers = requestHeaders(init);
  const body = init.body as string | ArrayBufferView | null | undefined;
  const bytes =
    typeof body === 'string' || body === undefined || body === null ? body : asBuffer(body);
  if (bytes !== undefined && bytes !== null) {
    headers['content-length'] = String(Buffer.byteLength(bytes));
    if (typeof bytes === 'string') headers['content-type'] ??= 'text/plain;charset=UTF-8';
  }

  return new Promise<Response>((resolve, reject) => {
    let settled = false;
    const fail = (e: unknown): void => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener('abort', onAbort);
      reject(
        signal?.aborted === true
          ? (signal.reason as Error)
          : new TypeError('fetch failed', { cause: e }),
      );
    };
    const done = (res: Response | Promise<Response>): void => {
      if (settled) return;
      settled = true;
      resolve(res);
    };
    const { protocol } = to;
    const scheme = schemeOf(protocol);
    const req = scheme.request({
      protocol,
      hostname: to.hostname,
      port: to.port,
      path: to.path,
      method,
      headers,
      agent: scheme.agent,
    });
    let answer: http.IncomingMessage | undefined;
    // A streamed body fails with the signal's reason, as fetch's does (the SDK ends quietly on it).
    function onAbort(): void {
      const reason = signal?.reason as Error;
      answer?.destroy(reason);
      req.destroy(reason);
      fail(reason);
    }
    signal?.addEventListener('abort', onAbort, { once: true });
    req.on('error', fail);
    req.on('socket', (socket: Socket) => connectTimeout(req, socket, protocol));
    req.on('response', (res) => {
      answer = res;
      const status = res.statusCode ?? 0;
      const head = responseHeaders(res.rawHeaders);
      if (REDIRECTS.has(status) && head.has('location')) {
        res.resume();
        signal?.removeEventListener('abort', onAbort);
        done(resend());
        return;
      }
      const text = res.statusMessage ?? '';
      const stream = decoded(res, head.get('content-encoding'));
      if (!buffered(method, headers.accept, status, head.get('content-type'))) {
        // Streamed: the abort listener stays until the body is read or dropped.
        res.once('close', () => signal?.removeEventListener('abort', onAbort));
        const web = Readable.toWeb(stream) as unknown as ReadableStream<Uint8Array>;
        done(new Response(web, { status, statusText: text, headers: head }));
        return;
      }
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('error', fail);
      stream.on('end', () => {
        signal?.removeEventListener('abort', onAbort);
        const bytes = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks);
        done(new BufferedResponse(to.href, status, text, head, bytes));
      });
      // A connection closed before the body's end (no 'end' event).
      res.on('close', () => {
        if (!res.complete) fail(new Error('terminated: the connection closed mid-body'));
      });
    });
    req.end(bytes ?? undefined);
  });
}

/**
 * Whether the answer is read whole before resolving: JSON asked for and answered (the SDK's
 * calls), and the statuses fetch gives no body. Anything else is streamed: an event stream, a
 * batch's results (asked for as `application/binary`).
 */
function buffered(
  method: string,
  accept: string | undefined,
  status: number,
  type: string | null,
): boolean {
  if (method === 'HEAD' || NULL_BODY.has(status) || status < 200 || status > 599) return true;
  if (accept !== 'application/json') return false;
  const media = type?.split(';')[0]?.trim().toLowerCase() ?? '';
  return media === 'application/json' || media.endsWith('+json');
}

/** The request's headers as a plain record (the SDK passes a `Headers`). */
function requestHeaders(init: RequestInit): Record<string, string> {
  const out: Record<string, string> = {};
  const given = init.headers;
  if (given === undefined) return out;
  (given instanceof Headers ? given : new Headers(given)).forEach((value, name) => {
    out[name] = value;
  });
  // Compressed answers are asked for where they pay: not for the small JSON of a call.
  if (out.accept !== undefined && out.accept !== 'application/json')
    out['accept-encoding'] ??= 'gzip, deflate, br';
  return out;
}

function asBuffer(view: ArrayBufferView): Buffer {
  return Buffer.from(view.buffer, view.byteOffset, view.byteLength);
}

/** The response's headers in a fetch `Headers`, repeated names combined as fetch does. */
function responseHeaders(raw: string[]): Headers {
  const h = new Headers();
  for (let i = 0; i + 1 < raw.length; i += 2) h.append(raw[i] as string, raw[i + 1] as string);
  return h;
}

/** The body stream, decompressed as fetch would (only asked for when the request is not JSON). */
function decoded(res: http.IncomingMessage, encoding: string | null): Readable {
  const coding = encoding?.trim().toLowerCase();
  if (coding === undefined || coding === '' || coding === 'identity') return res;
  const zlib = inflate();
  const decoder =
    coding === 'gzip' || coding === 'x-gzip'
      ? zlib.createGunzip()
      : coding === 'deflate'
        ? zlib.createInflate()
        : coding === 'br'
          ? zlib.createBrotliDecompress()
          : null;
  if (decoder === null) return res;
  res.on('error', (e) => decoder.destroy(e));
  return res.pipe(decoder);
}

/** Fails a request whose connection is not up (TCP, and TLS for https) within 10 s. */
function connectTimeout(req: http.ClientRequest, socket: Socket, protocol: string): void {
  if (!socket.connecting) return;
  const timer = setTimeout(() => {
    const error = Object.assign(
      new Error(`Connect Timeout Error (timeout: ${CONNECT_TIMEOUT_MS}ms)`),
      { code: 'UND_ERR_CONNECT_TIMEOUT' },
    );
    req.destroy(error);
  }, CONNECT_TIMEOUT_MS);
  const clear = (): void => clearTimeout(timer);
  socket.once(protocol === 'https:' ? 'secureConnect' : 'connect', clear);
  socket.once('close', clear);
}
