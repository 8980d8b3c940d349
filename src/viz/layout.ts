/**
 * Lays out a run's statechart with elkjs (`layered`, hierarchy included), server-side, so the
 * page only draws boxes and paths. Every state and every transition — `always` and delayed
 * ones too — is placed; coordinates are absolute (ELK's `json.*Coords: ROOT`).
 */
import * as elkjs from 'elkjs/lib/elk.bundled.js';
import type { ElkExtendedEdge, ElkLabel, ElkNode } from 'elkjs/lib/elk.bundled.js';
import type { GraphEdge, GraphNode, MachineGraph } from '../machines/graph.js';

/** A point of an edge route. */
export interface Point {
  x: number;
  y: number;
}

/** A box in chart coordinates (top-left origin). */
export interface Box {
  x: number;
  y: number;
  width: number;
  height: number;
}

/** A laid-out state: atomic states are boxes, compound ones containers around their children. */
export interface LaidOutNode extends Box {
  id: string;
  key: string;
  parent: string | null;
  type: GraphNode['type'];
  /** True when the state has children (drawn as a container). */
  compound: boolean;
  /** 0 for the root. */
  depth: number;
  /** The label drawn in the box. */
  label: string;
}

/** A laid-out transition: its route as a list of polylines and its label box. */
export interface LaidOutEdge {
  id: string;
  source: string;
  targets: string[];
  event: string;
  guard: string | null;
  /** `event [guard]`, guard shortened; the full guard is in `guard`. */
  label: string;
  /** One polyline per ELK section: start, bend points, end. */
  routes: Point[][];
  labelBox: Box | null;
}

/** The chart of a machine, ready to draw. */
export interface ChartLayout {
  width: number;
  height: number;
  nodes: LaidOutNode[];
  edges: LaidOutEdge[];
}

/** Options of {@link layoutGraph}. */
export interface LayoutOptions {
  /**
   * ELK direction (default `RIGHT`: steps read left to right; edge labels sit between layers,
   * so `DOWN` is narrower per step but staircases the steps down a much taller chart).
   */
  direction?: 'RIGHT' | 'DOWN';
  /** Extra ELK layout options for the root (they win over the defaults). */
  elk?: Record<string, string>;
  /** A leaf's box size (default: one line of its label); the step view leaves room for two. */
  leafSize?: (node: GraphNode, label: string) => { width: number; height: number };
  /** An edge's label (default {@link edgeLabel}); `''` draws the edge without one. */
  edgeText?: (edge: GraphEdge) => string;
}

const CHAR_W = 7.4;
const LABEL_CHAR_W = 6.3;
const LEAF_H = 34;
const EDGE_LABEL_H = 16;

