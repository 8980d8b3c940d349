import { setup } from 'xstate';
import { describe, expect, it } from 'vitest';
import { describeMachine } from '../../src/machines/graph.js';
import { edgeLabel, layoutGraph, shortGuard, type Box } from '../../src/viz/layout.js';
import { graph } from './fixtures.js';

const inside = (inner: Box, outer: Box): boolean =>
  inner.x >= outer.x - 0.5 &&
  inner.y >= outer.y - 0.5 &&
  inner.x + inner.width <= outer.x + outer.width + 0.5 &&
  inner.y + inner.height <= outer.y + outer.height + 0.5;

describe('layoutGraph', () => {
  const laidOut = layoutGraph(graph);
  it('places every state and every transition of a compiled pipeline, always edges included', async () => {
    const chart = await laidOut;
    expect(chart.nodes.map((n) => n.id).sort()).toEqual(graph.nodes.map((n) => n.id).sort());
    expect(chart.edges.map((e) => e.id).sort()).toEqual(graph.edges.map((e) => e.id).sort());
    expect(graph.edges.filter((e) => e.event === 'always').length).toBeGreaterThan(5);
    for (const e of chart.edges) {
      expect(e.routes.length, e.id).toBeGreaterThan(0);
      for (const r of e.routes) expect(r.length, e.id).toBeGreaterThanOrEqual(2);
      expect(e.labelBox, e.id).not.toBeNull();
      expect(e.label).toContain(e.event);
    }
    expect(chart.width).toBeGreaterThan(0);
    expect(chart.height).toBeGreaterThan(0);
  });

  it('draws compound states as containers around their children (absolute coordinates)', async () => {
    const chart = await laidOut;
    const byId = new Map(chart.nodes.map((n) => [n.id, n]));
    for (const n of chart.nodes) {
      expect(n.width, n.id).toBeGreaterThan(0);
      if (n.parent === null) continue;
      const parent = byId.get(n.parent);
      expect(parent?.compound, n.id).toBe(true);
      expect(inside(n, parent as Box), `${n.id} inside ${n.parent}`).toBe(true);
    }
    expect(byId.get('run.classify')?.compound).toBe(true);
    expect(byId.get('run.classify.calling')?.compound).toBe(false);
  });

  it('routes a reversed (backward) edge from its source to its target', async () => {
    const chart = await laidOut;
    const byId = new Map(chart.nodes.map((n) => [n.id, n]));
    const timer = chart.edges.find((e) => e.id === 'run.classify.backoff:TIMER:0');
    const route = timer?.routes[0] ?? [];
    const near = (p: { x: number; y: number } | undefined, b: Box | undefined): boolean =>
      p !== undefined &&
      b !== undefined &&
      inside(
        { x: p.x, y: p.y, width: 0, height: 0 },
        { x: b.x - 2, y: b.y - 2, width: b.width + 4, height: b.height + 4 },
      );
    expect(near(route[0], byId.get('run.classify.backoff'))).toBe(true);
    expect(near(route[route.length - 1], byId.get('run.classify.ready'))).toBe(true);
  });

  it('lays out delayed and targetless transitions too', async () => {
    const m = setup({ actions: { ping: () => undefined } }).createMachine({
      id: 'm',
      initial: 'a',
      states: {
        a: { after: { 500: 'b' }, on: { PING: { actions: 'ping' } } },
        b: { type: 'final' },
      },
    });
    const g = describeMachine(m);
    const chart = await layoutGraph(g);
    expect(chart.edges.map((e) => e.label).sort()).toEqual(['PING', 'after 500ms']);
    expect(chart.edges.every((e) => e.routes.length > 0)).toBe(true);
  });
});

describe('edge labels', () => {
  it('shows the event and a short guard', () => {
    expect(edgeLabel({ event: 'ATTEMPT', guard: null })).toBe('ATTEMPT');
    expect(edgeLabel({ event: 'always', guard: 'outputValid' })).toBe('always [outputValid]');
    expect(edgeLabel({ event: 'after:1000', guard: null })).toBe('after 1000ms');
    expect(shortGuard('parkedIn({"step":"draft"})')).toBe('parkedIn(draft)');
    expect(shortGuard('canReask({"step":"a","maxValidationAttempts":3})')).toBe('canReask');
    expect(shortGuard(null)).toBeNull();
  });
});
