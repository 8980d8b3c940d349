/**
 * `plumbline runs`: the run index, a page at a time. Child runs (map items, parallel branches,
 * calls) are not rows of their own: each run says how many children it has and how they ended,
 * `--tree` nests them under their parent (a long map as a few rows and a count of the rest),
 * `--parent <runId>` pages through one run's children, and `--flat` lists every run as a row.
 * (The implementation, imported by runs.ts only when the verb runs: issue 14.)
 */
import type { Command } from 'commander';
import { childCounts, runTree, type ChildCounts, type RunNode } from '../client/children.js';
import { UsageError } from '../errors.js';
import type { RunStatus } from '../machines/events.js';
import { isRunStatus, RUN_STATUSES } from '../machines/runStatus.js';
import type { RunSummary, Store } from '../store/types.js';
import { globals, out, outJson, type GlobalOptions } from './options.js';
import { openReadStore } from './readStore.js';
import { TREE_CHILDREN } from './runs.js';
import { unconfirmedByRun } from './cost.js';
import { runRow } from './format.js';
import { strandedAmong } from './stranded.js';

/** How many runs `runs` lists unless told (`--limit`, `--all`). */
const RUNS_PAGE = 50;

/** The order statuses are counted in: the usual outcome first, trouble last. */
const STATUS_ORDER: readonly string[] = [
  'completed',
  'running',
  'waiting',
  'parked',
  'failed',
  'killed',
];

/** `18 completed, 2 failed`: the counts by status, in {@link STATUS_ORDER}. */
function statusList(c: ChildCounts): string[] {
  return Object.entries(c.byStatus)
    .filter(([, n]) => (n ?? 0) > 0)
    .sort(([a], [b]) => STATUS_ORDER.indexOf(a) - STATUS_ORDER.indexOf(b))
    .map(([s, n]) => `${String(n)} ${s}`);
}

/** `20 (18 completed, 2 failed)`, `20 completed`, or `-` without children. */
export function countsText(c: ChildCounts | undefined): string {
  if (c === undefined || c.total === 0) return '-';
  const parts = statusList(c);
  return parts.length === 1 ? (parts[0] as string) : `${c.total} (${parts.join(', ')})`;
}

/** One printed line: a run (at a depth in its tree), or the count of a run's unshown children. */
type Line =
  | { kind: 'run'; run: RunSummary; depth: number; counts: ChildCounts | undefined }
  | { kind: 'more'; parent: string; depth: number; hidden: ChildCounts };

/** A tree's lines, depth first: the run, its shown children, then what was left out. */
function linesOf(node: RunNode, depth: number, into: Line[]): Line[] {
  into.push({ kind: 'run', run: node.run, depth, counts: node.counts });
  for (const c of node.children) linesOf(c, depth + 1, into);
  if (node.hidden.total > 0)
    into.push({ kind: 'more', parent: node.run.runId, depth: depth + 1, hidden: node.hidden });
  return into;
}

interface RunsOptions {
  status?: string;
  pipeline?: string;
  json?: boolean;
  stranded?: boolean;
  olderThan?: number;
  limit?: number;
  after?: string;
  all?: boolean;
  tree?: boolean;
  children?: number;
  parent?: string;
  flat?: boolean;
  waiting?: boolean;
}

/** `runs --waiting`: each waiting run, what it waits for, since when and until when. */
async function listWaiting(g: GlobalOptions, limit: number, json: boolean): Promise<void> {
  const store = await openReadStore(g);
  try {
    const rows = await Promise.all(
      (await store.waits.waiting(limit)).map(async (w) => {
        const run = await store.log.getRun(w.runId);
        return {
          ...w,
          pipeline: run?.pipeline ?? null,
          step: run?.step ?? null,
          status: run?.status ?? null,
        };
      }),
    );
    if (rows.length === 0 && !json) out('no waiting runs');
    const now = Date.now();
    for (const w of rows) {
      const what =
        w.signal !== null
          ? `signal '${w.signal}'`
          : w.status === 'running'
            ? "its retry or its batch's next poll (let go)"
            : 'a time (sleep)';
      if (json) outJson(w);
      else
        out(
          `${w.runId}  ${w.pipeline ?? '?'}  step ${w.step ?? '?'}  waits for ${what} since ${new Date(w.since).toISOString()} (${Math.round((now - w.since) / 1000)} s)${w.wakeAt !== null ? `, until ${new Date(w.wakeAt).toISOString()}` : ''}`,
        );
    }
  } finally {
    await store.close();
  }
}

/** Refuses flags that contradict each other, saying which to drop. */
function checkFlags(o: RunsOptions): void {
  if (o.all === true && (o.limit !== undefined || o.after !== undefined))
    throw new UsageError('runs --all lists every run: leave out --limit and --after');
  if (o.status !== undefined && !isRunStatus(o.status))
    throw new UsageError(`--status ${o.status}: use one of ${RUN_STATUSES.join(', ')}`);
  if (o.flat === true && (o.tree === true || o.parent !== undefined))
    throw new UsageError('runs --flat lists children as rows: leave out --tree and --parent');
  if (o.children !== undefined && o.tree !== true)
    throw new UsageError('--children <n> says how many children --tree shows: add --tree');
}

