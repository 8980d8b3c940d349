/**
 * The worker: takes start and resume commands from the bus, drives each run to a terminal or
 * parked state while the bus heartbeats the command, acks only then, and dead-letters commands
 * it can never process. A periodic check re-queues runs that nobody has touched for too long.
 * While the store refuses writes (disk full, read-only, file gone) it takes no work and retries
 * with backoff.
 */
import type { CommandBus, CommandControl, Command } from '../bus/types.js';
import { isUsageError, serializeError } from '../errors.js';
import { isTerminal } from '../machines/fold.js';
import { LeaseObserver, leaseIsLive } from '../store/leaseRules.js';
import { DEFAULT_UNLOAD_BACKOFF_MS } from './backoffUnload.js';
import { BreakerResumer, storeBreakerParking, type BreakerResumeOptions } from './breakerResume.js';
import { Breakers } from './breakers.js';
import type { Runtime, RunResult } from './driver.js';
import type { Logger } from './logger.js';
import type { Prepared } from './prepare.js';
import { probeWrite, StoreGate } from './storeGate.js';
import { WakeSweep } from './wakeSweep.js';

/** Options of {@link runWorker}. */
export interface WorkerOptions {
  runtime: Runtime;
  bus: CommandBus;
  pipelines: Map<string, Prepared>;
  concurrency: number;
  signal: AbortSignal;
  logger: Logger;
  /**
   * Extra `working()` beats while a run is driven, this often (default none: the bus itself
   * beats every command it handed out, at a fifth of its ack wait, until it is settled).
   */
  heartbeatMs?: number;
  /** How often to look for stranded runs (0 disables; default 60 s). */
  strandedCheckMs?: number;
  /**
   * A running run untouched this long whose lease has lapsed (or was never taken) is stranded
   * and re-queued (default 60 s). A run whose driver is alive keeps its lease, however slow.
   */
  strandedAfterMs?: number;
  /** Called when a run starts or stops being driven here (for metrics and tests). */
  onRunStart?: (cmd: Command) => void;
  onRunEnd?: (r: RunResult | null, cmd: Command) => void;
  /** Told when the store stops (true) and starts again (false) accepting writes. */
  onStoreDown?: (down: boolean) => void;
  /**
   * Runs parked by an open breaker are resumed through the bus: one as the half-open probe
   * after the cool-down, the rest at `perSecond` once it closed (default on; false: by hand).
   */
  breakerResume?: BreakerResumeOptions | false;
  /**
   * Backoffs at least this long (ms) let the run go: its retryAt is scheduled in the store, the
   * command is acked and the slot freed, and the wake-up sweep queues it again when due (any
   * worker drives it). Default 10 s; false waits every backoff out in the worker.
   */
  unloadBackoffMs?: number | false;
}