/** A guard as shown on an edge: its type, plus the value of a single parameter (`parkedIn(draft)`). */
export function shortGuard(guard: string | null): string | null {
  if (guard === null) return null;
  const m = /^([^(]+)\((.*)\)$/s.exec(guard);
  if (m === null) return guard;
  const [, type = guard, rawParams = ''] = m;
  try {
    const params = JSON.parse(rawParams) as unknown;
    if (typeof params === 'object' && params !== null && !Array.isArray(params)) {
      const values = Object.values(params);
      if (values.length === 1 && ['string', 'number', 'boolean'].includes(typeof values[0])) {
        return `${type}(${String(values[0])})`;
      }
    }
  } catch {
    // Not JSON: show the type alone.
  }
  return type;
}

/** The label of an edge: the event (`always`, `after 500ms`, or its type) and its guard. */
export function edgeLabel(edge: Pick<GraphEdge, 'event' | 'guard'>): string {
  const event = edge.event.startsWith('after:') ? `after ${edge.event.slice(6)}ms` : edge.event;
  const guard = shortGuard(edge.guard);
  return guard === null ? event : `${event} [${guard}]`;
}

let instance: InstanceType<typeof elkjs.default.default> | undefined;
function elk(): InstanceType<typeof elkjs.default.default> {
  // elkjs is CommonJS: Node's `default` is `module.exports`, whose `.default` is the constructor too.
  instance ??= new elkjs.default.default();
  return instance;
}

function depthOf(nodes: Map<string, GraphNode>, id: string): number {
  let d = 0;
  for (let n = nodes.get(id); n?.parent != null; n = nodes.get(n.parent)) d++;
  return d;
}

/**
 * Lays out `graph`: every node and edge of the graph appears once in the result.
 * @example const chart = await layoutGraph(describeMachine(machine));
 */
export async function layoutGraph(
  graph: MachineGraph,
  options: LayoutOptions = {},
): Promise<ChartLayout> {
  const byId = new Map(graph.nodes.map((n) => [n.id, n]));
  const children = new Map<string, GraphNode[]>();
  for (const n of graph.nodes) {
    if (n.parent === null) continue;
    const list = children.get(n.parent) ?? [];
    list.push(n);
    children.set(n.parent, list);
  }
  const labelOf = (n: GraphNode): string => (n.parent === null ? graph.id : n.key);
  const toElk = (n: GraphNode): ElkNode => {
    const kids = children.get(n.id) ?? [];
    const label = labelOf(n);
    if (kids.length === 0) {
      return {
        id: n.id,
        ...(options.leafSize?.(n, label) ?? {
          width: Math.max(86, Math.ceil(label.length * CHAR_W) + 40),
          height: LEAF_H,
        }),
      };
    }
    return {
      id: n.id,
      children: kids.map(toElk),
      layoutOptions: { 'elk.padding': '[top=34,left=14,bottom=14,right=14]' },
    };
  };
  const roots = graph.nodes.filter((n) => n.parent === null);
  // Edges back to an earlier state (a retry, a re-ask, RESUME) are given to ELK reversed, so
  // layers follow the states' order in the definition (ready → limits → calling → validate)
  // rather than whatever ELK's cycle breaker picks; their routes are turned back below.
  const order = new Map(graph.nodes.map((n, i) => [n.id, i]));
  const reversed = new Set<string>();
  const textOf = options.edgeText ?? edgeLabel;
  const edges: ElkExtendedEdge[] = graph.edges.map((e) => {
    const targets = e.targets.filter((t) => byId.has(t));
    const [only] = targets;
    const back =
      targets.length === 1 &&
      only !== undefined &&
      (order.get(only) ?? 0) < (order.get(e.source) ?? 0);
    const text = textOf(e);
    const labels: ElkLabel[] =
      text === ''
        ? []
        : [
            {
              id: `${e.id}#label`,
              text,
              width: Math.ceil(text.length * LABEL_CHAR_W) + 8,
              height: EDGE_LABEL_H,
            },
          ];
    if (back) {
      reversed.add(e.id);
      return { id: e.id, sources: targets, targets: [e.source], labels };
    }
    // A targetless transition stays in its state: drawn as a self-loop.
    return {
      id: e.id,
      sources: [e.source],
      targets: targets.length > 0 ? targets : [e.source],
      labels,
    };
  });
  // With INCLUDE_CHILDREN each compound state is its own layered graph that reads its own
  // spacing options: give every container the same ones.
  const shared: Record<string, string> = {
    'elk.algorithm': 'layered',
    'elk.direction': options.direction ?? 'RIGHT',
    'elk.hierarchyHandling': 'INCLUDE_CHILDREN',
    'elk.edgeRouting': 'ORTHOGONAL',
    'elk.layered.spacing.nodeNodeBetweenLayers': '30',
    'elk.layered.spacing.edgeNodeBetweenLayers': '10',
    'elk.layered.spacing.edgeEdgeBetweenLayers': '7',
    'elk.spacing.nodeNode': '20',
    'elk.spacing.edgeNode': '12',
    'elk.spacing.edgeEdge': '7',
    'elk.spacing.edgeLabel': '2',
    'elk.layered.nodePlacement.strategy': 'LINEAR_SEGMENTS',
    ...options.elk,
  };
  const withShared = (n: ElkNode): ElkNode =>
    n.children === undefined
      ? n
      : {
          ...n,
          layoutOptions: { ...shared, ...n.layoutOptions },
          children: n.children.map(withShared),
        };
  const elkGraph: ElkNode = {
    id: '__chart__',
    layoutOptions: {
      ...shared,
      'elk.json.shapeCoords': 'ROOT',
      'elk.json.edgeCoords': 'ROOT',
      'elk.padding': '[top=8,left=8,bottom=8,right=8]',
    },
    children: roots.map(toElk).map(withShared),
    edges,
  };
  const out = await elk().layout(elkGraph);

  const nodes: LaidOutNode[] = [];
  const visit = (n: ElkNode): void => {
    const g = byId.get(n.id);
    if (g !== undefined) {
      nodes.push({
        id: g.id,
        key: g.key,
        parent: g.parent,
        type: g.type,
        compound: (children.get(g.id) ?? []).length > 0,
        depth: depthOf(byId, g.id),
        label: labelOf(g),
        x: n.x ?? 0,
        y: n.y ?? 0,
        width: n.width ?? 0,
        height: n.height ?? 0,
      });
    }
    for (const c of n.children ?? []) visit(c);
  };
  visit(out);

  const laidEdges = new Map<string, ElkExtendedEdge>();
  const collect = (n: ElkNode): void => {
    for (const e of n.edges ?? []) laidEdges.set(e.id, e);
    for (const c of n.children ?? []) collect(c);
  };
  collect(out);
  const edgesOut: LaidOutEdge[] = graph.edges.map((e) => {
    const laid = laidEdges.get(e.id);
    let routes = (laid?.sections ?? []).map((s) => [
      s.startPoint,
      ...(s.bendPoints ?? []),
      s.endPoint,
    ]);
    if (reversed.has(e.id)) routes = routes.map((r) => r.reverse()).reverse();
    const l = laid?.labels?.[0];
    return {
      id: e.id,
      source: e.source,
      targets: e.targets,
      event: e.event,
      guard: e.guard,
      label: textOf(e),
      routes,
      labelBox:
        l === undefined
          ? null
          : { x: l.x ?? 0, y: l.y ?? 0, width: l.width ?? 0, height: l.height ?? 0 },
    };
  });
  return { width: out.width ?? 0, height: out.height ?? 0, nodes, edges: edgesOut };
}
