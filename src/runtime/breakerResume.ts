/**
 * Breaker auto-resume: runs parked by an open circuit breaker come back by themselves. After
 * the cool-down one parked run is resumed as the half-open probe (nothing else would call the
 * model if every run is parked); once a probe succeeded and the breaker is closed, the others
 * are resumed at a steady pace. Who resumes differs: on the embedded store the runtime that
 * parked a run drives it again ({@link LocalBreakerParking}); with workers, any worker finds the
 * parked runs in the store and publishes resume commands ({@link storeBreakerParking}).
 * Duplicates are harmless: a resume takes the run's lease first, and a resumed run whose breaker
 * is still open parks again.
 */
import { serializeError } from '../errors.js';
import type { Store } from '../store/types.js';
import { Breakers, type BreakerState } from './breakers.js';
import type { Logger } from './logger.js';
import type { Prepared } from './prepare.js';
import type { RunContext } from '../machines/context.js';
import { currentModel, modelsOf } from '../machines/fallback.js';

/** Settings of breaker auto-resume. */
export interface BreakerResumeOptions {
  /** Runs resumed per second once their breaker closed (default 10). */
  perSecond?: number;
  /** How often the breakers are looked at while runs wait on one (default 1 s). */
  pollMs?: number;
  /**
   * A resume sent for a run that is still parked at the same event after this long is sent
   * again (default 30 s): its command may have been lost with a worker.
   */
  resendAfterMs?: number;
  /** Told when a look at the breakers or the store failed (default: a warning line). */
  onError?: (e: unknown) => void;
}

/** A run parked by an open breaker: its id, the model whose breaker parked it, its last seq. */
export interface BreakerParkedRun {
  runId: string;
  model: string;
  seq: number;
}

/** Where parked runs come from and how one is resumed. */
export interface BreakerParkingSource {
  /** Models to watch. */
  models(): Iterable<string>;
  /** The runs parked by the breaker of one of `models`, in the order to resume them. */
  parked(models: ReadonlySet<string>): Promise<BreakerParkedRun[]>;
  /** Resumes a run (without waiting for it to finish). */
  resume(run: BreakerParkedRun, why: 'probe' | 'closed'): Promise<void>;
}

/** What one look at a model's breaker asks for. */
export type BreakerResumeStep = { kind: 'none' } | { kind: 'probe' } | { kind: 'resume' };

/**
 * What to do for a model's breaker now (pure): resume runs once it is closed; send one probe
 * when it is open past its cool-down, or half-open with no live probe — at most one per
 * cool-down, so a probe that found the provider still down is not followed by a stampede.
 */
export function breakerResumeStep(
  s: BreakerState,
  now: number,
  lastProbeAt: number | undefined,
): BreakerResumeStep {
  if (s.state === 'closed') return { kind: 'resume' };
  const probeDue = lastProbeAt === undefined || now - lastProbeAt >= s.coolDownMs;
  if (!probeDue) return { kind: 'none' };
  if (s.state === 'open')
    return s.openedAt !== null && now - s.openedAt >= s.coolDownMs
      ? { kind: 'probe' }
      : { kind: 'none' };
  const probeGone = s.probeAt === null || now - s.probeAt >= s.probeTimeoutMs;
  return probeGone ? { kind: 'probe' } : { kind: 'none' };
}

/** Watches the breakers of a source's models and resumes what they parked. */
export class BreakerResumer {
  private readonly perSecond: number;
  private readonly pollMs: number;
  private readonly resendAfterMs: number;
  private readonly onError: (e: unknown) => void;
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private tokens: number;
  private refilledAt: number;
  private readonly lastProbe = new Map<string, number>();
  /** Resumes sent and not yet seen to take effect: runId → { seq it was parked at, when }. */
  private readonly sent = new Map<string, { seq: number; at: number }>();
  /** Per model, the `opens` count for which a sweep found nothing left to resume. */
  private readonly quiet = new Map<string, number>();
  /** Per model, since when (and at which `opens`) it has been seen closed. */
  private readonly closedSince = new Map<string, { opens: number; at: number }>();

  constructor(
    private readonly source: BreakerParkingSource,
    private readonly breakers: Pick<Breakers, 'state'>,
    private readonly now: () => number,
    private readonly logger: Logger,
    opts: BreakerResumeOptions = {},
  ) {
    this.perSecond = Math.max(0.1, opts.perSecond ?? 10);
    this.pollMs = Math.max(10, opts.pollMs ?? 1_000);
    this.resendAfterMs = opts.resendAfterMs ?? 30_000;
    this.onError =
      opts.onError ??
      ((e) => this.logger.warn({ err: serializeError(e) }, 'breaker auto-resume check failed'));
    this.tokens = Math.max(1, this.perSecond);
    this.refilledAt = now();
  }

