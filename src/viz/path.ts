/**
 * The path a run took through its chart, derived from the log alone: each envelope records the
 * state after it, so between two recorded states we search the graph for the transitions that
 * lead from one to the other — the edge of the envelope's event, then any `always` edges
 * through transient guard states (ATTEMPT: ready → limits, then limits → calling). Pure.
 */
import type { GraphEdge, GraphNode, MachineGraph } from '../machines/graph.js';

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
  /** Active states after the event (leaves and their ancestors, without the root). */
  current: string[];
  /** False when no chain of edges explains the recorded move (the graph does not match). */
  explained: boolean;
}

/** The whole path: how often each state was entered and each edge taken, and where the run is. */
export interface RunPath {
  visited: Map<string, number>;
  taken: Map<string, number>;
  current: string[];
}

/** Longest chain of transitions searched for one event (one event edge plus `always` edges). */
const MAX_CHAIN = 8;

class Chart {
  readonly nodes: Map<string, GraphNode>;
  readonly children = new Map<string, GraphNode[]>();
  readonly root: GraphNode | undefined;
  readonly eventEdges: GraphEdge[];
  readonly alwaysEdges: GraphEdge[];

  constructor(readonly graph: MachineGraph) {
    this.nodes = new Map(graph.nodes.map((n) => [n.id, n]));
    for (const n of graph.nodes) {
      if (n.parent === null) continue;
      const list = this.children.get(n.parent) ?? [];
      list.push(n);
      this.children.set(n.parent, list);
    }
    this.root = graph.nodes.find((n) => n.parent === null);
    this.alwaysEdges = graph.edges.filter((e) => e.event === 'always');
    this.eventEdges = graph.edges.filter((e) => e.event !== 'always');
  }

  ancestorsOrSelf(id: string): string[] {
    const out: string[] = [];
    for (let n = this.nodes.get(id); n !== undefined; n = n.parent === null ? undefined : this.nodes.get(n.parent)) {
      out.push(n.id);
    }
    return out;
  }

  isDescendant(id: string, of: string): boolean {
    return id !== of && this.ancestorsOrSelf(id).includes(of);
  }

  /** Leaves of a recorded XState state value (`'parked'`, `{ classify: 'calling' }`). */
  leavesOf(value: unknown, at: GraphNode | undefined = this.root): string[] {
    if (at === undefined) return [];
    const kids = this.children.get(at.id) ?? [];
    if (typeof value === 'string') {
      const child = kids.find((k) => k.key === value);
      return child === undefined ? [] : this.enter(child.id).leaves;
    }
    if (typeof value === 'object' && value !== null) {
      return Object.entries(value as Record<string, unknown>).flatMap(([k, v]) => {
        const child = kids.find((c) => c.key === k);
        return child === undefined ? [] : this.leavesOf(v, child);
      });
    }
    return [];
  }

  /** Entering `id`: the states entered below it (itself included) and the leaves reached. */
  enter(id: string): { entered: string[]; leaves: string[] } {
    const node = this.nodes.get(id);
    const kids = this.children.get(id) ?? [];
    if (node === undefined || kids.length === 0) return { entered: [id], leaves: [id] };
    const next =
      node.type === 'parallel'
        ? kids
        : [kids.find((k) => k.key === node.initial) ?? kids[0]].filter((k): k is GraphNode => k !== undefined);
    const entered = [id];
    const leaves: string[] = [];
    for (const k of next) {
      const sub = this.enter(k.id);
      entered.push(...sub.entered);
      leaves.push(...sub.leaves);
    }
    return { entered, leaves };
  }

  /** States active in a configuration (leaves and ancestors). */
  active(leaves: readonly string[]): Set<string> {
    return new Set(leaves.flatMap((l) => this.ancestorsOrSelf(l)));
  }

  /** Takes `edge` from `leaves`: the leaves after it and the states it entered. */
  take(leaves: readonly string[], edge: GraphEdge): { leaves: string[]; entered: string[] } {
    const targets = edge.targets.filter((t) => this.nodes.has(t));
    if (targets.length === 0) return { leaves: [...leaves], entered: [] };
    // XState v5 default (reenter: false): targets inside the source keep the source active.
    const domain = targets.every((t) => this.isDescendant(t, edge.source))
      ? edge.source
      : (this.ancestorsOrSelf(edge.source)
          .slice(1)
          .find((a) => targets.every((t) => this.isDescendant(t, a))) ?? this.root?.id);
    const kept = leaves.filter((l) => domain === undefined || !this.isDescendant(l, domain));
    const entered: string[] = [];
    const reached: string[] = [];
    for (const t of targets) {
      const above = this.ancestorsOrSelf(t).slice(1);
      const cut = domain === undefined ? above.length : above.indexOf(domain);
      entered.push(...above.slice(0, cut < 0 ? above.length : cut).reverse().filter((a) => !entered.includes(a)));
      const sub = this.enter(t);
      entered.push(...sub.entered);
      reached.push(...sub.leaves);
    }
    return { leaves: [...kept, ...reached], entered };
  }
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x) => b.includes(x));
}

