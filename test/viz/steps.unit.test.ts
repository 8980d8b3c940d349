/**
 * The step-level fold of a statechart (steps.ts): one box per step, guard sub-states and the
 * parked / failed / killed states folded away, arrows standing for the transitions they fold.
 */
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { map, parallel, route } from '../../src/machines/constructs.js';
import { compilePipeline } from '../../src/machines/compile.js';
import { describeMachine } from '../../src/machines/graph.js';
import { definePipeline, step } from '../../src/machines/pipeline.js';
import { sleep, wait } from '../../src/machines/waits.js';
import { layoutStepChart } from '../../src/viz/stepChart.js';
import { stepGraph } from '../../src/viz/steps.js';
import { graph } from './fixtures.js';

const s = (name: string) => step({ name, run: () => name });
const shaped = describeMachine(
  compilePipeline(
    definePipeline({
      name: 'shaped',
      version: '1',
      input: z.unknown(),
      steps: [
        route({ name: 'pick', choose: () => 'a', branches: { a: [s('on-a')], b: [s('on-b')] } }),
        parallel({ name: 'both', branches: { x: [s('px')], y: [s('py')] } }),
        map({ name: 'each', over: () => [1], steps: [s('m')] }),
        wait({ name: 'ok', signal: 'approve', schema: z.object({ ok: z.boolean() }) }),
        sleep({ name: 'nap', forMs: 10 }),
      ],
    }),
  ),
);

describe('stepGraph', () => {
  it('folds a straight pipeline to its steps and one arrow per pair', () => {
    const g = stepGraph(graph);
    expect(g.steps.map((x) => [x.id, x.kind])).toEqual([
      ['run.classify', 'llm'],
      ['run.notify', 'effect'],
      ['run.route', 'step'],
    ]);
    expect(g.edges.map((e) => `${e.source}>${e.target}`)).toEqual([
      'run.classify>run.notify',
      'run.notify>run.route',
      'run.route>run.completed',
    ]);
    // Every folded arrow stands for real transitions between those two steps.
    const byId = new Map(graph.edges.map((e) => [e.id, e]));
    for (const e of g.edges)
      for (const id of e.edges) {
        const real = byId.get(id);
        expect(real?.source.startsWith(`${e.source}.`) || real?.source === e.source).toBe(true);
        expect(real?.targets).toContain(e.target);
      }
    // No sub-state, no parked / failed / killed box.
    expect(g.graph.nodes.map((n) => n.id)).toEqual([
      'run',
      'run.classify',
      'run.notify',
      'run.route',
      'run.completed',
    ]);
  });

  it('knows the constructs: route branches, parallel regions, map, wait and sleep', async () => {
    const g = stepGraph(shaped);
    expect(g.steps.map((x) => [x.name, x.kind, x.regions])).toEqual([
      ['pick', 'route', []],
      ['on-a', 'step', []],
      ['on-b', 'step', []],
      ['both', 'parallel', ['x', 'y']],
      ['each', 'map', []],
      ['ok', 'wait', []],
      ['nap', 'sleep', []],
    ]);
    expect(g.edges.filter((e) => e.branch !== null).map((e) => [e.target, e.branch])).toEqual([
      ['run.on-a', 'a'],
      ['run.on-b', 'b'],
    ]);
    const laid = await layoutStepChart(shaped);
    const region = laid.chart.nodes.find((n) => n.id === 'run.both.branches.x');
    const par = laid.chart.nodes.find((n) => n.id === 'run.both');
    expect(par?.compound).toBe(true);
    // A region is drawn inside its step.
    expect(region !== undefined && par !== undefined).toBe(true);
    if (region && par) {
      expect(region.x).toBeGreaterThanOrEqual(par.x);
      expect(region.x + region.width).toBeLessThanOrEqual(par.x + par.width);
    }
    expect(laid.chart.edges.find((e) => e.id === 'steps:run.pick->run.on-a')?.label).toBe('a');
  });
});
