/**
 * Sending a signal to a run: checked against the pipeline's wait step for it (a bad payload is
 * refused with the reason, nothing kept), then kept in the store until the run's wait takes it —
 * at once if the run already waits, else when it gets there (a signal sent early is not lost).
 */
import { UsageError } from '../errors.js';
import { machineSteps } from '../machines/constructs.js';
import { isTerminal } from '../machines/fold.js';
import type { WaitStep } from '../machines/waits.js';
import type { EventLog, SignalRecord, Store } from '../store/types.js';
import type { Prepared } from './prepare.js';

/** What {@link sendSignal} did. */
export interface SignalSent {
  runId: string;
  signal: string;
  /** The run's status when the signal was kept (`waiting`: wake it now). */
  status: string;
  /** The step that takes it. */
  step: string;
}

/** The payload as the wait step for `name` parses it, or a UsageError with every issue. */
export function checkSignal(
  prepared: Prepared,
  name: string,
  payload: unknown,
): { step: WaitStep; payload: unknown } {
  const waits = machineSteps(prepared.pipeline.steps).filter(
    (s): s is WaitStep => s.kind === 'wait',
  );
  const step = waits.find((s) => s.signal === name);
  if (step === undefined)
    throw new UsageError(
      `pipeline '${prepared.pipeline.name}' has no wait step for signal '${name}': ${waits.length > 0 ? `its waits take ${waits.map((w) => `'${w.signal}'`).join(', ')}` : 'it has no wait step'}`,
    );
  const parsed = step.schema.safeParse(payload);
  if (!parsed.success)
    throw new UsageError(
      `signal '${name}' refused: the payload does not match step '${step.name}' schema: ${parsed.error.issues
        .map((i) => `${i.path.map(String).join('.') || '(root)'}: ${i.message}`)
        .join('; ')} (the run keeps waiting)`,
    );
  return { step, payload: parsed.data };
}

/**
 * True when the run has already recorded this kept signal (a SIGNAL of that name, sent at the
 * same time by the same sender): a process that died after the SIGNAL was durable and before
 * it dropped the kept signal left it behind, and no later wait of the run may take it again.
 */
export async function signalAlreadyTaken(log: EventLog, kept: SignalRecord): Promise<boolean> {
  return (await log.read(kept.runId)).some(
    (e) =>
      e.event.type === 'SIGNAL' &&
      e.event.signal === kept.name &&
      e.event.at === kept.at &&
      e.event.by === kept.by,
  );
}

/** Checks and keeps a signal for a run; throws a UsageError naming the fix when it cannot. */
export async function sendSignal(
  store: Store,
  prepared: Prepared,
  runId: string,
  name: string,
  payload: unknown,
  o: { by?: string | null; now: number },
): Promise<SignalSent> {
  const run = await store.log.getRun(runId);
  if (run === undefined)
    throw new UsageError(`unknown run id '${runId}': list runs with \`plumbline runs\``);
  if (isTerminal(run.status))
    throw new UsageError(`run ${runId} is ${run.status}: no wait takes a signal any more`);
  const { step, payload: value } = checkSignal(prepared, name, payload);
  const record = { runId, name, payload: value, by: o.by ?? null, at: o.now };
  let kept = await store.waits.putSignal(record);
  if (!kept) {
    // The one kept may be a signal the run has already taken (its taker died before dropping
    // it): that one makes room.
    const old = await store.waits.getSignal(runId, name);
    if (old !== undefined && (await signalAlreadyTaken(store.log, old))) {
      await store.waits.deleteSignal(runId, name);
      kept = await store.waits.putSignal(record);
    }
  }
  if (!kept)
    throw new UsageError(
      `a '${name}' signal is already kept for run ${runId} and not yet taken by its wait: wait for the run to take it (\`plumbline runs --waiting\`)`,
    );
  // Read again once kept: a run that reached its wait meanwhile looked before the signal was
  // there, and must be reported waiting so that the caller wakes it.
  const latest = await store.log.getRun(runId);
  return { runId, signal: name, status: latest?.status ?? run.status, step: step.name };
}
