/**
 * The SDK's transport over node:http (src/model/httpFetch.ts): what it sends, what it returns,
 * connections kept, aborts, dropped connections, streamed and compressed answers, and what it
 * leaves to fetch. Real sockets to servers on 127.0.0.1; the SDK end to end in the last block.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';
import Anthropic from '@anthropic-ai/sdk';
import { describe, expect, it } from 'vitest';
import { createAnthropicClient } from '../../src/model/anthropic.js';
import { BufferedResponse } from '../../src/model/bufferedResponse.js';
import { httpFetch } from '../../src/model/httpFetch.js';
import { fetchWithoutCopy } from '../../src/model/sdkFetch.js';
import { startFakeClaude } from '../../src/testing/index.js';
import { hiRequest } from './hiRequest.js';

interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
  socket: number;
}

type Handler = (req: IncomingMessage, res: ServerResponse, body: string) => void;

/** A server recording each request (and which connection it came on), answering with `handler`. */
async function server(handler: Handler) {
  const seen: Seen[] = [];
  const sockets = new Map<unknown, number>();
  const srv = createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      if (!sockets.has(req.socket)) sockets.set(req.socket, sockets.size);
      seen.push({
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        body,
        socket: sockets.get(req.socket) ?? -1,
      });
      handler(req, res, body);
    });
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    seen,
    [Symbol.asyncDispose]: () =>
      new Promise<void>((r) => {
        srv.closeAllConnections();
        srv.close(() => r());
      }),
  };
}

const json: Handler = (_req, res) => {
  res.writeHead(200, { 'content-type': 'application/json', 'request-id': 'req_1' });
  res.end('{"ok":true}');
};

/** A fetch that records what it was asked and answers 599 (it must not be reached in most tests). */
function recorder() {
  const asked: { input: unknown; init: RequestInit | undefined }[] = [];
  const f: typeof fetch = (input, init) => {
    asked.push({ input, init });
    return Promise.resolve(new Response('from fetch', { status: 599 }));
  };
  return { f, asked };
}

const post = (body: string, signal?: AbortSignal): RequestInit => ({
  method: 'POST',
  headers: new Headers({ 'content-type': 'application/json', accept: 'application/json' }),
  body,
  ...(signal !== undefined ? { signal } : {}),
});

