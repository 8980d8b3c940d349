/**
 * `plumbline verify`: checks every recorded run and names each one that fails, and why — for CI
 * before a deploy, and after a store was copied, restored or tampered with. Per run: the log reads
 * back, its hash chain is unbroken, the run index agrees with it, each recorded cost matches its
 * usage at the step's price, each valid model output matches its step's schema, and today's
 * pipeline code folds the log to the recorded states (and costs). One unreadable run is that
 * run's failure; the others are still checked.
 */
import { isPlumblineError, ReplayMismatchError, UsageError } from '../errors.js';
import { checkChain } from '../machines/chain.js';
import { machineSteps } from '../machines/constructs.js';
import type { RunStarted, StoredEnvelope } from '../machines/events.js';
import type { LlmStep } from '../machines/pipeline.js';
import { foldLog, startedOf } from '../machines/replay.js';
import { batchPrice } from '../model/batch.js';
import { costUsd } from '../model/cost.js';
import { priceFor, stripDateSuffix } from '../model/prices.js';
import { modelsOf } from '../machines/fallback.js';
import { formatIssue } from '../model/structured.js';
import type { Price } from '../model/types.js';
import type { Prepared } from '../runtime/prepare.js';
import type { RunSummary, Store } from '../store/types.js';
import { pipelineForStarted } from './pipelines.js';

/** One thing wrong with a run: where (`seq`, when known) and why. */
export interface VerifyProblem {
  seq: number | null;
  reason: string;
}

/** The verdict on one run. */
export interface VerifyResult {
  runId: string;
  /** The pipeline recorded in `run.started` (`?` when the log cannot be read). */
  pipeline: string;
  ok: boolean;
  recordedHash: string | null;
  currentHash: string | null;
  /** The first seq whose recorded state the current code does not reproduce. */
  firstMismatchSeq: number | null;
  /** The lowest seq any problem names, else null. */
  seq: number | null;
  message: string;
  /** Every problem found, in the order the checks ran. */
  problems: VerifyProblem[];
}

const usdKey = (usd: number): number => Math.round(usd * 1e9);

function messageOf(e: unknown): string {
  return isPlumblineError(e) || e instanceof Error ? e.message : String(e);
}

function failed(
  runId: string,
  pipeline: string,
  problems: VerifyProblem[],
  hashes: Pick<VerifyResult, 'recordedHash' | 'currentHash' | 'firstMismatchSeq'>,
): VerifyResult {
  const seqs = problems.flatMap((p) => (p.seq === null ? [] : [p.seq]));
  return {
    runId,
    pipeline,
    ok: false,
    ...hashes,
    seq: seqs.length > 0 ? Math.min(...seqs) : null,
    message: problems.map((p) => p.reason).join('; '),
    problems,
  };
}

/**
 * The price a recorded call was billed at: its step's (route branches included; for a step with
 * fallback models, the model the call used), else the table's for the model — halved when the
 * attempt went through a Message Batch.
 */
function priceOfCall(
  prepared: Prepared | null,
  step: string,
  model: string,
  batched: boolean,
): Price | null {
  const s =
    prepared !== null
      ? machineSteps(prepared.pipeline.steps).find(
          (x): x is LlmStep => x.name === step && x.kind === 'llm',
        )
      : undefined;
  // The API may add a date to the model it reports.
  const used =
    s !== undefined
      ? modelsOf(s).find((m) => m === model || m === stripDateSuffix(model))
      : undefined;
  if (s !== undefined && prepared !== null) return prepared.priceOf(s, used);
  try {
    const price = priceFor(model, prepared?.pipeline.prices);
    return batched ? batchPrice(price) : price;
  } catch {
    return null;
  }
}

