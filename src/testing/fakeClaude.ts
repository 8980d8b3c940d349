/**
 * A fake Anthropic Messages API over HTTP on 127.0.0.1, close enough for the real SDK: scripted
 * answers, HTTP errors, dropped sockets and delays, and a record of every request received.
 */
import { createServer } from 'node:http';
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { ApiUsage } from '../model/cost.js';
import { answerBody, DEFAULT_USAGE, errorBody, errorResponseBody } from './fakeResponses.js';
import type { FakeAction, FakeUsage } from './fakeResponses.js';
import { FakePromptCache } from './fakeCache.js';
import { FakeBatches, type FakeBatchOptions } from './fakeBatches.js';
import { FakeRateLimiter, type FakeRateLimits } from './fakeRateLimits.js';

// Re-exported so importers of this module keep finding the action types here.
export type { FakeAction, FakeUsage } from './fakeResponses.js';
export type { FakeRateLimits } from './fakeRateLimits.js';

/** One request the fake received, with its parsed JSON body and all its headers. */
export interface FakeRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: Record<string, unknown>;
}

/**
 * One answer the fake produced and billed, as a provider bills a call it processed: whether or
 * not its client was still there to read it (`delivered`).
 */
export interface FakeBill {
  /** The `request-id` header sent (what the SDK reports as the call's request id). */
  requestId: string;
  model: string;
  usage: ApiUsage;
  delivered: boolean;
}

/** A list of actions used in order (then `valid`), or a function choosing the action per request. */
export type FakeScript = FakeAction[] | ((req: FakeRequest, index: number) => FakeAction);

/** A running fake Claude; dispose it (`await using`) or `close()` it. */
export interface FakeClaude extends AsyncDisposable {
  /** Base URL to pass as `baseURL` to the SDK. */
  readonly url: string;
  /** Every request received (both endpoints), oldest first. */
  readonly requests: readonly FakeRequest[];
  /** How many requests were received. */
  readonly count: number;
  /** How many `POST /v1/messages` were received (model calls; token counts not included). */
  readonly calls: number;
  /** Every answer produced (errors, drops and pending delays are not billed), oldest first. */
  readonly billed: readonly FakeBill[];
  /**
   * Ends every pending `delay` now, answering its `then` (a call held "in flight" completes
   * when the test says, even if its client has died meanwhile).
   */
  flush(): void;
  /** How many Message Batches were created (`POST /v1/messages/batches`). */
  readonly batches: number;
  /** How many items the created batches held in all. */
  readonly batchItems: number;
  /** Keeps every batch in progress (`true`) until called with `false`: then they end at the next poll. */
  holdBatches(hold: boolean): void;
  /** How many `POST /v1/messages` the rate limits refused with a 429 (see `rateLimits`). */
  readonly rateLimited: number;
  /** When (the fake's clock, epoch ms) each rate-limit 429 was sent. */
  readonly limitedAt: readonly number[];
  /** When each 200 answer to `POST /v1/messages` was sent. */
  readonly answeredAt: readonly number[];
  /** Replaces the script; a list starts again from its first action. */
  setScript(script: FakeScript): void;
  /** Forgets the requests and the prompt cache, and restores the script given at start. */
  reset(): void;
  /** Stops the server, cutting open connections and pending delays. */
  close(): Promise<void>;
}

/** Options of {@link startFakeClaude}. */
export interface FakeClaudeOptions {
  script?: FakeScript;
  /** Usage reported on every answer unless an action overrides it (default 100 in, 50 out). */
  usage?: FakeUsage;
  /** Port to listen on (default: a random free port). */
  port?: number;
  /**
   * The `input_tokens` answered by `POST /v1/messages/count_tokens` for a body (default: the
   * `usage.input_tokens` of the answers). {@link countByBytes} counts like a dense tokenizer.
   */
  countTokens?: (body: Record<string, unknown>) => number;
  /**
   * The clock of the prompt cache (default `Date.now`). A request with `cache_control` reads the
   * prefix it cached before (same model and text, within the TTL) and writes the rest: its usage
   * then reports `cache_read_input_tokens`, `cache_creation_input_tokens` and `cache_creation`.
   */
  now?: () => number;
  /** How batches progress and what each item gets (see {@link FakeBatchOptions}). */
  batches?: FakeBatchOptions;
  /**
   * Enforce per-minute limits as Anthropic does (token buckets starting full, refilled
   * continuously): a request over a limit gets a 429 `rate_limit_error` with `retry-after`, and
   * every `/v1/messages` response carries the `anthropic-ratelimit-*` headers. A request is
   * charged its input tokens (`countTokens(body)`, else the answers' `usage.input_tokens`) and
   * its `max_tokens` of output on arrival; the unused output is given back when it is answered.
   */
  rateLimits?: FakeRateLimits;
}