function matches(edge: GraphEdge, type: string): boolean {
  if (edge.event === type || edge.event === '*') return true;
  if (edge.event.endsWith('.*') && type.startsWith(edge.event.slice(0, -1))) return true;
  // XState's delayed events are `xstate.after.<delay>.<source id>`.
  return edge.event.startsWith('after:') && type === `xstate.after.${edge.event.slice(6)}.${edge.source}`;
}

interface Chain {
  leaves: string[];
  taken: string[];
  entered: string[];
}

/** Shortest chain: `first` edges (or none when `first` is null), then `always` edges, to `goal`. */
function search(chart: Chart, from: readonly string[], goal: readonly string[], first: GraphEdge[] | null): Chain | null {
  let frontier: Chain[] = [];
  const start: Chain = { leaves: [...from], taken: [], entered: [] };
  if (first === null) {
    if (sameSet(start.leaves, goal)) return start;
    frontier = [start];
  } else {
    const active = chart.active(from);
    for (const e of first) {
      if (!active.has(e.source)) continue;
      const r = chart.take(from, e);
      const c = { leaves: r.leaves, taken: [e.id], entered: r.entered };
      if (sameSet(c.leaves, goal)) return c;
      frontier.push(c);
    }
  }
  for (let depth = 1; depth < MAX_CHAIN && frontier.length > 0; depth++) {
    const next: Chain[] = [];
    for (const c of frontier) {
      const active = chart.active(c.leaves);
      for (const e of chart.alwaysEdges) {
        if (!active.has(e.source) || c.taken.includes(e.id)) continue;
        const r = chart.take(c.leaves, e);
        const n = { leaves: r.leaves, taken: [...c.taken, e.id], entered: [...c.entered, ...r.entered] };
        if (sameSet(n.leaves, goal)) return n;
        next.push(n);
      }
    }
    frontier = next;
  }
  return null;
}

/**
 * What each envelope did: the edges taken and states entered between consecutive recorded
 * states. The first envelope (`run.started`) enters the initial states.
 */
export function pathSteps(graph: MachineGraph, envelopes: readonly PathEnvelope[]): PathStep[] {
  const chart = new Chart(graph);
  const rootId = chart.root?.id;
  const withoutRoot = (ids: Iterable<string>): string[] => [...ids].filter((id) => id !== rootId);
  const steps: PathStep[] = [];
  let leaves: string[] | null = null;
  for (const env of envelopes) {
    const goal = chart.leavesOf(env.state.value);
    let chain: Chain | null;
    if (leaves === null) {
      const init = rootId === undefined ? { entered: [], leaves: [] } : chart.enter(rootId);
      const c = search(chart, init.leaves, goal, null);
      chain = c === null ? null : { ...c, entered: [...init.entered, ...c.entered] };
    } else {
      const type = env.event.type;
      const exact = chart.eventEdges.filter((e) => matches(e, type));
      chain =
        search(chart, leaves, goal, exact) ??
        search(chart, leaves, goal, chart.eventEdges.filter((e) => !exact.includes(e)));
    }
    const current = chart.active(goal);
    let explained = chain !== null;
    if (chain === null) {
      // Nothing in the graph explains the move: show where the run went, without edges.
      const before = leaves === null ? new Set<string>() : chart.active(leaves);
      chain = { leaves: goal, taken: [], entered: [...current].filter((id) => !before.has(id)).reverse() };
      explained = false;
    }
    steps.push({
      seq: env.seq,
      type: env.event.type,
      entered: withoutRoot(chain.entered),
      taken: chain.taken,
      current: withoutRoot(current),
      explained,
    });
    leaves = goal;
  }
  return steps;
}

/** Adds up path steps (up to `untilSeq`, inclusive, when given). */
export function summarizePath(steps: readonly PathStep[], untilSeq?: number): RunPath {
  const visited = new Map<string, number>();
  const taken = new Map<string, number>();
  let current: string[] = [];
  for (const s of steps) {
    if (untilSeq !== undefined && s.seq > untilSeq) break;
    for (const id of s.entered) visited.set(id, (visited.get(id) ?? 0) + 1);
    for (const id of s.taken) taken.set(id, (taken.get(id) ?? 0) + 1);
    current = s.current;
  }
  return { visited, taken, current };
}

/**
 * The path a run took: states entered (with counts), edges taken (with counts), and the active
 * states after the last envelope (or after `untilSeq`).
 * @example const { visited, taken, current } = pathOf(started.definition, await log.read(runId));
 */
export function pathOf(graph: MachineGraph, envelopes: readonly PathEnvelope[], options: { untilSeq?: number } = {}): RunPath {
  return summarizePath(pathSteps(graph, envelopes), options.untilSeq);
}
