/**
 * Child runs seen from their parent: how many a run has and how they ended, the tree of a run
 * (children nested under their parent, a long map shown as a few rows and a count of the
 * rest), and what each join (CHILDREN_DONE, BRANCH_DONE) of a parent's log says of its children.
 * Children are found through the run index's `parent` field, never by reading their logs.
 */
import type { RunStatus, StoredEnvelope } from '../machines/events.js';
import { childRunId } from '../runtime/childRunId.js';
import type { RunSummary, Store } from '../store/types.js';

/** How many direct children a run has, by status. */
export interface ChildCounts {
  total: number;
  byStatus: Partial<Record<RunStatus, number>>;
}

/** A run, the children shown beneath it (each a node), and the counts of those left out. */
export interface RunNode {
  run: RunSummary;
  /** Every direct child, by status (total 0: none). */
  counts: ChildCounts;
  children: RunNode[];
  /** The direct children not in `children` (total 0: all shown). */
  hidden: ChildCounts;
}

/** One child as a join of its parent saw it: its id (to replay it), status, cost and error. */
export interface ChildRunOutcome {
  runId: string;
  /** The item index (map), branch key (parallel) or null (call). */
  part: number | string | null;
  /** From the run index; `missing` when the child's run is not in the store. */
  status: RunStatus | 'missing';
  costUsd: number;
  error?: string;
}

/** A join in a parent's log (CHILDREN_DONE, or a parallel branch's BRANCH_DONE). */
export interface ChildJoin {
  seq: number;
  step: string;
  kind: 'map' | 'call' | 'parallel';
  children: ChildRunOutcome[];
}

/** Counts runs by status. */
export function countOf(runs: readonly RunSummary[]): ChildCounts {
  const byStatus: Partial<Record<RunStatus, number>> = {};
  for (const r of runs) byStatus[r.status] = (byStatus[r.status] ?? 0) + 1;
  return { total: runs.length, byStatus };
}

/** Orders parts as a person reads them: item indexes by number, branch keys by name. */
function comparePart(a: RunSummary, b: RunSummary): number {
  const pa = a.parent?.part ?? null;
  const pb = b.parent?.part ?? null;
  if (typeof pa === 'number' && typeof pb === 'number') return pa - pb;
  return String(pa).localeCompare(String(pb));
}

/** A run's direct children: steps in the order they started, each step's children by part. */
export async function childrenOf(store: Store, runId: string): Promise<RunSummary[]> {
  const all = await store.log.listRuns({ parent: runId });
  const firstAt = new Map<string, number>();
  for (const r of all) {
    const step = r.parent?.step ?? '';
    firstAt.set(step, Math.min(firstAt.get(step) ?? Infinity, r.startedAt));
  }
  const stepOf = (r: RunSummary): string => r.parent?.step ?? '';
  return all.sort(
    (a, b) =>
      (firstAt.get(stepOf(a)) ?? 0) - (firstAt.get(stepOf(b)) ?? 0) ||
      stepOf(a).localeCompare(stepOf(b)) ||
      comparePart(a, b),
  );
}

/** The children counts of these runs (runs without children are absent), a few runs at a time. */
export async function childCounts(
  store: Store,
  runIds: readonly string[],
): Promise<Map<string, ChildCounts>> {
  const out = new Map<string, ChildCounts>();
  const todo = [...runIds];
  const worker = async (): Promise<void> => {
    for (let id = todo.shift(); id !== undefined; id = todo.shift()) {
      const kids = await store.log.listRuns({ parent: id });
      if (kids.length > 0) out.set(id, countOf(kids));
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
  return out;
}

/**
 * At most `max` of `runs`, those that did not complete first (what a reader looks for), then
 * the completed ones; returned in their original order.
 */
export function pickShown<T extends { status: string }>(runs: readonly T[], max: number): T[] {
  if (runs.length <= max) return [...runs];
  const keep = new Set<T>();
  for (const r of runs) if (keep.size < max && r.status !== 'completed') keep.add(r);
  for (const r of runs) if (keep.size < max) keep.add(r);
  return runs.filter((r) => keep.has(r));
}

/**
 * The tree under `run`: its children (at most `maxChildren` per run, see {@link pickShown}),
 * theirs, and so on; each node counts every direct child, shown or not.
 */
export async function runTree(store: Store, run: RunSummary, maxChildren = 20): Promise<RunNode> {
  const kids = await childrenOf(store, run.runId);
  const shown = pickShown(kids, maxChildren);
  const shownSet = new Set(shown);
  return {
    run,
    counts: countOf(kids),
    children: await Promise.all(shown.map((k) => runTree(store, k, maxChildren))),
    hidden: countOf(kids.filter((k) => !shownSet.has(k))),
  };
}

/**
 * What each join in a parent's log (CHILDREN_DONE, BRANCH_DONE) says of its children, with
 * their ids, their status and cost from the run index, and the error the parent recorded.
 */
export async function childJoins(
  store: Store,
  runId: string,
  events: readonly StoredEnvelope[],
): Promise<ChildJoin[]> {
  const joins = events.filter(
    (e) => e.event.type === 'CHILDREN_DONE' || e.event.type === 'BRANCH_DONE',
  );
  if (joins.length === 0) return [];
  const byPart = new Map<string, RunSummary>();
  for (const r of await store.log.listRuns({ parent: runId }))
    byPart.set(`${r.parent?.step ?? ''}\n${JSON.stringify(r.parent?.part ?? null)}`, r);
  const outcome = (
    step: string,
    part: number | string | null,
    error: string | undefined,
  ): ChildRunOutcome => {
    const r = byPart.get(`${step}\n${JSON.stringify(part)}`);
    return {
      runId: r?.runId ?? childRunId(runId, step, part),
      part,
      status: r?.status ?? 'missing',
      costUsd: r?.costUsd ?? 0,
      ...(error !== undefined ? { error } : {}),
    };
  };
  return joins.map((e): ChildJoin => {
    const ev = e.event;
    if (ev.type === 'BRANCH_DONE')
      return {
        seq: e.seq,
        step: ev.step,
        kind: 'parallel',
        children: [outcome(ev.step, ev.branch, ev.ok ? undefined : ev.error)],
      };
    if (ev.type !== 'CHILDREN_DONE') throw new Error('unreachable: filtered to joins');
    const errors = new Map(ev.errors.map((x) => [x.index, x.message]));
    // A call has one child, without a part; a map one per item index.
    const isCall = ev.results.length === 1 && byPart.has(`${ev.step}\nnull`);
    return {
      seq: e.seq,
      step: ev.step,
      kind: isCall ? 'call' : 'map',
      children: ev.results.map((_, i) => outcome(ev.step, isCall ? null : i, errors.get(i))),
    };
  });
}