/** Prints the lines as a table (children indented) or as one JSON object per line. */
async function print(store: Store, lines: readonly Line[], json: boolean): Promise<void> {
  const runs = lines.flatMap((l) => (l.kind === 'run' ? [l.run] : []));
  // A running run whose driver is gone says so: `stranded`, not `running`.
  const stranded = new Set((await strandedAmong(store, runs)).map((x) => x.run.runId));
  // The part of each run's cost that is unconfirmed (calls lost mid-flight, at their reservation).
  const { byRun } = await unconfirmedByRun(store, runs);
  const shown = (r: RunSummary): RunSummary & { stranded?: true; unconfirmedUsd: number } => ({
    ...(stranded.has(r.runId) ? { ...r, status: 'stranded' as never, stranded: true } : r),
    unconfirmedUsd: byRun.get(r.runId) ?? 0,
  });
  if (json) {
    for (const l of lines)
      outJson(
        l.kind === 'run'
          ? {
              ...shown(l.run),
              children: l.counts ?? { total: 0, byStatus: {} },
              ...(l.depth > 0 ? { depth: l.depth } : {}),
            }
          : { moreChildren: l.hidden, parent: l.parent, depth: l.depth },
      );
    return;
  }
  const indent = (depth: number): string => (depth === 0 ? '' : `${'  '.repeat(depth - 1)}└ `);
  const idWidth = Math.max(
    28,
    ...lines.map((l) => (l.kind === 'run' ? indent(l.depth).length + l.run.runId.length : 0)),
  );
  out(
    [
      'run'.padEnd(idWidth),
      'pipeline'.padEnd(14),
      'ver'.padEnd(6),
      'status'.padEnd(10),
      'cost'.padStart(11),
      'unconfirmed'.padStart(11),
      'seq'.padStart(5),
      'started'.padEnd(19),
      'ended'.padEnd(19),
      'children',
    ].join(' '),
  );
  for (const l of lines) {
    if (l.kind === 'more') {
      out(
        `${'  '.repeat(l.depth)}… ${l.hidden.total} more children: ${statusList(l.hidden).join(', ')} (plumbline runs --parent ${l.parent})`,
      );
      continue;
    }
    const r = shown(l.run);
    out(
      runRow(r, r.unconfirmedUsd, {
        id: `${indent(l.depth)}${r.runId}`,
        idWidth,
        children: countsText(l.counts),
      }),
    );
  }
}

/** The `runs` verb, imported only when it runs. */
export function runsAction() {
  return async (o: RunsOptions, cmd: Command) => {
    if (o.stranded) {
      const { listStranded } = await import('./operateVerbs.js');
      await listStranded(globals(cmd), o.olderThan, o.json === true);
      return;
    }
    if (o.waiting === true) {
      await listWaiting(globals(cmd), o.limit ?? RUNS_PAGE, o.json === true);
      return;
    }
    checkFlags(o);
    // Only reads: the store alone, without the runtime a full client brings (issue 14).
    const store = await openReadStore(globals(cmd));
    try {
      if (o.parent !== undefined && (await store.log.getRun(o.parent)) === undefined)
        throw new UsageError(`unknown run id '${o.parent}': list runs with \`plumbline runs\``);
      const limit = o.all === true ? undefined : (o.limit ?? RUNS_PAGE);
      // One more than the page says whether another page follows.
      const found = await store.log.listRuns({
        ...(o.status !== undefined ? { status: o.status as RunStatus } : {}),
        ...(o.pipeline !== undefined ? { pipeline: o.pipeline } : {}),
        ...(limit !== undefined ? { limit: limit + 1 } : {}),
        ...(o.after !== undefined ? { after: o.after } : {}),
        parent: o.parent ?? (o.flat === true ? undefined : null),
      });
      const page = limit !== undefined ? found.slice(0, limit) : found;
      let lines: Line[];
      if (o.tree === true) {
        const max = o.children ?? TREE_CHILDREN;
        const trees = await Promise.all(page.map((r) => runTree(store, r, max)));
        lines = trees.flatMap((t) => linesOf(t, 0, []));
      } else {
        const counts = await childCounts(
          store,
          page.map((r) => r.runId),
        );
        lines = page.map((run) => ({
          kind: 'run',
          run,
          depth: 0,
          counts: counts.get(run.runId),
        }));
      }
      await print(store, lines, o.json === true);
      const last = page[page.length - 1];
      if (found.length > page.length && last !== undefined)
        process.stderr.write(`more: --after ${last.runId}\n`);
    } finally {
      await store.close();
    }
  };
}
