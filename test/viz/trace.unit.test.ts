import { describe, expect, it } from 'vitest';
import { pathSteps } from '../../src/viz/path.js';
import { traceEdges } from '../../src/viz/trace.js';
import { ev, eventfulRun, foldEnvelopes, graph, machine } from './fixtures.js';

describe('traceEdges (the machine says which edges it took)', () => {
  it('agrees with the graph search wherever the search is unambiguous', () => {
    const logs = [
      eventfulRun,
      [ev.skip('classify'), ev.skip('notify'), ev.skip('route')],
      [ev.attempt('classify'), ev.kill()],
    ];
    for (const events of logs) {
      const envs = foldEnvelopes(events);
      const exact = traceEdges(machine, envs);
      expect(exact.size).toBe(envs.length - 1);
      for (const s of pathSteps(graph, envs).slice(1)) {
        expect(s.maybe).toEqual([]);
        expect(exact.get(s.seq), `seq ${s.seq} ${s.type}`).toEqual(s.taken);
      }
    }
  });

  it('names the guard that parked the run: breaker open, or over budget', () => {
    const breaker = foldEnvelopes([ev.attempt('classify', 1, 'open')]);
    expect(traceEdges(machine, breaker).get(2)).toEqual([
      'run.classify.ready:ATTEMPT:0',
      'run.classify.limits:always:0',
    ]);
    const budget = foldEnvelopes([ev.attempt('classify')], { budgetUsd: 0.0001 });
    expect(budget[1]?.state.value).toBe('parked');
    const exact = traceEdges(machine, budget);
    expect(exact.get(2)).toEqual(['run.classify.ready:ATTEMPT:0', 'run.classify.limits:always:3']);
    const steps = pathSteps(graph, budget, { edgesOf: (e) => exact.get(e.seq) });
    expect(steps[1]).toMatchObject({
      taken: ['run.classify.ready:ATTEMPT:0', 'run.classify.limits:always:3'],
      maybe: [],
    });
  });

  it('stops at the first envelope the machine does not reproduce', () => {
    const envs = foldEnvelopes([ev.attempt('classify'), ev.response('classify')]);
    const forged = envs.map((e) =>
      e.seq === 3 ? { ...e, state: { ...e.state, value: 'failed' } } : e,
    );
    const exact = traceEdges(machine, forged);
    expect([...exact.keys()]).toEqual([2]);
  });
});
