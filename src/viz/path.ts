/**
 * The path a run took through its chart, derived from the log alone: each envelope records the
 * state after it, so between two recorded states we search the graph for the transitions that
 * lead from one to the other — the edge of the envelope's event, then any `always` edges
 * through transient guard states (ATTEMPT: ready → limits, then limits → calling). Pure.
 *
 * Guards are not evaluated (the graph has no code), so when several chains of the same length
 * reach the recorded state — `limits` parks through four guarded edges — the edges they share
 * are `taken` and the others are `maybe`. A caller that has the machine can pass the exact
 * edges (`edgesOf`, see `trace.ts`).
 */
import type { GraphEdge, MachineGraph } from '../machines/graph.js';
import { Chart } from './chart.js';

/** The smallest envelope shape the path needs (a stored envelope fits). */
export interface PathEnvelope {
  seq: number;
  event: { type: string };
  state: { value: unknown };
}

/** What one envelope did to the chart. */
export interface PathStep {
  seq: number;
  type: string;
  /** States entered by this event (in order, without the root). */
  entered: string[];
  /** Edges taken by this event, in order (the event's edge, then `always` ones). */
  taken: string[];
  /** Edges one of which was taken, when guards alone decided between them. */
  maybe: string[];
  /** Active states after the event (leaves and their ancestors, without the root). */
  current: string[];
  /** False when no chain of edges explains the recorded move (the graph does not match). */
  explained: boolean;
}

/** The whole path: how often each state was entered and each edge taken, and where the run is. */
export interface RunPath {
  visited: Map<string, number>;
  taken: Map<string, number>;
  /** Edges possibly taken (see {@link PathStep.maybe}). */
  maybe: Map<string, number>;
  current: string[];
}

/** Options of {@link pathSteps}. */
export interface PathOptions {
  /** The exact edges an envelope took, when known (from the machine); otherwise they are searched. */
  edgesOf?: (env: PathEnvelope) => readonly string[] | null | undefined;
}

/** Longest chain searched for one event (one event edge plus `always` edges). */
const MAX_CHAIN = 8;

interface Chain {
  leaves: string[];
  taken: string[];
  entered: string[];
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x) => b.includes(x));
}

function matches(edge: GraphEdge, type: string): boolean {
  if (edge.event === type || edge.event === '*') return true;
  if (edge.event.endsWith('.*') && type.startsWith(edge.event.slice(0, -1))) return true;
  // XState's delayed events are `xstate.after.<delay>.<source id>`.
  return (
    edge.event.startsWith('after:') && type === `xstate.after.${edge.event.slice(6)}.${edge.source}`
  );
}

/** Every shortest chain: one of `first` (none when null), then `always` edges, reaching `goal`. */
function search(
  chart: Chart,
  from: readonly string[],
  goal: readonly string[],
  first: GraphEdge[] | null,
): Chain[] {
  let frontier: Chain[] = [];
  const start: Chain = { leaves: [...from], taken: [], entered: [] };
  if (first === null) {
    if (sameSet(start.leaves, goal)) return [start];
    frontier = [start];
  } else {
    const active = chart.active(from);
    for (const e of first) {
      if (!active.has(e.source)) continue;
      const r = chart.take(from, e);
      frontier.push({ leaves: r.leaves, taken: [e.id], entered: r.entered });
    }
    const found = frontier.filter((c) => sameSet(c.leaves, goal));
    if (found.length > 0) return found;
  }
  for (let depth = 1; depth < MAX_CHAIN && frontier.length > 0; depth++) {
    const next: Chain[] = [];
    for (const c of frontier) {
      const active = chart.active(c.leaves);
      for (const e of chart.alwaysEdges) {
        if (!active.has(e.source) || c.taken.includes(e.id)) continue;
        const r = chart.take(c.leaves, e);
        next.push({
          leaves: r.leaves,
          taken: [...c.taken, e.id],
          entered: [...c.entered, ...r.entered],
        });
      }
    }
    const found = next.filter((c) => sameSet(c.leaves, goal));
    if (found.length > 0) return found;
    frontier = next;
  }
  return [];
}

/** Takes the given edges in order; null when one does not apply or they miss `goal`. */
function follow(
  chart: Chart,
  from: readonly string[],
  goal: readonly string[],
  ids: readonly string[],
): Chain | null {
  const byId = new Map(chart.graph.edges.map((e) => [e.id, e]));
  let c: Chain = { leaves: [...from], taken: [], entered: [] };
  for (const id of ids) {
    const e = byId.get(id);
    if (e === undefined || !chart.active(c.leaves).has(e.source)) return null;
    const r = chart.take(c.leaves, e);
    c = { leaves: r.leaves, taken: [...c.taken, id], entered: [...c.entered, ...r.entered] };
  }
  return sameSet(c.leaves, goal) ? c : null;
}