  /** Starts watching (idempotent). The timer does not keep the process alive. */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.schedule(this.pollMs);
  }

  /** Stops watching. */
  stop(): void {
    this.running = false;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private schedule(ms: number): void {
    if (!this.running) return;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.tick()
        .catch((e: unknown) => {
          this.onError(e);
          return false;
        })
        .then((backlog) =>
          this.schedule(backlog ? Math.max(10, Math.floor(1_000 / this.perSecond)) : this.pollMs),
        )
        .catch(() => undefined);
    }, ms);
    this.timer.unref();
  }

  /** One look at the breakers; true when runs are left to resume at the next tick. */
  async tick(): Promise<boolean> {
    const now = this.now();
    this.tokens = Math.min(
      Math.max(1, this.perSecond),
      this.tokens + ((now - this.refilledAt) / 1_000) * this.perSecond,
    );
    this.refilledAt = now;
    for (const [runId, s] of this.sent)
      if (now - s.at >= this.resendAfterMs) this.sent.delete(runId);
    const steps = new Map<string, { step: BreakerResumeStep; state: BreakerState }>();
    for (const model of new Set(this.source.models())) {
      const state = await this.breakers.state(model);
      const step = breakerResumeStep(state, now, this.lastProbe.get(model));
      if (state.state !== 'closed') {
        this.closedSince.delete(model);
        this.quiet.delete(model);
      } else if (state.opens === 0 || this.quiet.get(model) === state.opens) continue;
      else if (this.closedSince.get(model)?.opens !== state.opens)
        this.closedSince.set(model, { opens: state.opens, at: now });
      if (step.kind !== 'none') steps.set(model, { step, state });
    }
    if (steps.size === 0) return false;
    const runs = (await this.source.parked(new Set(steps.keys()))).filter(
      (r) => this.sent.get(r.runId)?.seq !== r.seq,
    );
    let backlog = false;
    for (const [model, { step, state }] of steps) {
      const mine = runs.filter((r) => r.model === model);
      if (step.kind === 'probe') {
        const first = mine[0];
        if (first === undefined) continue;
        this.lastProbe.set(model, now);
        await this.send(first, 'probe', state);
        continue;
      }
      if (mine.length === 0) {
        // Closed and nothing left: quiet until it opens again (after a grace for runs that
        // parked on a stale view while the probe was closing it).
        const since = this.closedSince.get(model);
        if (since !== undefined && now - since.at >= 2 * this.pollMs)
          this.quiet.set(model, state.opens);
        continue;
      }
      this.lastProbe.delete(model);
      for (const run of mine) {
        if (this.tokens < 1) {
          backlog = true;
          break;
        }
        this.tokens -= 1;
        await this.send(run, 'closed', state);
      }
    }
    return backlog;
  }

  private async send(run: BreakerParkedRun, why: 'probe' | 'closed', s: BreakerState) {
    this.sent.set(run.runId, { seq: run.seq, at: this.now() });
    this.logger.info(
      {
        runId: run.runId,
        model: run.model,
        breaker: s.key,
        decision: why === 'probe' ? 'probe' : 'auto-resume',
        reason:
          why === 'probe'
            ? `breaker ${s.state} past its ${s.coolDownMs} ms cool-down: resuming one parked run as the half-open probe`
            : 'breaker closed: resuming a run it parked',
      },
      why === 'probe' ? 'breaker probe' : 'breaker auto-resume',
    );
    await this.source.resume(run, why);
  }
}

/**
 * The model whose breaker parked a run in `step`: the step's model, or for a step with fallback
 * models the one its refused attempt asked for (as the run's context records it).
 */
function stepModel(prepared: Prepared, step: string, ctx?: RunContext): string | undefined {
  const s = prepared.pipeline.steps.find((x) => x.name === step);
  if (s?.kind === 'agent') return s.model;
  if (s?.kind !== 'llm') return undefined;
  return ctx !== undefined ? currentModel(s, ctx) : modelsOf(s)[0];
}

/**
 * The embedded store's side: the runtime notes every run its drives leave parked by the
 * breaker and drives them again itself (a run it parked, it knows how to drive) — a parent
 * parked because its children were (a map, parallel or call step) included, or it would wait
 * forever on children the breaker resumed.
 */
export class LocalBreakerParking implements BreakerParkingSource {
  private readonly runs = new Map<string, { prepared: Prepared; run: BreakerParkedRun }>();
  private readonly resumer: BreakerResumer;

  constructor(
    private readonly store: Store,
    now: () => number,
    private readonly logger: Logger,
    private readonly drive: (prepared: Prepared, runId: string) => Promise<unknown>,
    opts: BreakerResumeOptions = {},
  ) {
    this.resumer = new BreakerResumer(this, new Breakers(store.control), now, logger, opts);
  }

