/**
 * What the step view shows beside the path, read from the store: the child runs of a run's
 * map, call and parallel steps (counted by status, listed on demand) and the signals its wait
 * steps take (with the payload schema's fields, for the approve form).
 */
import { z } from 'zod';
import { machineSteps } from '../machines/constructs.js';
import type { WaitStep } from '../machines/waits.js';
import type { Prepared } from '../runtime/prepare.js';
import type { EventLog, RunSummary } from '../store/types.js';
import type { StepInfo } from './steps.js';

/** Child runs of one step, counted by status. */
export interface ChildCounts {
  total: number;
  byStatus: Partial<Record<RunSummary['status'], number>>;
  /** True when there were more children than were counted (see {@link MAX_COUNTED}). */
  truncated: boolean;
}

/** Children counted per run view: beyond it the page says "at least". */
export const MAX_COUNTED = 20_000;
const PAGE = 1_000;

/** A child run as the page lists it. */
export interface ChildRow {
  runId: string;
  part: string | number | null;
  status: RunSummary['status'];
  costUsd: number;
  startedAt: number;
  endedAt: number | null;
}

async function* childrenOf(log: EventLog, runId: string, max: number): AsyncGenerator<RunSummary> {
  let after: string | undefined;
  for (let seen = 0; seen < max;) {
    const page = await log.listRuns({
      parent: runId,
      limit: Math.min(PAGE, max - seen),
      ...(after !== undefined ? { after } : {}),
    });
    for (const r of page) yield r;
    seen += page.length;
    const last = page[page.length - 1];
    if (page.length < PAGE || last === undefined) return;
    after = last.runId;
  }
}

/**
 * Counts the children of `runId` by step and status, when `steps` has a step that makes child
 * runs (no query otherwise).
 */
export async function childCounts(
  log: EventLog,
  runId: string,
  steps: readonly StepInfo[],
): Promise<Record<string, ChildCounts>> {
  const makers = new Set(
    steps.filter((s) => ['map', 'call', 'parallel'].includes(s.kind)).map((s) => s.name),
  );
  const out: Record<string, ChildCounts> = {};
  if (makers.size === 0) return out;
  for (const s of makers) out[s] = { total: 0, byStatus: {}, truncated: false };
  let n = 0;
  for await (const r of childrenOf(log, runId, MAX_COUNTED + 1)) {
    if (++n > MAX_COUNTED) {
      for (const c of Object.values(out)) c.truncated = true;
      break;
    }
    const c = out[r.parent?.step ?? ''];
    if (c === undefined) continue;
    c.total += 1;
    c.byStatus[r.status] = (c.byStatus[r.status] ?? 0) + 1;
  }
  return out;
}

/** `GET /api/runs/:id/children?step=`: one step's child runs, in the order they started. */
export async function listChildren(
  log: EventLog,
  runId: string,
  step: string | null,
  limit: number,
): Promise<{ children: ChildRow[]; truncated: boolean }> {
  const children: ChildRow[] = [];
  let truncated = false;
  for await (const r of childrenOf(log, runId, MAX_COUNTED)) {
    if (step !== null && r.parent?.step !== step) continue;
    if (children.length === limit) {
      truncated = true;
      break;
    }
    children.push({
      runId: r.runId,
      part: r.parent?.part ?? null,
      status: r.status,
      costUsd: r.costUsd,
      startedAt: r.startedAt,
      endedAt: r.endedAt,
    });
  }
  // The store lists newest first; items read best in their input order.
  const key = (c: ChildRow): string =>
    typeof c.part === 'number' ? String(c.part).padStart(12, '0') : String(c.part ?? '');
  children.sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
  return { children, truncated };
}

/** A wait step as the approve form needs it. */
export interface WaitForm {
  step: string;
  signal: string;
  timeoutMs: number | null;
  /** The payload schema as JSON Schema, or null when zod cannot express it. */
  schema: unknown;
}

/** The wait steps of a loaded pipeline, by step name. */
export function waitForms(prepared: Prepared | undefined): Record<string, WaitForm> {
  const out: Record<string, WaitForm> = {};
  if (prepared === undefined) return out;
  for (const s of machineSteps(prepared.pipeline.steps)) {
    if (s.kind !== 'wait') continue;
    const w = s as WaitStep;
    let schema: unknown = null;
    try {
      schema = z.toJSONSchema(w.schema, { unrepresentable: 'any' });
    } catch {
      schema = null;
    }
    out[w.name] = { step: w.name, signal: w.signal, timeoutMs: w.timeoutMs ?? null, schema };
  }
  return out;
}