/** Runs a worker until `signal` aborts; resolves once the runs in flight have stopped. */
export async function runWorker(o: WorkerOptions): Promise<void> {
  const { runtime, bus, pipelines, logger } = o;
  const store = runtime.store;
  // Child runs (parallel branches, map items, calls) go on the bus: any worker drives them.
  runtime.queueChildren((runId) => bus.publishResume({ runId }));
  // Long backoffs wait in the store; this worker's sweep (below) queues them when due.
  runtime.unloadBackoffs(o.unloadBackoffMs ?? DEFAULT_UNLOAD_BACKOFF_MS, false);
  const inFlight = new Set<string>();
  const names = [...pipelines.keys()].join(', ') || '(none)';
  const gate = new StoreGate({
    logger,
    probe: probeWrite(store.control),
    ...(o.onStoreDown ? { onChange: o.onStoreDown } : {}),
  });

  const drive = async (
    prepared: Prepared,
    cmd: Command,
    ctl: CommandControl,
    go: () => Promise<RunResult>,
  ): Promise<void> => {
    inFlight.add(cmd.runId);
    o.onRunStart?.(cmd);
    let result: RunResult | null = null;
    const beat =
      o.heartbeatMs === undefined
        ? undefined
        : setInterval(() => {
            // A throw here would kill the process (it is a timer): a full disk must not.
            try {
              ctl.working();
            } catch (e) {
              if (!gate.report(e))
                logger.error({ runId: cmd.runId, err: serializeError(e) }, 'heartbeat failed');
            }
          }, o.heartbeatMs);
    try {
      const r = await go();
      result = r;
      if (r.stopped === 'aborted') {
        // Shutting down: let another worker take it at once.
        ctl.nak(0);
        return;
      }
      if (r.stopped === 'leased') {
        // Another live process drives it (it waited out one TTL and saw it renewed): that
        // process owns the run; if it dies, its lease lapses and the stranded check re-queues it.
        logger.info(
          {
            runId: cmd.runId,
            decision: 'ack',
            reason: `driven by ${r.holder?.owner ?? 'another process'} (lease token ${r.holder?.token ?? '?'}): leaving the run to it`,
          },
          'run leased elsewhere',
        );
        await ctl.ack();
        return;
      }
      if (r.stopped === 'fenced') {
        logger.warn(
          {
            runId: cmd.runId,
            decision: 'release',
            reason: 'another worker appended to this run: it owns it now',
          },
          'fenced',
        );
        // Not ours to ack: the other worker's delivery decides (and redelivers if it dies).
        ctl.release();
        return;
      }
      await ctl.ack();
    } finally {
      if (beat !== undefined) clearInterval(beat);
      inFlight.delete(cmd.runId);
      o.onRunEnd?.(result, cmd);
    }
  };

  const handle = async (cmd: Command, ctl: CommandControl): Promise<void> => {
    let run;
    try {
      run = await store.log.getRun(cmd.runId);
    } catch (e) {
      // A run id the store refuses (not a NATS subject token) never becomes valid: no retries.
      if (!isUsageError(e)) throw e;
      await ctl.deadLetter(e.message);
      logger.error(
        { runId: cmd.runId, decision: 'dead-letter', reason: e.message },
        'command dead-lettered',
      );
      return;
    }
    const pipelineName = cmd.type === 'start' ? cmd.pipeline : run?.pipeline;
    if (cmd.type === 'resume' && run === undefined) {
      await ctl.deadLetter(`resume of unknown run '${cmd.runId}'`);
      logger.error(
        { runId: cmd.runId, decision: 'dead-letter', reason: 'unknown run' },
        'command dead-lettered',
      );
      return;
    }
    const prepared = pipelineName !== undefined ? pipelines.get(pipelineName) : undefined;
    if (prepared === undefined) {
      const reason = `unknown pipeline '${pipelineName ?? '?'}': this worker loads ${names}; start workers with --pipelines <file|dir> that define it`;
      await ctl.deadLetter(reason);
      logger.error({ runId: cmd.runId, decision: 'dead-letter', reason }, 'command dead-lettered');
      return;
    }
    if (run !== undefined && isTerminal(run.status)) {
      // Ended by a path that left its wake-up scheduled (a kill recorded elsewhere): drop it.
      if (cmd.type === 'resume') await store.waits.clearWaiting(cmd.runId);
      logger.info(
        { runId: cmd.runId, decision: 'ack', reason: `run already ${run.status}` },
        'nothing to do',
      );
      await ctl.ack();
      return;
    }
    if (cmd.type === 'start') {
      if (run === undefined) {
        try {
          const l = cmd.limits ?? {};
          await runtime.create(prepared, {
            input: cmd.input,
            runId: cmd.runId,
            limits: {
              ...(l.budgetUsd != null ? { budgetUsd: l.budgetUsd } : {}),
              ...(l.maxIterations != null ? { maxIterations: l.maxIterations } : {}),
              ...(l.maxInputTokens != null ? { maxInputTokens: l.maxInputTokens } : {}),
              ...(l.maxOutputTokens != null ? { maxOutputTokens: l.maxOutputTokens } : {}),
              ...(l.deadlineAt != null
                ? { deadlineMs: Math.max(0, l.deadlineAt - Date.now()) }
                : {}),
            },
          });
        } catch (e) {
          // Another worker may have created it between our check and our append: drive it then.
          if (!(isUsageError(e) && /already exists/.test(e.message))) {
            if (isUsageError(e)) {
              await ctl.deadLetter(e.message);
              logger.error(
                {
                  runId: cmd.runId,
                  pipeline: prepared.pipeline.name,
                  decision: 'dead-letter',
                  reason: e.message,
                },
                'command dead-lettered',
              );
              return;
            }
            throw e;
          }
        }
      } else {
        logger.info(
          {
            runId: cmd.runId,
            decision: 'take-over',
            reason: `delivery ${ctl.deliveries}: the run exists, rebuilding it from its log`,
          },
          'take over',
        );
      }
      await drive(prepared, cmd, ctl, () => runtime.drive(prepared, cmd.runId, o.signal));
      return;
    }
    await drive(prepared, cmd, ctl, () =>
      runtime.resume(
        prepared,
        cmd.runId,
        {
          ...(cmd.budgetUsd !== undefined ? { budgetUsd: cmd.budgetUsd } : {}),
          ...(cmd.maxIterations !== undefined ? { maxIterations: cmd.maxIterations } : {}),
          ...(cmd.maxInputTokens !== undefined ? { maxInputTokens: cmd.maxInputTokens } : {}),
          ...(cmd.maxOutputTokens !== undefined ? { maxOutputTokens: cmd.maxOutputTokens } : {}),
          ...(cmd.deadlineAt !== undefined
            ? { deadlineMs: Math.max(0, cmd.deadlineAt - Date.now()) }
            : {}),
        },
        o.signal,
      ),
    );
  };

  const strandedEvery = o.strandedCheckMs ?? 60_000;
  const strandedAfter = o.strandedAfterMs ?? 60_000;
  const observer = new LeaseObserver();
  const check = async (): Promise<void> => {
    if (gate.down) return;
    // Stranded: running, quiet for a while, and nobody holds a live lease on it. A slow call
    // or effect keeps its lease renewed, so it is never re-queued however long it takes.
    const quiet = (
      await store.log.listRuns({ status: 'running', updatedBefore: Date.now() - strandedAfter })
    ).filter(
      (r) =>
        !inFlight.has(r.runId) &&
        pipelines.has(r.pipeline) &&
        // A child never driven (its log is its run.started) waits for its parent to launch it
        // in turn: driving it from here would drive every waiting map item at once, past the
        // map's concurrency, even under a parked parent.
        !(r.parent !== undefined && r.lastSeq === 1),
    );
    // A run let go (a long backoff, a batch's next poll) is quiet and unleased by design: the
    // sweep wakes it (and keeps waking it every 30 s while it stays due). Only the others' leases are read.
    const wakes = await store.waits.wakeTimes(quiet.map((r) => r.runId));
    const unscheduled = quiet.filter((r) => !wakes.has(r.runId));
    const holders = await store.leases.holders(unscheduled.map((r) => r.runId));
    for (const r of unscheduled) {
      const h = holders.get(r.runId);
      if (h !== undefined && leaseIsLive(r.runId, h, observer)) continue;
      await bus.publishResume({ runId: r.runId });
      logger.warn(
        {
          runId: r.runId,
          pipeline: r.pipeline,
          decision: 'requeue',
          reason: `stranded: no event for ${Math.round((Date.now() - r.updatedAt) / 1000)} s and ${h === undefined ? 'no lease' : `the lease of ${h.owner} lapsed`}`,
        },
        'stranded run re-queued',
      );
    }
  };
  const timer =
    strandedEvery > 0
      ? setInterval(() => {
          check().catch((e: unknown) => {
            if (!gate.report(e)) logger.error({ err: serializeError(e) }, 'stranded check failed');
          });
        }, strandedEvery)
      : undefined;
  // Any worker resumes breaker-parked runs through the bus (not the runtime's own drives,
  // which would bypass the concurrency and the shutdown of this worker).
  runtime.handOffBreakerResume();
  const resumer =
    o.breakerResume === false
      ? undefined
      : new BreakerResumer(
          storeBreakerParking(store, pipelines, (runId) => bus.publishResume({ runId })),
          new Breakers(store.control),
          Date.now,
          logger,
          {
            ...o.breakerResume,
            onError: (e) => {
              if (!gate.report(e))
                logger.error({ err: serializeError(e) }, 'breaker auto-resume check failed');
            },
          },
        );
  resumer?.start();
  // Waiting and sleeping runs whose time came are queued again (any worker drives them).
  const sweeper = new WakeSweep({
    store,
    logger,
    // Due by the runtime's clock: the one the wake-up and retry times were recorded on.
    now: () => runtime.now(),
    wake: async (runId) => {
      await bus.publishResume({ runId });
    },
  });
  sweeper.start();
  logger.info(
    { pipelines: names, concurrency: o.concurrency, decision: 'serve' },
    'worker started',
  );
  const onError = (e: unknown, cmd: Command | undefined): void => {
    const storeDown = gate.report(e);
    if (storeDown && cmd === undefined) return; // A refused claim: the gate has said it.
    if (cmd === undefined) {
      // A pull, a heartbeat or the consumer's set-up failed: the bus carries on (a command
      // whose heartbeats failed for a whole ack wait is delivered again, maybe elsewhere).
      logger.error({ err: serializeError(e), decision: 'continue' }, 'command bus failure');
      return;
    }
    logger[storeDown ? 'warn' : 'error'](
      {
        runId: cmd.runId,
        err: serializeError(e),
        decision: 'nak',
        reason: 'handler failed: the command will be delivered again',
      },
      'command failed',
    );
  };
  try {
    // Take work until the store refuses writes; then drain, probe with backoff, and go again.
    while (!o.signal.aborted) {
      const taking = new AbortController();
      const stop = (): void => taking.abort();
      o.signal.addEventListener('abort', stop, { once: true });
      const off = gate.onDown(stop);
      try {
        await bus.consume(handle, { concurrency: o.concurrency, signal: taking.signal, onError });
      } catch (e) {
        if (!gate.report(e)) throw e;
      } finally {
        off();
        o.signal.removeEventListener('abort', stop);
      }
      if (!gate.down) break;
      await gate.recover(o.signal);
    }
  } finally {
    if (timer) clearInterval(timer);
    resumer?.stop();
    sweeper.stop();
  }
}
