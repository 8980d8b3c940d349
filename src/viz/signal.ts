/**
 * `POST /api/runs/:id/signals/:name` — the approve form: checks the payload against the wait
 * step's schema (`sendSignal`: a bad one answers 400 with the reason and nothing is kept), keeps
 * it, and, when the run already waits, has it driven on (in the background: the page follows the
 * run's live stream) by the `drive` the server was given.
 */
import type { Logger } from 'pino';
import { isUsageError } from '../errors.js';
import type { Prepared } from '../runtime/prepare.js';
import { sendSignal } from '../runtime/signals.js';
import type { Store } from '../store/types.js';
import { HttpError } from './http.js';

/** Continues a run after its signal was kept (embedded: drive it; on a bus: queue a resume). */
export type DriveRun = (prepared: Prepared, runId: string, signal: AbortSignal) => Promise<unknown>;

/** What the endpoint answers. */
export interface SignalAnswer {
  runId: string;
  signal: string;
  step: string;
  /** The run's status when the signal was kept. */
  status: string;
  /** True when the run was handed to `drive` (it waited already and a driver is configured). */
  driving: boolean;
  note: string;
}

/** Sends signals from the page and drives the runs they wake; close() stops those drives. */
export class SignalSender {
  private readonly drives = new Set<Promise<unknown>>();
  private readonly abort = new AbortController();

  constructor(
    private readonly store: Store | undefined,
    private readonly pipelines: ReadonlyMap<string, Prepared>,
    private readonly drive: DriveRun | undefined,
    private readonly logger: Logger,
    private readonly now: () => number,
  ) {}

  /** The loaded pipeline of `runId` (same name and machine hash), or a 409 saying how to load it. */
  private async preparedOf(store: Store, runId: string): Promise<Prepared> {
    const first = (await store.log.read(runId, 1))[0]?.event;
    if (first?.type !== 'run.started')
      throw new HttpError(404, `unknown run id '${runId}': see GET /api/runs`);
    const p = [...this.pipelines.values()].find((x) => x.pipeline.name === first.pipeline);
    if (p === undefined)
      throw new HttpError(
        409,
        `pipeline '${first.pipeline}' is not loaded, so its wait schema is unknown: start the viz with --pipelines <its file>, or use \`plumbline signal\``,
      );
    if (p.hash !== first.machineHash)
      throw new HttpError(
        409,
        `the loaded pipeline '${first.pipeline}' (machine ${p.hash.slice(0, 12)}) is not the one run ${runId} recorded (${first.machineHash.slice(0, 12)}): load that version with --pipelines`,
      );
    return p;
  }

  /** Handles one request body (`{ payload, by? }`). */
  async send(runId: string, name: string, body: unknown): Promise<SignalAnswer> {
    const store = this.store;
    if (store === undefined)
      throw new HttpError(
        501,
        'this visualizer was given an event log, not a store: signals need the store (startVizServer({ store }))',
      );
    if (typeof body !== 'object' || body === null || !('payload' in body))
      throw new HttpError(400, 'send {"payload": {…}, "by": "who"} as the body');
    const { payload, by } = body as { payload: unknown; by?: unknown };
    if (by !== undefined && by !== null && (typeof by !== 'string' || by.length > 200))
      throw new HttpError(400, '"by" must be a string of at most 200 characters (who approves)');
    const prepared = await this.preparedOf(store, runId);
    let sent;
    try {
      sent = await sendSignal(store, prepared, runId, name, payload, {
        by: typeof by === 'string' && by !== '' ? by : null,
        now: this.now(),
      });
    } catch (e) {
      if (isUsageError(e)) throw new HttpError(400, e.message);
      throw e;
    }
    const waiting = sent.status === 'waiting';
    const driving = waiting && this.drive !== undefined && !this.abort.signal.aborted;
    if (driving) this.start(prepared, runId);
    return {
      ...sent,
      driving,
      note: !waiting
        ? `signal kept: step '${sent.step}' takes it when the run gets there`
        : driving
          ? 'signal taken: the run goes on'
          : `signal kept: this visualizer drives no runs, so continue it with \`plumbline resume ${runId}\` or a worker`,
    };
  }

  private start(prepared: Prepared, runId: string): void {
    const d = (this.drive as DriveRun)(prepared, runId, this.abort.signal).catch((e: unknown) => {
      this.logger.error({ err: e, runId }, 'viz: driving a signalled run failed');
    });
    this.drives.add(d);
    void d.finally(() => this.drives.delete(d));
  }

  /** Stops the drives this page started and waits for them. */
  async close(): Promise<void> {
    this.abort.abort();
    await Promise.allSettled([...this.drives]);
  }
}
