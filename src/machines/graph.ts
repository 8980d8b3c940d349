/**
 * The machine's graph: every state node and every transition, including `always` and delayed
 * ones (which `machine.toJSON()` omits). Recorded with each run, drawn by the visualizer, and
 * hashed to detect a pipeline that changed under a recorded run.
 */
import { createHash } from 'node:crypto';
import type { AnyStateMachine, AnyStateNode } from 'xstate';

/** A state of the chart. */
export interface GraphNode {
  /** Full id, e.g. `run.score.calling`. */
  id: string;
  key: string;
  parent: string | null;
  type: 'atomic' | 'compound' | 'parallel' | 'final' | 'history';
  initial: string | null;
  tags: string[];
}

/** A transition of the chart. */
export interface GraphEdge {
  /** Stable id: `source:event:index`. */
  id: string;
  source: string;
  /** Target state ids (empty for a targetless transition). */
  targets: string[];
  /** The event type, `always` for eventless transitions, `after:<delay>` for delayed ones. */
  event: string;
  guard: string | null;
  actions: string[];
}

/** The chart of a machine. */
export interface MachineGraph {
  id: string;
  nodes: GraphNode[];
  edges: GraphEdge[];
}

function describeGuard(g: unknown): string | null {
  if (g === undefined || g === null) return null;
  if (typeof g === 'string') return g;
  if (typeof g === 'function') return g.name || 'inline';
  const o = g as { type?: string; params?: unknown };
  if (o.type === undefined) return 'inline';
  return o.params === undefined ? o.type : `${o.type}(${JSON.stringify(o.params)})`;
}

function describeAction(a: unknown): string {
  if (typeof a === 'string') return a;
  if (typeof a === 'function') return (a as { type?: string }).type ?? (a.name || 'inline');
  const o = a as { type?: string; params?: unknown };
  return o.params === undefined
    ? (o.type ?? 'inline')
    : `${o.type ?? 'inline'}(${JSON.stringify(o.params)})`;
}

function edge(
  source: AnyStateNode,
  event: string,
  i: number,
  t: {
    target?: ReadonlyArray<AnyStateNode> | undefined;
    guard?: unknown;
    actions?: readonly unknown[] | undefined;
  },
): GraphEdge {
  return {
    id: `${source.id}:${event}:${i}`,
    source: source.id,
    targets: (t.target ?? []).map((n) => n.id),
    event,
    guard: describeGuard(t.guard),
    actions: (t.actions ?? []).map(describeAction),
  };
}

/** Walks every state node of `machine` and lists its states and transitions. */
export function describeMachine(machine: AnyStateMachine): MachineGraph {
  const nodes: GraphNode[] = [];
  const edges: GraphEdge[] = [];
  const visit = (node: AnyStateNode, parent: string | null): void => {
    const initial = node.type === 'compound' ? (node.initial?.target[0]?.key ?? null) : null;
    nodes.push({
      id: node.id,
      key: node.key,
      parent,
      type: node.type,
      initial,
      tags: [...node.tags],
    });
    for (const [event, defs] of node.transitions) {
      if (event.startsWith('xstate.after')) continue;
      defs.forEach((d, i) => edges.push(edge(node, event, i, d)));
    }
    (node.always ?? []).forEach((d, i) => edges.push(edge(node, 'always', i, d)));
    node.after.forEach((d, i) => edges.push(edge(node, `after:${String(d.delay)}`, i, d)));
    for (const child of Object.values(node.states)) visit(child, node.id);
  };
  visit(machine.root, null);
  return { id: machine.id, nodes, edges };
}

/** A short, stable hash of a machine's graph: same states and transitions, same hash. */
export function machineHash(graph: MachineGraph): string {
  return createHash('sha256').update(JSON.stringify(graph)).digest('hex').slice(0, 16);
}
