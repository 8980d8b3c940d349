/**
 * `GET /api/events`: Server-Sent Events of new envelopes, from the shared store tail.
 * With `runId`, one run's envelopes after seq `from` (default 0: all of them), each with the
 * path step it made; without, every run's envelopes after store position `from` (or
 * `Last-Event-ID`; default: only new ones). Each message is `event: envelope`, `id: <pos>`.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { MachineGraph } from '../machines/graph.js';
import type { Prepared } from '../runtime/prepare.js';
import type { DefinitionStore, EventLog, PositionedEnvelope } from '../store/types.js';
import type { StoredEnvelope } from '../machines/events.js';
import { checkRunId, graphOfRun } from './api.js';
import { HttpError, intParam } from './http.js';
import { pathSteps } from './path.js';
import type { StreamSlots } from './slots.js';
import type { StoreTail } from './tail.js';
import { EdgeTracer } from './trace.js';

/** What an SSE connection needs. */
export interface SseContext {
  log: EventLog;
  /** Machine graphs by hash (absent when the server was given only an event log). */
  definitions: DefinitionStore | undefined;
  tail: StoreTail;
  pipelines: ReadonlyMap<string, Prepared>;
  heartbeatMs: number;
  /** Open streams, ended when the server closes. */
  open: Set<ServerResponse>;
  /** Caps on open streams, per run and overall. */
  slots: StreamSlots;
}

function write(
  res: ServerResponse,
  env: StoredEnvelope,
  pos: number | null,
  extra: Record<string, unknown> = {},
): void {
  if (res.writableEnded || res.destroyed) return;
  const id = pos === null ? '' : `id: ${pos}\n`;
  res.write(`${id}event: envelope\ndata: ${JSON.stringify({ envelope: env, pos, ...extra })}\n\n`);
}

/** Serves one SSE connection until the client leaves or the server closes. */
export async function serveEvents(
  req: IncomingMessage,
  res: ServerResponse,
  params: URLSearchParams,
  ctx: SseContext,
): Promise<void> {
  const runIdRaw = params.get('runId');
  const runId = runIdRaw === null || runIdRaw === '' ? null : checkRunId(runIdRaw);
  const lastId = req.headers['last-event-id'];
  const fromParam = intParam(params, 'from', undefined);
  // A slot first, before any await: a flood is refused before it costs a read, and whatever
  // the stream holds is released when the client leaves, even in the middle of the setup.
  const cleanups = [ctx.slots.take(runId)];
  let closed = false;
  const stop = (): void => {
    if (closed) return;
    closed = true;
    for (const c of cleanups.splice(0)) c();
  };
  const onStop = (c: () => void): void => {
    if (closed) c();
    else cleanups.push(c);
  };
  res.on('close', stop);
  if (req.socket.destroyed) stop();
  try {
    await stream(res, { runId, fromParam, lastId }, ctx, { onStop, isClosed: () => closed });
  } catch (e) {
    stop();
    throw e;
  }
}

/** What one stream was asked for. */
interface StreamRequest {
  runId: string | null;
  fromParam: number | undefined;
  lastId: string | string[] | undefined;
}

/** The connection's end: cleanups to run then (or at once if it has ended), and whether it has. */
interface StreamLife {
  onStop(cleanup: () => void): void;
  isClosed(): boolean;
}

async function stream(
  res: ServerResponse,
  { runId, fromParam, lastId }: StreamRequest,
  ctx: SseContext,
  { onStop, isClosed }: StreamLife,
): Promise<void> {
  if (runId !== null && (await ctx.log.getRun(runId)) === undefined) {
    throw new HttpError(
      404,
      `unknown run id '${runId}': see GET /api/runs for the runs in this store`,
    );
  }
  if (isClosed()) return;

  // Buffer what the tail delivers until the catch-up read is sent, then go live.
  let pending: PositionedEnvelope[] | null = [];
  let live: (env: PositionedEnvelope) => void = () => undefined;
  const sub = await ctx.tail.subscribe((env) => (pending !== null ? pending.push(env) : live(env)));
  onStop(sub.unsubscribe);
  if (isClosed()) return;

  res.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-store',
    connection: 'keep-alive',
    'x-accel-buffering': 'no',
  });
  res.write('retry: 1000\n\n');
  ctx.open.add(res);
  onStop(() => ctx.open.delete(res));
  const heartbeat = setInterval(() => res.write(': heartbeat\n\n'), ctx.heartbeatMs);
  onStop(() => clearInterval(heartbeat));

  if (runId === null) {
    const lastPos = typeof lastId === 'string' && /^\d+$/.test(lastId) ? Number(lastId) : undefined;
    let sent = fromParam ?? lastPos ?? sub.head;
    while (sent < sub.head && !isClosed()) {
      const page = await ctx.log.readAll(sent, 1000);
      for (const env of page) if (env.pos <= sub.head) write(res, env, env.pos);
      if (page.length === 0) break;
      sent = Math.min(page[page.length - 1]?.pos ?? sub.head, sub.head);
    }
    sent = Math.max(sent, sub.head);
    live = (env) => {
      if (env.pos <= sent) return;
      sent = env.pos;
      write(res, env, env.pos);
    };
  } else {
    const from = fromParam ?? 0;
    const all = await ctx.log.read(runId, 1);
    if (isClosed()) return;
    const first = all[0];
    const { graph, machine } = await graphOfRun(first, ctx.pipelines, ctx.definitions);
    const tracer =
      machine !== null && first?.event.type === 'run.started'
        ? new EdgeTracer(machine, runId, first.event, first.at)
        : null;
    if (tracer !== null) onStop(() => tracer.stop());
    let prev: StoredEnvelope | undefined;
    let lastSeq = 0;
    const emit = (env: StoredEnvelope, pos: number | null): void => {
      if (env.seq <= lastSeq) return;
      const exact = tracer?.next(env) ?? null;
      if (env.seq > from) write(res, env, pos, { step: stepOf(graph, prev, env, exact) });
      prev = env;
      lastSeq = env.seq;
    };
    for (const env of all) emit(env, null);
    live = (env) => {
      if (env.runId === runId) emit(env, env.pos);
    };
  }
  const buffered = pending;
  pending = null;
  for (const env of buffered) live(env);
}

function stepOf(
  graph: MachineGraph | null,
  prev: StoredEnvelope | undefined,
  env: StoredEnvelope,
  exact: string[] | null,
): unknown {
  if (graph === null) return null;
  const steps = pathSteps(graph, prev === undefined ? [env] : [prev, env], {
    edgesOf: () => exact,
  });
  return steps[steps.length - 1] ?? null;
}