/** Recorded costs against usage × price, and valid model outputs against their step's schema. */
function checkCalls(events: readonly StoredEnvelope[], prepared: Prepared | null): VerifyProblem[] {
  const problems: VerifyProblem[] = [];
  /** Each step's last reservation: what a call lost with its process is counted at. */
  const reserved = new Map<string, number>();
  /** The attempts sent in a Message Batch (`step:attempt`): billed at the batch price. */
  const batched = new Set<string>();
  for (const { seq, event: ev } of events) {
    if (ev.type === 'ATTEMPT') reserved.set(ev.step, ev.estimate.usd);
    if (ev.type === 'BATCH_SUBMITTED') batched.add(`${ev.step}:${ev.attempt}`);
    if (ev.type !== 'MODEL_RESPONSE' && ev.type !== 'MODEL_ERROR') continue;
    const lost = ev.type === 'MODEL_ERROR' && ev.unconfirmed === true && ev.usage === null;
    const price = lost
      ? null
      : priceOfCall(prepared, ev.step, ev.model, batched.has(`${ev.step}:${ev.attempt}`));
    if (lost && usdKey(reserved.get(ev.step) ?? 0) !== usdKey(ev.costUsd))
      problems.push({
        seq,
        reason: `seq ${seq}: the lost call of step '${ev.step}' records costUsd ${ev.costUsd} but its reservation was ${reserved.get(ev.step) ?? 0} — the cost was edited`,
      });
    if (price !== null) {
      const expected = ev.usage === null ? 0 : costUsd(ev.usage, price);
      if (usdKey(expected) !== usdKey(ev.costUsd))
        problems.push({
          seq,
          reason: `seq ${seq}: ${ev.type} of step '${ev.step}' records costUsd ${ev.costUsd} but its usage ${ev.usage === null ? '(none)' : `(${ev.usage.inputTokens} in, ${ev.usage.outputTokens} out, ${ev.usage.cacheReadTokens} cache read, ${ev.usage.cacheWrite5mTokens + ev.usage.cacheWrite1hTokens} cache write)`} at the price of ${ev.model} costs ${expected} — the cost was edited, or the price changed since`,
        });
    }
    if (ev.type !== 'MODEL_RESPONSE' || ev.verdict !== 'valid' || prepared === null) continue;
    const step = prepared.pipeline.steps.find((s) => s.name === ev.step);
    if (step?.kind !== 'llm') continue;
    const parsed = step.output.safeParse(ev.output);
    if (!parsed.success)
      problems.push({
        seq,
        reason: `seq ${seq}: the output of step '${ev.step}' is recorded as valid but does not match the step's schema (${parsed.error.issues.map(formatIssue).join('; ')}) — the output was edited`,
      });
  }
  return problems;
}

/** The log against the run index: a deleted or appended event shows as a different last seq. */
function checkIndex(
  events: readonly StoredEnvelope[],
  row: RunSummary | undefined,
): VerifyProblem[] {
  const last = events[events.length - 1] as StoredEnvelope;
  if (row === undefined || row.lastSeq === last.seq) return [];
  return [
    {
      seq: Math.min(row.lastSeq, last.seq) + 1,
      reason: `the run index records ${row.lastSeq} events but the log ends at seq ${last.seq} — events were deleted or added outside plumbline`,
    },
  ];
}

/** Folds the log with today's code; a divergent state or running cost is a problem at its seq. */
function checkFold(
  runId: string,
  events: readonly StoredEnvelope[],
  started: RunStarted,
  prepared: Prepared,
): { problems: VerifyProblem[]; firstMismatchSeq: number | null } {
  const hashOk = prepared.hash === started.machineHash;
  const hashNote = `machine hash changed (recorded ${started.machineHash}, now ${prepared.hash})`;
  const bySeq = new Map(events.map((e) => [e.seq, e]));
  let costDrift: VerifyProblem | null = null;
  try {
    foldLog(prepared.machine, prepared.hash, runId, events, {
      ignoreHash: true,
      onStep: (s) => {
        const recorded = bySeq.get(s.seq)?.state.costUsd ?? 0;
        if (costDrift === null && usdKey(recorded) !== usdKey(s.snapshot.context.costUsd))
          costDrift = {
            seq: s.seq,
            reason: `seq ${s.seq}: the recorded run cost is ${recorded} but the recorded calls add up to ${s.snapshot.context.costUsd} — a state or a cost was edited`,
          };
      },
    });
  } catch (e) {
    const seq = e instanceof ReplayMismatchError ? e.seq : null;
    const reason = `${hashOk ? '' : `${hashNote}; `}first mismatching seq ${seq ?? '?'}: ${messageOf(e)}`;
    return {
      problems: [...(costDrift ? [costDrift] : []), { seq, reason }],
      firstMismatchSeq: seq,
    };
  }
  const problems: VerifyProblem[] = costDrift ? [costDrift] : [];
  if (!hashOk)
    problems.push({
      seq: null,
      reason: `${hashNote} although every recorded state still folds the same`,
    });
  return { problems, firstMismatchSeq: null };
}

/**
 * Verifies one run. Never throws for a problem of the run itself (unreadable, corrupt, edited):
 * that is the result. `row` is its index entry when the caller has it.
 */
