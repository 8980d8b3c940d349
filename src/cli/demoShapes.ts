/**
 * The demo's route and map: the router example on one message per branch (showing the branch
 * each took), then the summariser on a long document (showing the map's fan-out: the chunks,
 * their child runs, how many ran at once, their results in order, and the reduce). Lines are
 * indented so they read as parts of the demo, not as one-run result lines.
 */
import { DEFAULT_MAP_CONCURRENCY } from '../machines/constructs.js';
import type { StoredEnvelope } from '../machines/events.js';
import { childRunId } from '../runtime/children.js';
import type { Runtime } from '../runtime/driver.js';
import type { Prepared } from '../runtime/prepare.js';
import type { Store } from '../store/types.js';
import { out } from './context.js';
import { pathOfSteps, usd } from './format.js';
import { exitCodeFor } from './main.js';
import { DEMO_DOCUMENT, DEMO_MESSAGES } from './demoShapesData.js';

/** The router example's route and join steps. */
const ROUTE_STEP = 'handle';
const JOIN_STEP = 'reply';

const clip = (s: string, n: number): string => (s.length > n ? `${s.slice(0, n - 1)}…` : s);

/** Runs the router on each sample message; returns the worst exit code and the cost. */
export async function demoRouter(
  rt: Runtime,
  store: Store,
  router: Prepared,
  stamp: string,
): Promise<{ code: number; costUsd: number }> {
  out('');
  out(
    'route — examples/router.ts: classify → one of three branches (billing, bug, question) → reply',
  );
  let code = 0;
  let cost = 0;
  for (const m of DEMO_MESSAGES) {
    const id = `${m.id}-${stamp}`;
    const r = await rt.start(router, { input: { ...m, id }, runId: id });
    const events = await store.log.read(r.runId);
    const branch = routeOf(events);
    const taken = branchSteps(events);
    const reply = r.outputs.reply as { detail?: unknown } | undefined;
    out(`  ${m.id} "${clip(m.text, 48)}"`);
    out(
      `    → classify: ${branch ?? '?'} → branch ${branch ?? '?'} (${taken.join(' → ') || 'no steps'}) → reply: ${clip(String(reply?.detail ?? '-'), 70)}`,
    );
    out(`    ${r.runId}: ${r.status}, ${usd(r.costUsd)}`);
    cost += r.costUsd;
    code = Math.max(code, exitCodeFor(r.status));
  }
  return { code, costUsd: cost };
}

/** The branch a run's ROUTE event recorded. */
function routeOf(events: readonly StoredEnvelope[]): string | undefined {
  for (const e of events) if (e.event.type === 'ROUTE') return e.event.branch;
  return undefined;
}

/** The steps the run went through between the route and the join: the branch's own. */
function branchSteps(events: readonly StoredEnvelope[]): string[] {
  const path = pathOfSteps(events);
  const from = path.indexOf(ROUTE_STEP);
  const to = path.lastIndexOf(JOIN_STEP);
  return from < 0 || to < from ? [] : path.slice(from + 1, to);
}

/** Runs the summariser on the sample document; returns the exit code and the cost. */
export async function demoSummarise(
  rt: Runtime,
  store: Store,
  summarise: Prepared,
  stamp: string,
): Promise<{ code: number; costUsd: number }> {
  const mapStep = summarise.pipeline.steps.find((s) => s.kind === 'map');
  const concurrency = mapStep?.concurrency ?? DEFAULT_MAP_CONCURRENCY;
  out('');
  out(
    `map — examples/summarise.ts: split → map 'summaries' (a child run per chunk, ${concurrency} at a time) → reduce`,
  );
  const r = await rt.start(summarise, { input: DEMO_DOCUMENT, runId: `doc-${stamp}` });
  const chunks = (r.outputs.split ?? []) as Array<{ text: string }>;
  const ids = chunks.map((_, i) => childRunId(r.runId, 'summaries', i));
  const logs = await Promise.all(ids.map((id) => store.log.read(id)));
  out(
    `  "${DEMO_DOCUMENT.title}" (${DEMO_DOCUMENT.text.length} characters) split into ${chunks.length} chunks`,
  );
  out(
    `  fan-out: ${ids.length} child runs ${ids[0] ?? ''} … ${ids[ids.length - 1] ?? ''}, ${concurrency} at a time (at most ${peakOverlap(logs)} seen at once)`,
  );
  const summaries = (r.outputs.summaries ?? []) as Array<{ summary?: string }>;
  summaries.forEach((s, i) => {
    const child = logs[i]?.[logs[i].length - 1];
    out(
      `    #${i} ${child?.state.status ?? '?'} ${usd(child?.state.costUsd ?? 0)}  ${clip(s.summary ?? '', 80)}`,
    );
  });
  const reduced = r.outputs.reduce as { summary?: string; keyPoints?: string[] } | null;
  out(
    `  reduce: ${clip(reduced?.summary ?? '-', 100)} (${reduced?.keyPoints?.length ?? 0} key points)`,
  );
  out(`  ${r.runId}: ${r.status}, ${usd(r.costUsd)} (its children's calls included)`);
  return { code: exitCodeFor(r.status), costUsd: r.costUsd };
}

/**
 * The most child runs driven at the same time: each from its first event after `run.started`
 * (children are all recorded up front, then driven `concurrency` at a time) to its last.
 */
function peakOverlap(logs: readonly StoredEnvelope[][]): number {
  const edges = logs
    .filter((l) => l.length > 1)
    .flatMap((l) => [
      { at: l[1]?.at ?? 0, d: 1 },
      { at: l[l.length - 1]?.at ?? 0, d: -1 },
    ])
    // At the same instant an end comes first: runs that merely touch do not overlap.
    .sort((a, b) => a.at - b.at || a.d - b.d);
  let now = 0;
  let peak = 0;
  for (const e of edges) peak = Math.max(peak, (now += e.d));
  return peak;
}
