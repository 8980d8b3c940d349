/**
 * Fleet verbs: `start` (queue a run on the bus) and `worker` (drive queued runs), over the
 * embedded store (a SQLite work queue) or NATS JetStream (a work-queue stream).
 * (The implementation, imported by fleet.ts only when the verb runs: issue 14.)
 */
import type { Command } from 'commander';
import { openBusFromUrl, type BusOptions } from '../backend.js';
import type { CommandBus } from '../bus/types.js';
import { loadPipeline, loadPipelines } from '../runtime/load.js';
import { parseRunInput } from '../runtime/prepare.js';
import { WorkerMetrics } from '../runtime/metrics.js';
import { runWorker } from '../runtime/worker.js';
import { rateLimitsFrom, type RateFlags } from './rateOptions.js';
import type { Store } from '../store/types.js';
import {
  cliLogger,
  makeRuntime,
  openStore,
  out,
  outJson,
  parseInput,
  storeSpec,
  globals,
} from './context.js';
import { listening } from './listen.js';
import { cliClient } from './client.js';

/** Opens the command bus that goes with a store spec. */
export async function openBus(spec: string, opts: BusOptions = {}): Promise<CommandBus> {
  return openBusFromUrl(spec, opts);
}

/** The `start` verb, imported only when it runs. */
export function startAction() {
  return async (
    pipeline: string,
    o: {
      input?: string;
      runId?: string;
      budgetUsd?: number | 'auto';
      maxIterations?: number;
      deadline?: number;
      maxInputTokens?: number;
      maxOutputTokens?: number;
      json?: boolean;
    },
    cmd: Command,
  ) => {
    const g = globals(cmd);
    const input = await parseInput(o.input);
    // A module path is loaded here: its input is checked and its path recorded for workers.
    const prepared = /\.(m?ts|m?js)$/.test(pipeline) ? await loadPipeline(pipeline) : undefined;
    // Checked before anything is opened: a refused input creates no store.
    if (prepared !== undefined) parseRunInput(prepared.pipeline, input);
    const client = await cliClient(g);
    try {
      const r = await client.start(prepared?.pipeline ?? pipeline, input, {
        ...(o.runId !== undefined ? { runId: o.runId } : {}),
        ...(prepared?.module != null ? { module: prepared.module } : {}),
        limits: {
          ...(o.budgetUsd !== undefined ? { budgetUsd: o.budgetUsd } : {}),
          ...(o.maxIterations !== undefined ? { maxIterations: o.maxIterations } : {}),
          ...(o.deadline !== undefined ? { deadlineMs: o.deadline } : {}),
          ...(o.maxInputTokens !== undefined ? { maxInputTokens: o.maxInputTokens } : {}),
          ...(o.maxOutputTokens !== undefined ? { maxOutputTokens: o.maxOutputTokens } : {}),
        },
      });
      if (r.autoBudget !== undefined) process.stderr.write(`plumbline: ${r.autoBudget.note}\n`);
      if (o.json) outJson({ runId: r.runId, pipeline: r.pipeline, duplicate: r.duplicate });
      else
        out(
          r.duplicate
            ? `duplicate start for run ${r.runId}: already queued or started, dropped`
            : `queued run ${r.runId} (${r.pipeline})`,
        );
    } finally {
      await client.close();
    }
  };
}

/** The `dlq` verb, imported only when it runs. */
export function dlqAction() {
  return async (o: { json?: boolean }, cmd: Command) => {
    const bus = await openBus(storeSpec(globals(cmd)));
    try {
      const dead = await bus.deadLetters();
      for (const d of dead) {
        const text = new TextDecoder().decode(d.data);
        const preview =
          text.length > 200 ? `${text.slice(0, 200)}… (${d.data.length} bytes)` : text;
        if (o.json)
          outJson({
            reason: d.reason,
            subject: d.subject,
            deliveries: d.deliveries,
            at: d.at,
            data: preview,
          });
        else
          out(
            `${new Date(d.at).toISOString()} ${d.subject} x${d.deliveries}: ${d.reason}\n    ${preview}`,
          );
      }
      if (!o.json && dead.length === 0) out('no dead letters');
    } finally {
      await bus.close();
    }
  };
}

/** The `worker` verb, imported only when it runs. */
export function workerAction() {
  return async (
    o: {
      pipelines: string[];
      metricsHost: string;
      concurrency?: number;
      ackWait?: number;
      maxDeliver?: number;
      metricsPort?: number;
      strandedAfter?: number;
      unloadBackoff?: number;
    } & RateFlags,
    cmd: Command,
  ) => {
    const g = globals(cmd);
    const pipelines = await loadPipelines(o.pipelines);
    const spec = storeSpec(g);
    const logger = cliLogger(g);
    const store: Store = await openStore(spec);
    // The bus heartbeats the commands it hands out and, on NATS, sets the shared consumer
    // to this ack wait (the bus default when not given) as it starts consuming.
    const bus = await openBus(spec, {
      ...(o.ackWait !== undefined ? { ackWaitMs: o.ackWait } : {}),
      ...(o.maxDeliver !== undefined ? { maxDeliver: o.maxDeliver } : {}),
    });
    const metrics = new WorkerMetrics();
    const metricsPort = o.metricsPort;
    const server =
      metricsPort !== undefined
        ? await listening('--metrics-port', metricsPort, o.metricsHost, () =>
            metrics.serve(metricsPort, o.metricsHost),
          ).catch(async (e: unknown) => {
            await bus.close();
            await store.close();
            throw e;
          })
        : undefined;
    const timed: Store = {
      ...store,
      log: {
        ...store.log,
        append: async (runId, events, expected) => {
          const end = metrics.appendSeconds.startTimer();
          try {
            return await store.log.append(runId, events, expected);
          } finally {
            end();
          }
        },
      },
    };
    const rates = rateLimitsFrom(o);
    const runtime = makeRuntime(timed, g, {
      ...(rates !== undefined ? { rateLimits: rates } : {}),
      onEvent: (e) => metrics.observe(e),
      onEffectAbandoned: (a) =>
        metrics.effectsAbandoned.inc({ pipeline: a.pipeline, step: a.step, reason: a.reason }),
    });
    const ac = new AbortController();
    const stop = (): void => {
      logger.info(
        { decision: 'stop', reason: 'signal received: finishing runs in flight' },
        'worker stopping',
      );
      ac.abort();
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    try {
      await runWorker({
        runtime,
        bus,
        pipelines,
        concurrency: o.concurrency ?? 8,
        signal: ac.signal,
        logger,
        ...(o.strandedAfter !== undefined
          ? {
              strandedAfterMs: o.strandedAfter,
              strandedCheckMs: Math.max(1_000, Math.floor(o.strandedAfter / 2)),
            }
          : {}),
        ...(o.unloadBackoff !== undefined ? { unloadBackoffMs: o.unloadBackoff } : {}),
        onStoreDown: (down) => metrics.storeDown.set(down ? 1 : 0),
        onRunStart: () => metrics.inFlight.inc(),
        onRunEnd: () => metrics.inFlight.dec(),
      });
    } finally {
      server?.close();
      await bus.close();
      await store.close();
    }
  };
}
