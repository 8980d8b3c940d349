/**
 * The run visualizer: a small node:http server on 127.0.0.1 serving a plain-JS page and a JSON
 * API over the store's {@link EventLog} port (so it works on SQLite and JetStream alike), with
 * live updates over Server-Sent Events.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { Prepared } from '../runtime/prepare.js';
import { silentLogger } from '../runtime/logger.js';
import type { EventLog, Store } from '../store/types.js';
import { ChartCache, checkRunId, getRun, listPipelines, listRuns, pipelineChart } from './api.js';
import { hostGuard } from './guard.js';
import {
  decodePart,
  HttpError,
  intParam,
  readJsonBody,
  sendError,
  sendJson,
  serveStatic,
} from './http.js';
import { listChildren } from './runSteps.js';
import { SignalSender, type DriveRun } from './signal.js';
import { StreamSlots } from './slots.js';
import { serveEvents, type SseContext } from './sse.js';
import { StoreTail } from './tail.js';

/** Options of {@link startVizServer}. */
export interface VizServerOptions {
  /** The store (or just its event log) to show. */
  store: Store | EventLog;
  /** Port (default 7777; 0 picks a free one). */
  port?: number;
  /** Interface to bind (default `127.0.0.1`: the page shows run inputs and outputs). */
  host?: string;
  /**
   * More `Host` names to answer (`name` for any port, or `name:port`), e.g. behind a reverse
   * proxy. Without them only the bound address is answered (and `localhost`, `127.0.0.1`,
   * `[::1]` when bound to loopback): other names get 403, which stops DNS rebinding.
   */
  allowedHosts?: readonly string[];
  /** Live streams of one run (default 20); more get 503 with `Retry-After`. */
  maxStreamsPerRun?: number;
  /** Live streams in all (default 200); more get 503 with `Retry-After`. */
  maxStreams?: number;
  /** Loaded pipelines (`--pipelines`): their charts even without runs. */
  pipelines?: Map<string, Prepared>;
  logger?: Logger;
  /** How often live streams poll the store (default 250 ms). */
  pollMs?: number;
  /** Comment lines keeping idle streams open (default 15 s). */
  heartbeatMs?: number;
  /** Clock for durations of running runs (and the time a signal is sent). */
  now?: () => number;
  /**
   * Continues a run once the approve form's signal is kept (e.g. `runtime.drive`, or a resume
   * queued for a worker). Without it the signal is kept and the run waits for a worker or
   * `plumbline resume`.
   */
  drive?: DriveRun;
}

/** A running visualizer. */
export interface VizServer extends AsyncDisposable {
  /** `http://127.0.0.1:<port>/`. */
  readonly url: string;
  close(): Promise<void>;
}

/** The request target as a URL; 400 for anything but an origin-form path. */
function parseUrl(target: string | undefined): URL {
  const raw = target ?? '/';
  if (!raw.startsWith('/'))
    throw new HttpError(400, `request target '${raw.slice(0, 100)}' is not a path: ask for /`);
  try {
    return new URL(`http://localhost${raw}`);
  } catch {
    throw new HttpError(400, `malformed request path '${raw.slice(0, 100)}'`);
  }
}

function logOf(store: Store | EventLog): EventLog {
  return 'log' in store && typeof (store as Store).log === 'object'
    ? (store as Store).log
    : (store as EventLog);
}

/**
 * Starts the visualizer.
 * @example const viz = await startVizServer({ store: openSqliteStore('.plumbline/runs.db'), port: 0 });
 */