export async function verifyRun(
  store: Store,
  runId: string,
  given: Map<string, Prepared>,
  row?: RunSummary,
): Promise<VerifyResult> {
  const none = { recordedHash: null, currentHash: null, firstMismatchSeq: null };
  let events: StoredEnvelope[];
  let started: RunStarted;
  try {
    events = await store.log.read(runId);
    started = startedOf(runId, events).started;
  } catch (e) {
    const seq =
      typeof (e as { seq?: unknown }).seq === 'number' ? (e as { seq: number }).seq : null;
    return failed(
      runId,
      row?.pipeline ?? '?',
      [{ seq, reason: `unreadable: ${messageOf(e)}` }],
      none,
    );
  }
  const problems: VerifyProblem[] = [];
  const chain = checkChain(events);
  if (!chain.ok) problems.push({ seq: chain.seq, reason: chain.reason });
  problems.push(...checkIndex(events, row ?? (await store.log.getRun(runId))));
  let prepared: Prepared | null = null;
  try {
    prepared = await pipelineForStarted(runId, started, given);
  } catch (e) {
    problems.push({ seq: null, reason: messageOf(e) });
  }
  problems.push(...checkCalls(events, prepared));
  const hashes = {
    recordedHash: started.machineHash,
    currentHash: prepared?.hash ?? null,
    firstMismatchSeq: null as number | null,
  };
  if (prepared !== null) {
    const fold = checkFold(runId, events, started, prepared);
    problems.push(...fold.problems);
    hashes.firstMismatchSeq = fold.firstMismatchSeq;
  }
  if (problems.length > 0) return failed(runId, started.pipeline, problems, hashes);
  return {
    runId,
    pipeline: started.pipeline,
    ok: true,
    ...hashes,
    seq: null,
    message: `all ${events.length} recorded states match`,
    problems: [],
  };
}

/** The table of failing runs: one line per problem (run, pipeline, seq, reason), with a header. */
export function failureTable(results: readonly VerifyResult[]): string[] {
  const bad = results.filter((r) => !r.ok);
  if (bad.length === 0) return [];
  const width = Math.max(3, ...bad.map((r) => r.runId.length));
  const pw = Math.max(8, ...bad.map((r) => r.pipeline.length));
  const line = (run: string, pipeline: string, seq: string, reason: string): string =>
    `${run.padEnd(width)}  ${pipeline.padEnd(pw)}  ${seq.padStart(5)}  ${reason}`;
  return [
    line('run', 'pipeline', 'seq', 'reason'),
    ...bad.flatMap((r) =>
      r.problems.map((p) =>
        line(r.runId, r.pipeline, p.seq === null ? '-' : String(p.seq), p.reason),
      ),
    ),
  ];
}

/** How many runs `verify --all` reads from the run index at a time. */
export const VERIFY_PAGE = 500;

/** What {@link verifyMany} found: how many runs it checked, and the failing ones. */
export interface VerifySummary {
  checked: number;
  failed: VerifyResult[];
}

/**
 * Verifies the runs named by `ids` (each must exist), or every run in the store when `ids` is
 * null: newest first, a page of the run index at a time, keeping only the failures (a store of
 * a million runs is never held in memory). `onEach` sees each verdict as it is reached, with
 * the total once it is known (named runs: at once; `--all`: after the last page).
 */
export async function verifyMany(
  store: Store,
  ids: readonly string[] | null,
  given: Map<string, Prepared>,
  onEach?: (result: VerifyResult, done: number, total: number | undefined) => void,
): Promise<VerifySummary> {
  const out: VerifySummary = { checked: 0, failed: [] };
  const check = async (row: RunSummary, total: number | undefined): Promise<void> => {
    const r = await verifyRun(store, row.runId, given, row);
    out.checked += 1;
    if (!r.ok) out.failed.push(r);
    onEach?.(r, out.checked, total);
  };
  if (ids !== null) {
    const rows: RunSummary[] = [];
    for (const id of ids) {
      const row = await store.log.getRun(id);
      if (row === undefined)
        throw new UsageError(`unknown run id '${id}': list runs with \`plumbline runs\``);
      rows.push(row);
    }
    for (const row of rows) await check(row, rows.length);
    return out;
  }
  let after: string | undefined;
  for (;;) {
    const page = await store.log.listRuns({
      limit: VERIFY_PAGE,
      ...(after !== undefined ? { after } : {}),
    });
    const last = page.length < VERIFY_PAGE;
    for (const [i, row] of page.entries())
      await check(row, last && i === page.length - 1 ? out.checked + 1 : undefined);
    if (last) break;
    after = page[page.length - 1]?.runId;
  }
  return out;
}
