/**
 * A statechart graph with the queries the path needs: ancestors, the leaves of a recorded
 * state value, and what taking an edge does to a configuration (XState v5 semantics:
 * `reenter: false`, so an edge into the source's own descendants keeps the source active).
 */
import type { GraphEdge, GraphNode, MachineGraph } from '../machines/graph.js';

/** Indexes a {@link MachineGraph}. */
export class Chart {
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
    for (
      let n = this.nodes.get(id);
      n !== undefined;
      n = n.parent === null ? undefined : this.nodes.get(n.parent)
    ) {
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
        : [kids.find((k) => k.key === node.initial) ?? kids[0]].filter(
            (k): k is GraphNode => k !== undefined,
          );
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
      entered.push(
        ...above
          .slice(0, cut < 0 ? above.length : cut)
          .reverse()
          .filter((a) => !entered.includes(a)),
      );
      const sub = this.enter(t);
      entered.push(...sub.entered);
      reached.push(...sub.leaves);
    }
    return { leaves: [...kept, ...reached], entered };
  }
}