  /** Notes how a drive ended: a run parked by the breaker is remembered until resumed. */
  note(
    prepared: Prepared,
    r: {
      runId: string;
      status: string;
      seq: number;
      parked: { step: string; reason: string } | null;
      stopped?: string;
    },
    ctx?: RunContext,
  ): void {
    if (r.stopped !== undefined || r.status !== 'parked' || r.parked?.reason !== 'breaker') return;
    const model = stepModel(prepared, r.parked.step, ctx);
    if (model !== undefined) {
      this.remember(prepared, { runId: r.runId, model, seq: r.seq });
      return;
    }
    // A parent parked by its children (CHILDREN_PARKED): it waits on the breaker of the model
    // its parked child called, read from the store (the children's drives have ended).
    childBreakerModel(this.store, r.runId)
      .then((m) => {
        if (m !== null) this.remember(prepared, { runId: r.runId, model: m, seq: r.seq });
      })
      .catch((e: unknown) =>
        this.logger.warn(
          { runId: r.runId, err: serializeError(e), decision: 'leave' },
          'breaker auto-resume: cannot read why the run parked; resume it by hand',
        ),
      );
  }

  private remember(prepared: Prepared, run: BreakerParkedRun): void {
    this.runs.set(run.runId, { prepared, run });
    this.resumer.start();
  }

  /** Stops resuming (a worker took over, through its bus). */
  stop(): void {
    this.resumer.stop();
    this.runs.clear();
  }

  /** How many runs wait to be resumed here. */
  get size(): number {
    return this.runs.size;
  }

  models(): Iterable<string> {
    if (this.runs.size === 0) this.resumer.stop();
    return new Set([...this.runs.values()].map((r) => r.run.model));
  }

  parked(models: ReadonlySet<string>): Promise<BreakerParkedRun[]> {
    return Promise.resolve(
      [...this.runs.values()].map((r) => r.run).filter((r) => models.has(r.model)),
    );
  }

  resume(run: BreakerParkedRun): Promise<void> {
    const entry = this.runs.get(run.runId);
    if (entry === undefined) return Promise.resolve();
    // Forgotten now; if it parks on the breaker again, its drive notes it again.
    this.runs.delete(run.runId);
    this.drive(entry.prepared, run.runId).catch((e: unknown) =>
      this.logger.error(
        { runId: run.runId, err: serializeError(e), decision: 'leave' },
        'breaker auto-resume failed: resume the run by hand',
      ),
    );
    return Promise.resolve();
  }
}

/**
 * The model whose open breaker parked `runId`'s child (a parent parks with CHILDREN_PARKED when
 * its children did): the child's latest refused ATTEMPT, or its own child's, however deep.
 */
async function childBreakerModel(store: Store, runId: string, depth = 0): Promise<string | null> {
  const log = await store.log.read(runId);
  for (let k = log.length - 1; k >= 0; k--) {
    const e = log[k]?.event;
    if (e?.type === 'ATTEMPT' && e.breaker === 'open') return e.model;
    if (e?.type === 'CHILDREN_PARKED' && e.reason === 'breaker')
      return depth < 8 ? childBreakerModel(store, e.child, depth + 1) : null;
  }
  return null;
}

/**
 * The workers' side: the runs parked by a breaker, found in the store's run index (the reason
 * is read from each parked run's last event — an ATTEMPT the open breaker refused — once per
 * park), resumed by publishing a resume command any worker may take.
 */
export function storeBreakerParking(
  store: Store,
  pipelines: ReadonlyMap<string, Prepared>,
  publish: (runId: string) => Promise<unknown>,
): BreakerParkingSource {
  const models = new Set<string>();
  for (const p of pipelines.values())
    for (const s of p.pipeline.steps)
      if (s.kind === 'agent') models.add(s.model);
      else if (s.kind === 'llm') for (const m of modelsOf(s)) models.add(m);
  const seen = new Map<string, { seq: number; model: string | null }>();
  return {
    models: () => models,
    async parked(want) {
      const runs = (await store.log.listRuns({ status: 'parked' })).filter((r) =>
        pipelines.has(r.pipeline),
      );
      const out: BreakerParkedRun[] = [];
      const live = new Set<string>();
      for (const r of runs) {
        live.add(r.runId);
        let info = seen.get(r.runId);
        if (info?.seq !== r.lastSeq) {
          const [last] = await store.log.read(r.runId, r.lastSeq);
          const e = last?.event;
          info = {
            seq: r.lastSeq,
            model:
              e?.type === 'ATTEMPT' && e.breaker === 'open'
                ? e.model
                : e?.type === 'CHILDREN_PARKED' && e.reason === 'breaker'
                  ? await childBreakerModel(store, e.child)
                  : null,
          };
          seen.set(r.runId, info);
        }
        if (info.model !== null && want.has(info.model))
          out.push({ runId: r.runId, model: info.model, seq: r.lastSeq });
      }
      for (const id of seen.keys()) if (!live.has(id)) seen.delete(id);
      // In run-id order (ULIDs: oldest first), the same in every worker: their probes coincide.
      return out.sort((a, b) => (a.runId < b.runId ? -1 : a.runId > b.runId ? 1 : 0));
    },
    async resume(run) {
      await publish(run.runId);
    },
  };
}
