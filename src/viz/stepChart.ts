/**
 * Lays out the step-level chart ({@link stepGraph}) with the same ELK settings as the full
 * statechart, but with boxes tall enough for a second line (kind, cost, counts) and arrows
 * labelled only with a route's branch key, so a 4-step pipeline fits a laptop screen.
 */
import type { MachineGraph } from '../machines/graph.js';
import { layoutGraph, type ChartLayout } from './layout.js';
import { stepGraph, type StepEdge, type StepInfo } from './steps.js';

/** The step view of a machine, ready to draw and to paint with a run's path. */
export interface StepChart {
  chart: ChartLayout;
  steps: StepInfo[];
  edges: StepEdge[];
}

const CHAR_W = 7.8;

/**
 * Folds `graph` to its steps and lays them out.
 * @example const { chart, steps } = await layoutStepChart(prepared.graph);
 */
export async function layoutStepChart(graph: MachineGraph): Promise<StepChart> {
  const sg = stepGraph(graph);
  const regions = new Set(sg.steps.flatMap((s) => s.regions.map((r) => `${s.id}.branches.${r}`)));
  // Kinds whose second line is long (counts, turns and tools, the signal awaited).
  const wide = new Set(
    sg.steps
      .filter((s) => ['map', 'call', 'agent', 'wait', 'sleep'].includes(s.kind))
      .map((s) => s.id),
  );
  const chart = await layoutGraph(sg.graph, {
    leafSize: (n, label) => {
      if (regions.has(n.id))
        return { width: Math.max(96, Math.ceil(label.length * CHAR_W) + 36), height: 44 };
      if (n.type === 'final') return { width: 112, height: 40 };
      const min = wide.has(n.id) ? 210 : 150;
      return { width: Math.max(min, Math.ceil(label.length * CHAR_W) + 48), height: 54 };
    },
    edgeText: (e) => e.event,
    elk: {
      'elk.layered.spacing.nodeNodeBetweenLayers': '36',
      'elk.spacing.nodeNode': '24',
    },
  });
  return { chart, steps: sg.steps, edges: sg.edges };
}