/** Tied chains as one: the edges and states they all share, and the edges only some take. */
function merge(chains: Chain[]): { chain: Chain; maybe: string[] } | null {
  const [first] = chains;
  if (first === undefined) return null;
  const all = (id: string, pick: (c: Chain) => string[]): boolean =>
    chains.every((c) => pick(c).includes(id));
  const taken = first.taken.filter((id) => all(id, (c) => c.taken));
  const maybe = [...new Set(chains.flatMap((c) => c.taken))].filter((id) => !taken.includes(id));
  return {
    chain: {
      leaves: first.leaves,
      taken,
      entered: first.entered.filter((id) => all(id, (c) => c.entered)),
    },
    maybe,
  };
}

/**
 * What each envelope did: the edges taken and states entered between consecutive recorded
 * states. The first envelope (`run.started`) enters the initial states.
 */
export function pathSteps(
  graph: MachineGraph,
  envelopes: readonly PathEnvelope[],
  options: PathOptions = {},
): PathStep[] {
  const chart = new Chart(graph);
  const rootId = chart.root?.id;
  const withoutRoot = (ids: Iterable<string>): string[] => [...ids].filter((id) => id !== rootId);
  const steps: PathStep[] = [];
  let leaves: string[] | null = null;
  for (const env of envelopes) {
    const goal = chart.leavesOf(env.state.value);
    let found: { chain: Chain; maybe: string[] } | null;
    if (leaves === null) {
      const init = rootId === undefined ? { entered: [], leaves: [] } : chart.enter(rootId);
      found = merge(search(chart, init.leaves, goal, null));
      if (found !== null) found.chain.entered = [...init.entered, ...found.chain.entered];
    } else {
      const known = options.edgesOf?.(env);
      const exact =
        known === null || known === undefined ? null : follow(chart, leaves, goal, known);
      const type = env.event.type;
      const named = chart.eventEdges.filter((e) => matches(e, type));
      found =
        (exact === null ? null : { chain: exact, maybe: [] }) ??
        merge(search(chart, leaves, goal, named)) ??
        merge(
          search(
            chart,
            leaves,
            goal,
            chart.eventEdges.filter((e) => !named.includes(e)),
          ),
        );
    }
    const current = chart.active(goal);
    if (found === null) {
      // Nothing in the graph explains the move: show where the run went, without edges.
      const before = leaves === null ? new Set<string>() : chart.active(leaves);
      const entered = [...current].filter((id) => !before.has(id)).reverse();
      steps.push({
        seq: env.seq,
        type: env.event.type,
        entered: withoutRoot(entered),
        taken: [],
        maybe: [],
        current: withoutRoot(current),
        explained: false,
      });
    } else {
      const { chain, maybe } = found;
      steps.push({
        seq: env.seq,
        type: env.event.type,
        entered: withoutRoot(chain.entered),
        taken: chain.taken,
        maybe,
        current: withoutRoot(current),
        explained: true,
      });
    }
    leaves = goal;
  }
  return steps;
}

/** Adds up path steps (up to `untilSeq`, inclusive, when given). */
export function summarizePath(steps: readonly PathStep[], untilSeq?: number): RunPath {
  const visited = new Map<string, number>();
  const taken = new Map<string, number>();
  const maybe = new Map<string, number>();
  let current: string[] = [];
  for (const s of steps) {
    if (untilSeq !== undefined && s.seq > untilSeq) break;
    for (const id of s.entered) visited.set(id, (visited.get(id) ?? 0) + 1);
    for (const id of s.taken) taken.set(id, (taken.get(id) ?? 0) + 1);
    for (const id of s.maybe) maybe.set(id, (maybe.get(id) ?? 0) + 1);
    current = s.current;
  }
  return { visited, taken, maybe, current };
}

/**
 * The path a run took: states entered (with counts), edges taken (with counts), and the active
 * states after the last envelope (or after `untilSeq`).
 * @example const { visited, taken, current } = pathOf(started.definition, await log.read(runId));
 */
export function pathOf(
  graph: MachineGraph,
  envelopes: readonly PathEnvelope[],
  options: PathOptions & { untilSeq?: number } = {},
): RunPath {
  return summarizePath(pathSteps(graph, envelopes, options), options.untilSeq);
}