export async function startVizServer(opts: VizServerOptions): Promise<VizServer> {
  const log = logOf(opts.store);
  const definitions = 'definitions' in opts.store ? opts.store.definitions : undefined;
  const logger = opts.logger ?? silentLogger;
  const pipelines: ReadonlyMap<string, Prepared> = opts.pipelines ?? new Map();
  const now = opts.now ?? Date.now;
  const charts = new ChartCache();
  const signals = new SignalSender(
    'log' in opts.store && typeof (opts.store as Store).log === 'object'
      ? (opts.store as Store)
      : undefined,
    pipelines,
    opts.drive,
    logger,
    now,
  );
  const tail = new StoreTail(log, opts.pollMs ?? 250, logger);
  const sse: SseContext = {
    log,
    definitions,
    tail,
    pipelines,
    heartbeatMs: opts.heartbeatMs ?? 15_000,
    open: new Set(),
    slots: new StreamSlots({ perRun: opts.maxStreamsPerRun ?? 20, total: opts.maxStreams ?? 200 }),
  };
  let guard: (req: IncomingMessage) => void = () => {
    throw new HttpError(503, 'the visualizer is starting: retry');
  };

  const route = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    guard(req);
    const url = parseUrl(req.url);
    const path = url.pathname;
    const signal = /^\/api\/runs\/([^/]+)\/signals\/([^/]+)$/.exec(path);
    if (signal !== null) {
      if (req.method !== 'POST')
        throw new HttpError(405, `send a signal with POST ${path}`, { allow: 'POST' });
      const runId = checkRunId(decodePart(signal[1] ?? '', 'run id'));
      const name = decodePart(signal[2] ?? '', 'signal name');
      return sendJson(res, 200, await signals.send(runId, name, await readJsonBody(req)));
    }
    if (req.method !== 'GET' && req.method !== 'HEAD')
      throw new HttpError(
        405,
        `${req.method ?? '?'} is not allowed: the visualizer is read-only (use GET) but for POST /api/runs/<id>/signals/<name>`,
      );
    if (path === '/api/runs')
      return sendJson(res, 200, await listRuns(log, url.searchParams, now()));
    let m = /^\/api\/runs\/([^/]+)\/children$/.exec(path);
    if (m !== null)
      return sendJson(
        res,
        200,
        await listChildren(
          log,
          checkRunId(decodePart(m[1] ?? '', 'run id')),
          url.searchParams.get('step'),
          Math.min(5_000, intParam(url.searchParams, 'limit', 1_000) ?? 1_000),
        ),
      );
    m = /^\/api\/runs\/([^/]+)$/.exec(path);
    if (m !== null)
      return sendJson(
        res,
        200,
        await getRun(log, charts, pipelines, decodePart(m[1] ?? '', 'run id'), now(), definitions),
      );
    if (path === '/api/pipelines') return sendJson(res, 200, await listPipelines(log, pipelines));
    m = /^\/api\/pipelines\/([^/]+)\/chart$/.exec(path);
    if (m !== null)
      return sendJson(
        res,
        200,
        await pipelineChart(charts, pipelines, decodePart(m[1] ?? '', 'pipeline name')),
      );
    if (path === '/api/events') return serveEvents(req, res, url.searchParams, sse);
    if (path.startsWith('/api/')) {
      throw new HttpError(
        404,
        `no API route ${path}: try /api/runs, /api/runs/<id>, /api/runs/<id>/children, /api/pipelines, /api/pipelines/<name>/chart or /api/events`,
      );
    }
    if (await serveStatic(req, res, path)) return;
    throw new HttpError(404, `not found: ${path}`);
  };

  const server = createServer((req, res) => {
    route(req, res).catch((e: unknown) => {
      const status = e instanceof HttpError ? e.status : 500;
      if (status === 500) logger.error({ err: e, url: req.url }, 'viz: request failed');
      if (res.headersSent) {
        res.end();
        return;
      }
      sendError(
        res,
        status,
        e instanceof Error ? e.message : String(e),
        e instanceof HttpError ? e.headers : {},
      );
    });
  });
  const port = opts.port ?? 7777;
  const host = opts.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address() as AddressInfo;
  guard = hostGuard({ host, port: addr.port, allowedHosts: opts.allowedHosts ?? [] });
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${addr.port}/`;
  logger.info({ url }, 'viz: listening');

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= Promise.all([
      signals.close(),
      new Promise<void>((resolve) => {
        tail.close();
        for (const res of sse.open) res.end();
        sse.open.clear();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
    ]).then(() => undefined);
    return closing;
  };
  return { url, close, [Symbol.asyncDispose]: close };
}