describe('httpFetch', () => {
  it('sends the request as fetch would and returns the JSON answer read whole', async () => {
    await using srv = await server((_req, res) => {
      res.setHeader('content-type', 'application/json');
      res.setHeader('x-twice', ['a', 'b']);
      res.setHeader('request-id', 'req_1');
      res.end('\ufeff{"é":1}');
    });
    const other = recorder();
    const res = await httpFetch(other.f, other.f)(`${srv.url}/v1/messages?x=1`, post('{"a":"é"}'));
    expect(res).toBeInstanceOf(BufferedResponse);
    expect([res.status, res.ok, res.url]).toEqual([200, true, `${srv.url}/v1/messages?x=1`]);
    expect(res.headers.get('request-id')).toBe('req_1');
    expect(res.headers.get('x-twice')).toBe('a, b');
    expect(res.bodyUsed).toBe(false);
    expect(await res.json()).toEqual({ é: 1 }); // the byte-order mark dropped, as fetch does
    expect(res.bodyUsed).toBe(true);
    await expect(res.text()).rejects.toThrow(TypeError);
    const [seen] = srv.seen;
    expect(seen).toMatchObject({ method: 'POST', url: '/v1/messages?x=1', body: '{"a":"é"}' });
    expect(seen?.headers['content-length']).toBe(String(Buffer.byteLength('{"a":"é"}')));
    expect(seen?.headers['content-type']).toBe('application/json');
    expect(other.asked).toHaveLength(0);
  });

  it('keeps the connection: sequential requests share one socket', async () => {
    await using srv = await server(json);
    const other = recorder();
    const f = httpFetch(other.f, other.f);
    for (let i = 0; i < 3; i++) await (await f(`${srv.url}/v1/messages`, post('{}'))).json();
    expect(srv.seen.map((s) => s.socket)).toEqual([0, 0, 0]);
  });

  it('an error status is an answer, not a rejection; 204 has no body', async () => {
    await using srv = await server((req, res) => {
      if (req.url === '/none') {
        res.writeHead(204);
        res.end();
        return;
      }
      res.writeHead(529, { 'content-type': 'application/json', 'retry-after': '3' });
      res.end('{"type":"error","error":{"type":"overloaded_error","message":"busy"}}');
    });
    const other = recorder();
    const f = httpFetch(other.f, other.f);
    const res = await f(`${srv.url}/v1/messages`, post('{}'));
    expect([res.status, res.ok, res.headers.get('retry-after')]).toEqual([529, false, '3']);
    expect(await res.text()).toContain('overloaded_error');
    const none = await f(`${srv.url}/none`, { method: 'GET' });
    expect([none.status, none.body, await none.text()]).toEqual([204, null, '']);
  });

  it("the signal's abort rejects with its reason, before or during the answer", async () => {
    await using srv = await server((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"partial":'); // the rest never comes
    });
    const other = recorder();
    const f = httpFetch(other.f, other.f);
    const early = new AbortController();
    early.abort();
    await expect(f(`${srv.url}/v1/messages`, post('{}', early.signal))).rejects.toMatchObject({
      name: 'AbortError',
    });
    expect(srv.seen).toHaveLength(0);
    const late = new AbortController();
    const pending = f(`${srv.url}/v1/messages`, post('{}', late.signal));
    // Abort once the server has the request (the body is then half sent).
    while (srv.seen.length === 0) await new Promise((r) => setTimeout(r, 10));
    late.abort();
    await expect(pending).rejects.toBe(late.signal.reason);
  });

  it('a connection refused or closed mid-body rejects as fetch does', async () => {
    await using srv = await server((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': '100' });
      res.write('{"cut":');
      setTimeout(() => res.socket?.destroy(), 20);
    });
    const other = recorder();
    const f = httpFetch(other.f, other.f);
    const cut = await f(`${srv.url}/v1/messages`, post('{}')).catch((e: unknown) => e);
    expect(cut).toBeInstanceOf(TypeError);
    expect((cut as TypeError).message).toBe('fetch failed');
    const refused = await f('http://127.0.0.1:9/v1/messages', post('{}')).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(TypeError);
    expect((refused as TypeError).cause).toMatchObject({ code: 'ECONNREFUSED' });
  });

  it('streams an answer that is not JSON: resolves before its end', async () => {
    let finish = (): void => undefined;
    await using srv = await server((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write('event: a\ndata: 1\n\n');
      finish = () => res.end('event: b\ndata: 2\n\n');
    });
    const other = recorder();
    const res = await httpFetch(other.f, other.f)(`${srv.url}/v1/messages`, post('{}'));
    expect(res).toBeInstanceOf(Response);
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    const first = await reader.read();
    expect(Buffer.from(first.value ?? []).toString()).toBe('event: a\ndata: 1\n\n');
    finish();
    let rest = '';
    for (let r = await reader.read(); !r.done; r = await reader.read())
      rest += Buffer.from(r.value).toString();
    expect(rest).toBe('event: b\ndata: 2\n\n');
  });

  it('decodes a gzip answer; asks for compression only when not asking for JSON', async () => {
    await using srv = await server((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/binary', 'content-encoding': 'gzip' });
      res.end(gzipSync('{"id":"a"}\n{"id":"b"}\n'));
    });
    const other = recorder();
    const res = await httpFetch(other.f, other.f)(`${srv.url}/v1/messages/batches/b/results`, {
      method: 'GET',
      headers: new Headers({ accept: 'application/binary' }),
    });
    expect(await res.text()).toBe('{"id":"a"}\n{"id":"b"}\n');
    expect(srv.seen[0]?.headers['accept-encoding']).toBe('gzip, deflate, br');
    await (await httpFetch(other.f, other.f)(`${srv.url}/x`, post('{}'))).arrayBuffer();
    expect(srv.seen[1]?.headers['accept-encoding']).toBeUndefined();
  });

  it('leaves to fetch what it does not take', async () => {
    const other = recorder();
    const f = httpFetch(other.f, recorder().f);
    const form = new FormData();
    form.set('a', 'b');
    const stream = new ReadableStream({ start: (c) => c.close() });
    const given: [RequestInfo | URL, RequestInit | undefined][] = [
      [new Request('http://127.0.0.1:9/'), undefined],
      ['http://127.0.0.1:9/', { method: 'POST', body: form }],
      ['http://127.0.0.1:9/', { method: 'POST', body: stream, duplex: 'half' } as RequestInit],
      ['http://127.0.0.1:9/', { redirect: 'manual' }],
      ['http://127.0.0.1:9/', { keepalive: true }],
      ['ftp://127.0.0.1:9/', undefined],
      ['http://user:pw@127.0.0.1:9/', undefined],
    ];
    for (const [input, init] of given) expect((await f(input, init)).status).toBe(599);
    expect(other.asked.map((a) => a.init)).toEqual(given.map(([, init]) => init));
  });
});