/**
 * A token count of half the UTF-8 bytes of the request's text (system, messages, tools, output
 * format), rounded up: what a fake counter may answer.
 * @example await startFakeClaude({ countTokens: countByBytes });
 */
export function countByBytes(body: Record<string, unknown>): number {
  const { system, messages, tools, output_config } = body;
  const text = JSON.stringify([system ?? null, messages ?? [], tools ?? [], output_config ?? {}]);
  return Math.ceil(Buffer.byteLength(text, 'utf8') / 2);
}

/**
 * Starts a fake Claude on 127.0.0.1 speaking `POST /v1/messages` and `/v1/messages/count_tokens`.
 * @example await using fake = await startFakeClaude({ script: [{ kind: 'status', status: 529 }] });
 */
export async function startFakeClaude(opts: FakeClaudeOptions = {}): Promise<FakeClaude> {
  const initialScript: FakeScript = opts.script ?? [];
  const usage: ApiUsage = { ...DEFAULT_USAGE, ...opts.usage };
  const requests: FakeRequest[] = [];
  const sockets = new Set<Socket>();
  const timers = new Map<NodeJS.Timeout, () => void>();
  const billed: FakeBill[] = [];
  let script = initialScript;
  let scriptIndex = 0;
  let serial = 0;
  const clock = opts.now ?? Date.now;
  const promptCache = new FakePromptCache(clock);
  let baseUrl = '';
  // A batch item takes the next action of the script, as if it were a POST /v1/messages.
  const batches = new FakeBatches(
    opts.batches ?? {},
    (item) => nextAction({ method: 'POST', path: '/v1/messages', headers: {}, body: item.params }),
    () => usage,
    () => baseUrl,
  );
  const limiter =
    opts.rateLimits !== undefined ? new FakeRateLimiter(opts.rateLimits, clock) : null;
  const limitedAt: number[] = [];
  const answeredAt: number[] = [];
  /** The rate-limit headers after giving back what an answered request did not use. */
  const rateHeaders = (charged: number | null, outputUsed: number): Record<string, string> => {
    if (limiter === null || charged === null) return {};
    limiter.finish(charged, outputUsed);
    return limiter.headers();
  };

  const nextAction = (req: FakeRequest): FakeAction => {
    const index = scriptIndex++;
    if (typeof script === 'function') return script(req, index);
    return script[index] ?? { kind: 'valid' };
  };

  const perform = (
    action: FakeAction,
    req: FakeRequest,
    res: ServerResponse,
    charged: number | null,
  ): void => {
    if (res.writableEnded) {
      rateHeaders(charged, 0);
      return;
    }
    // An answer whose client went away meanwhile (a held call) is still produced and billed, as
    // a provider bills a call it processed; nothing else is done for a gone client.
    const answers = action.kind !== 'drop' && action.kind !== 'delay' && action.kind !== 'status';
    if (res.destroyed && !answers) {
      rateHeaders(charged, 0);
      return;
    }
    const id = String(++serial).padStart(6, '0');
    if (action.kind === 'drop') {
      rateHeaders(charged, 0);
      res.socket?.destroy();
      return;
    }
    if (action.kind === 'delay') {
      const fire = (): void => {
        timers.delete(timer);
        perform(action.then, req, res, charged);
      };
      const timer = setTimeout(fire, action.ms);
      timers.set(timer, fire);
      return;
    }
    if (action.kind === 'status') {
      const headers = {
        'request-id': `req_fake_${id}`,
        ...rateHeaders(charged, 0),
        ...action.headers,
      };
      send(res, action.status, errorResponseBody(action, id), headers);
      return;
    }
    // An answer with cache_control reads and writes the prompt cache; the action's usage still wins.
    const cached = promptCache.use(req.body);
    const base = cached !== null ? { ...usage, ...cached } : usage;
    const answer = answerBody(action, req.body, id, base);
    billed.push({
      requestId: `req_fake_${id}`,
      model: String(req.body.model),
      usage: answer.usage,
      delivered: !res.destroyed,
    });
    const produced = (answer as { usage?: { output_tokens?: unknown } }).usage?.output_tokens;
    const headers = rateHeaders(charged, typeof produced === 'number' ? produced : 0);
    if (limiter !== null) answeredAt.push(clock());
    send(res, 200, answer, { 'request-id': `req_fake_${id}`, ...headers });
  };

  /** Admits a model call under the rate limits (or refuses it with a 429), then performs it. */
  const admit = (req: FakeRequest, res: ServerResponse): void => {
    if (limiter === null) return perform(nextAction(req), req, res, null);
    const input = opts.countTokens ? opts.countTokens(req.body) : usage.input_tokens;
    const maxTokens = typeof req.body.max_tokens === 'number' ? req.body.max_tokens : 0;
    const admitted = limiter.admit(input, maxTokens);
    if (admitted.ok) return perform(nextAction(req), req, res, admitted.outputCharged);
    limitedAt.push(clock());
    const id = String(++serial).padStart(6, '0');
    const message = `fake rate limit: this request would exceed the ${admitted.window} per minute limit`;
    send(res, 429, errorBody('rate_limit_error', message), {
      'request-id': `req_fake_${id}`,
      'retry-after': String(admitted.retryAfterS),
      ...limiter.headers(),
    });
  };

  const server = createServer((incoming, res) => {
    void handle(incoming, res).catch((e: unknown) => {
      // A throwing script function becomes a 500 the test can see, not a crashed server.
      send(res, 500, errorBody('api_error', `fake Claude script failed: ${String(e)}`), {});
    });
  });
  const handle = (incoming: IncomingMessage, res: ServerResponse): Promise<void> =>
    readBody(incoming).then((raw) => {
      const path = (incoming.url ?? '/').split('?')[0] ?? '/';
      let body: Record<string, unknown>;
      try {
        body = raw === '' ? {} : (JSON.parse(raw) as Record<string, unknown>);
      } catch {
        send(res, 400, errorBody('invalid_request_error', 'body is not JSON'), {});
        return;
      }
      const req: FakeRequest = {
        method: incoming.method ?? 'GET',
        path,
        headers: incoming.headers,
        body,
      };
      requests.push(req);
      if (req.method === 'POST' && path === '/v1/messages/count_tokens') {
        const counted = opts.countTokens ? opts.countTokens(body) : usage.input_tokens;
        send(res, 200, { input_tokens: counted }, {});
      } else if (req.method === 'POST' && path === '/v1/messages') {
        admit(req, res);
      } else if (path.startsWith('/v1/messages/batches')) {
        const reply = batches.handle(req.method, path, body);
        if (reply === null)
          send(
            res,
            404,
            errorBody('not_found_error', `fake Claude has no ${req.method} ${path}`),
            {},
          );
        else if (reply.jsonl !== undefined) sendText(res, reply.jsonl);
        else send(res, reply.status, reply.body, { 'request-id': `req_fake_batch_${++serial}` });
      } else {
        send(
          res,
          404,
          errorBody('not_found_error', `fake Claude has no ${req.method} ${path}`),
          {},
        );
      }
    });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  baseUrl = `http://127.0.0.1:${port}`;

  let closing: Promise<void> | null = null;
  const close = (): Promise<void> => {
    closing ??= new Promise<void>((resolve) => {
      for (const timer of timers.keys()) clearTimeout(timer);
      timers.clear();
      server.close(() => resolve());
      for (const socket of sockets) socket.destroy();
    });
    return closing;
  };

  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    get count() {
      return requests.length;
    },
    get calls() {
      return requests.filter((r) => r.method === 'POST' && r.path === '/v1/messages').length;
    },
    billed,
    flush() {
      for (const [timer, fire] of [...timers]) {
        clearTimeout(timer);
        fire();
      }
    },
    get batches() {
      return batches.created;
    },
    get batchItems() {
      return batches.items;
    },
    holdBatches(hold) {
      batches.setHold(hold);
    },
    get rateLimited() {
      return limitedAt.length;
    },
    limitedAt,
    answeredAt,
    setScript(next) {
      script = next;
      scriptIndex = 0;
    },
    reset() {
      requests.length = 0;
      billed.length = 0;
      limitedAt.length = 0;
      answeredAt.length = 0;
      promptCache.clear();
      script = initialScript;
      scriptIndex = 0;
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}

function send(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string>,
): void {
  if (res.destroyed || res.writableEnded) return;
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

/** A JSON Lines body (the batch results), as the API streams it. */
function sendText(res: ServerResponse, text: string): void {
  if (res.destroyed || res.writableEnded) return;
  res.writeHead(200, {
    'content-type': 'application/binary',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', () => resolve(''));
  });
}
