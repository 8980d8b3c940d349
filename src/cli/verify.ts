/**
 * `plumbline verify`: replays recorded logs against the current pipeline code and reports every
 * run whose machine hash or folded states no longer match — for CI before a deploy.
 */
import { isPlumblineError, ReplayMismatchError } from '../errors.js';
import { foldLog, startedOf } from '../machines/replay.js';
import type { Prepared } from '../runtime/prepare.js';
import type { Store } from '../store/types.js';
import { pipelineForRun } from './pipelines.js';

/** The verdict on one run. */
export interface VerifyResult {
  runId: string;
  pipeline: string;
  ok: boolean;
  recordedHash: string;
  currentHash: string | null;
  /** The first seq whose recorded state the current code does not reproduce. */
  firstMismatchSeq: number | null;
  message: string;
}

/** Verifies one run. */
export async function verifyRun(
  store: Store,
  runId: string,
  given: Map<string, Prepared>,
): Promise<VerifyResult> {
  const events = await store.log.read(runId);
  const { started } = startedOf(runId, events);
  const base = { runId, pipeline: started.pipeline, recordedHash: started.machineHash };
  let prepared: Prepared;
  try {
    prepared = await pipelineForRun(store, runId, given);
  } catch (e) {
    return {
      ...base,
      ok: false,
      currentHash: null,
      firstMismatchSeq: null,
      message: (e as Error).message,
    };
  }
  const hashOk = prepared.hash === started.machineHash;
  try {
    foldLog(prepared.machine, prepared.hash, runId, events, { ignoreHash: true });
  } catch (e) {
    const seq = e instanceof ReplayMismatchError ? e.seq : null;
    const msg = isPlumblineError(e) ? e.message : String(e);
    return {
      ...base,
      ok: false,
      currentHash: prepared.hash,
      firstMismatchSeq: seq,
      message: `${hashOk ? '' : `machine hash changed (recorded ${started.machineHash}, now ${prepared.hash}); `}first mismatching seq ${seq ?? '?'}: ${msg}`,
    };
  }
  return hashOk
    ? {
        ...base,
        ok: true,
        currentHash: prepared.hash,
        firstMismatchSeq: null,
        message: `all ${events.length} recorded states match`,
      }
    : {
        ...base,
        ok: false,
        currentHash: prepared.hash,
        firstMismatchSeq: null,
        message: `machine hash changed (recorded ${started.machineHash}, now ${prepared.hash}) although every recorded state still folds the same`,
      };
}