/** One server-sent event of the Messages stream. */
const sse = (type: string, data: object): string =>
  `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`;

/** A streamed answer 'Hello' in two deltas 30 ms apart; `/hang` stops after the deltas. */
const streaming: Handler = (req, res) => {
  const message = {
    id: 'msg_1',
    type: 'message',
    role: 'assistant',
    model: 'claude-sonnet-4-6',
    content: [],
    stop_reason: null,
    stop_sequence: null,
    usage: { input_tokens: 3, output_tokens: 0 },
  };
  res.writeHead(200, { 'content-type': 'text/event-stream', 'request-id': 'req_sse' });
  res.write(sse('message_start', { message }));
  res.write(sse('content_block_start', { index: 0, content_block: { type: 'text', text: '' } }));
  const parts = ['Hel', 'lo'];
  const next = (): void => {
    const text = parts.shift();
    if (text !== undefined) {
      res.write(sse('content_block_delta', { index: 0, delta: { type: 'text_delta', text } }));
      setTimeout(next, 30);
      return;
    }
    if (req.url?.startsWith('/hang') === true) return;
    res.write(sse('content_block_stop', { index: 0 }));
    const delta = { stop_reason: 'end_turn', stop_sequence: null };
    res.write(sse('message_delta', { delta, usage: { output_tokens: 2 } }));
    res.end(sse('message_stop', {}));
  };
  setTimeout(next, 30);
};

describe('the SDK over httpFetch', () => {
  const sdk = (url: string) =>
    new Anthropic({
      apiKey: 'sk-test',
      baseURL: url,
      maxRetries: 0,
      fetch: httpFetch(fetchWithoutCopy(fetch), fetch),
    });
  const params = {
    model: 'claude-sonnet-4-6',
    max_tokens: 10,
    messages: [{ role: 'user' as const, content: 'hi' }],
  };

  it('a streamed message arrives delta by delta', async () => {
    await using srv = await server(streaming);
    const stream = sdk(srv.url).messages.stream(params);
    const deltas: string[] = [];
    stream.on('text', (t) => deltas.push(t));
    const message = await stream.finalMessage();
    expect(deltas).toEqual(['Hel', 'lo']);
    expect(message.content).toMatchObject([{ type: 'text', text: 'Hello' }]);
    expect(message.usage.output_tokens).toBe(2);
  });

  it('an abort ends a stream that never finishes, quietly (as the SDK does over fetch)', async () => {
    await using srv = await server(streaming);
    const client = sdk(`${srv.url}/hang`);
    const abort = new AbortController();
    const stream = await client.messages.create(
      { ...params, stream: true },
      { signal: abort.signal },
    );
    const seen: string[] = [];
    const ended = (async () => {
      for await (const event of stream) {
        seen.push(event.type);
        if (event.type === 'content_block_delta') abort.abort();
      }
    })();
    await ended;
    expect(seen).toEqual(['message_start', 'content_block_start', 'content_block_delta']);
  });
});

describe('createAnthropicClient over httpFetch (real SDK)', () => {
  it('calls go over node:http, not the platform fetch', async () => {
    await using fake = await startFakeClaude();
    const platform = globalThis.fetch;
    let fetched = 0;
    globalThis.fetch = (input, init) => {
      fetched++;
      return platform(input, init);
    };
    let claude;
    try {
      claude = createAnthropicClient({ apiKey: 'sk-test', baseURL: fake.url });
    } finally {
      globalThis.fetch = platform;
    }
    for (let i = 0; i < 3; i++) {
      const out = await claude.call(hiRequest, new AbortController().signal);
      expect(out.ok).toBe(true);
      if (out.ok) expect(out.requestId).toMatch(/^req_fake_\d+$/);
    }
    expect([fake.count, fetched]).toEqual([3, 0]);
  });

  it('a `fetch` option replaces the transport', async () => {
    await using fake = await startFakeClaude();
    const urls: string[] = [];
    const claude = createAnthropicClient({
      apiKey: 'sk-test',
      baseURL: fake.url,
      fetch: (input, init) => {
        urls.push(String(input));
        return fetch(input, init);
      },
    });
    const out = await claude.call(hiRequest, new AbortController().signal);
    expect(out.ok).toBe(true);
    expect(urls).toEqual([`${fake.url}/v1/messages`]);
  });
});
