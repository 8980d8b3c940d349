/**
 * The step-level view of a run's statechart: one box per step (and per parallel region), one
 * arrow per pair of steps that a transition joins. Guard sub-states (limits, calling, validate,
 * retry, backoff) and the edges into `parked`, `failed` and `killed` are folded into their step;
 * the page shows them when a step is opened. Derived from the recorded graph alone, so it works
 * for runs whose pipeline is not loaded. Pure.
 */
import type { GraphEdge, GraphNode, MachineGraph } from '../machines/graph.js';

/** What a step does, read from the shape of its states. */
export type StepKind =
  'llm' | 'effect' | 'step' | 'route' | 'parallel' | 'map' | 'call' | 'wait' | 'sleep' | 'agent';

/** A step of the chart. */
export interface StepInfo {
  /** The step's state id (`run.classify`): path counts and `current` use it as they are. */
  id: string;
  name: string;
  kind: StepKind;
  /** A parallel step's branch keys (region ids are `<id>.branches.<key>`). */
  regions: string[];
}

/** An arrow between two steps: the machine's transitions it stands for. */
export interface StepEdge {
  id: string;
  source: string;
  target: string;
  /** Ids of the graph's edges folded into this arrow (any taken: the arrow is taken). */
  edges: string[];
  /** A route's branch key, when the arrow is a route's choice. */
  branch: string | null;
}

/** The step-level chart and, as a {@link MachineGraph}, what the layout needs. */
export interface StepGraph {
  steps: StepInfo[];
  edges: StepEdge[];
  /** Steps, regions and `completed` as a graph (edges labelled with branch keys only). */
  graph: MachineGraph;
}

/** The states that end or suspend a run: drawn in the step view only when it is `completed`. */
const FOLDED = new Set(['failed', 'killed', 'parked']);

function branchOf(e: GraphEdge): string | null {
  if (e.event !== 'ROUTE' || e.guard === null) return null;
  const m = /"branch":"((?:[^"\\]|\\.)*)"/.exec(e.guard);
  return m?.[1] ?? null;
}

function kindOf(kids: GraphNode[], inner: GraphEdge[]): StepKind {
  const keys = new Set(kids.map((k) => k.key));
  if (kids.some((k) => k.key === 'branches' && k.type === 'parallel')) return 'parallel';
  if (keys.has('turn') && keys.has('tools')) return 'agent';
  if (keys.has('calling')) return 'llm';
  if (keys.has('running')) return 'effect';
  if (keys.has('sleeping')) return 'sleep';
  if (kids.some((k) => k.tags.includes('waiting')) || inner.some((e) => e.event === 'SIGNAL'))
    return 'wait';
  if (keys.has('waiting'))
    return inner.some((e) => e.actions.some((a) => a.includes('"single":true'))) ? 'call' : 'map';
  if (inner.some((e) => e.event === 'ROUTE')) return 'route';
  return 'step';
}

/**
 * Folds `graph` to its steps.
 * @example const { steps, edges } = stepGraph(prepared.graph);
 */
export function stepGraph(graph: MachineGraph): StepGraph {
  const root = graph.nodes.find((n) => n.parent === null);
  if (root === undefined) return { steps: [], edges: [], graph: { ...graph, edges: [] } };
  const byId = new Map(graph.nodes.map((n) => [n.id, n]));
  const top = graph.nodes.filter((n) => n.parent === root.id);
  /** The top-level state holding `id` (itself when it is one), or null for the root. */
  const topOf = (id: string): string | null => {
    let n = byId.get(id);
    while (n !== undefined && n.parent !== null && n.parent !== root.id) n = byId.get(n.parent);
    return n === undefined || n.parent === null ? null : n.id;
  };
  const below = new Map<string, GraphNode[]>();
  const outOf = new Map<string, GraphEdge[]>();
  for (const n of graph.nodes) {
    const t = topOf(n.id);
    if (t !== null && t !== n.id) below.set(t, [...(below.get(t) ?? []), n]);
  }
  for (const e of graph.edges) {
    const t = topOf(e.source);
    if (t !== null) outOf.set(t, [...(outOf.get(t) ?? []), e]);
  }

  const steps: StepInfo[] = [];
  for (const n of top) {
    if (n.type === 'final' || FOLDED.has(n.key) || n.tags.includes('parked')) continue;
    const kids = below.get(n.id) ?? [];
    const kind = kindOf(kids, outOf.get(n.id) ?? []);
    const branches = kids.find((k) => k.key === 'branches' && k.parent === n.id);
    const regions =
      kind === 'parallel' && branches !== undefined
        ? kids.filter((k) => k.parent === branches.id).map((k) => k.key)
        : [];
    steps.push({ id: n.id, name: n.key, kind, regions });
  }
  const completed = top.find((n) => n.type === 'final' && n.key === 'completed');
  const shown = new Set([...steps.map((s) => s.id), ...(completed ? [completed.id] : [])]);

  const pairs = new Map<string, StepEdge>();
  for (const e of graph.edges) {
    const from = topOf(e.source);
    if (from === null || !shown.has(from)) continue;
    for (const t of e.targets) {
      const to = topOf(t);
      if (to === null || to === from || !shown.has(to)) continue;
      const branch = branchOf(e);
      const id = `steps:${from}->${to}`;
      const edge = pairs.get(id) ?? { id, source: from, target: to, edges: [], branch };
      if (!edge.edges.includes(e.id)) edge.edges.push(e.id);
      edge.branch ??= branch;
      pairs.set(id, edge);
    }
  }
  const edges = [...pairs.values()];

  const nodes: GraphNode[] = [{ ...root }];
  for (const s of steps) {
    const real = byId.get(s.id) as GraphNode;
    nodes.push({ ...real, type: s.regions.length > 0 ? 'compound' : 'atomic' });
    for (const r of s.regions)
      nodes.push({
        id: `${s.id}.branches.${r}`,
        key: r,
        parent: s.id,
        type: 'atomic',
        initial: null,
        tags: [],
      });
  }
  if (completed !== undefined) nodes.push({ ...completed });
  return {
    steps,
    edges,
    graph: {
      id: graph.id,
      nodes,
      edges: edges.map((e) => ({
        id: e.id,
        source: e.source,
        targets: [e.target],
        event: e.branch ?? '',
        guard: null,
        actions: [],
      })),
    },
  };
}
