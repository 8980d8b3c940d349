import { describe, expect, it } from 'vitest';
import { pathOf, pathSteps } from '../../src/viz/path.js';
import { ev, eventfulRun, foldEnvelopes, graph } from './fixtures.js';

const nodeIds = new Set(graph.nodes.map((n) => n.id));
const edgeIds = new Set(graph.edges.map((e) => e.id));

describe('pathOf on a compiled pipeline', () => {
  it('enters the initial states on run.started, with no edge taken', () => {
    const path = pathOf(graph, foldEnvelopes([]));
    expect([...path.visited]).toEqual([
      ['run.classify', 1],
      ['run.classify.ready', 1],
    ]);
    expect(path.taken.size).toBe(0);
    expect(path.current.sort()).toEqual(['run.classify', 'run.classify.ready']);
  });

  it('takes ready → limits on ATTEMPT, then limits → calling through the always edge', () => {
    const steps = pathSteps(graph, foldEnvelopes([ev.attempt('classify')]));
    expect(steps[1]).toEqual({
      seq: 2,
      type: 'ATTEMPT',
      entered: ['run.classify.limits', 'run.classify.calling'],
      taken: ['run.classify.ready:ATTEMPT:0', 'run.classify.limits:always:4'],
      maybe: [],
      current: ['run.classify.calling', 'run.classify'],
      explained: true,
    });
  });

  it('counts retries, re-asks and the whole way to completed', () => {
    const envs = foldEnvelopes(eventfulRun);
    const path = pathOf(graph, envs);
    expect(path.current).toEqual(['run.completed']);
    expect(path.visited.get('run.classify.ready')).toBe(3); // start, after TIMER, after the re-ask
    expect(path.visited.get('run.classify.calling')).toBe(3);
    expect(path.visited.get('run.classify.backoff')).toBe(1);
    expect(path.visited.get('run.classify')).toBe(1); // inner moves do not re-enter the step
    expect(path.taken.get('run.classify.ready:ATTEMPT:0')).toBe(3);
    expect(path.taken.get('run.classify.limits:always:4')).toBe(3);
    expect(path.taken.get('run.classify.calling:MODEL_ERROR:0')).toBe(1);
    expect(path.taken.get('run.classify.retry:always:0')).toBe(1);
    expect(path.taken.get('run.classify.backoff:TIMER:0')).toBe(1);
    expect(path.taken.get('run.classify.validate:always:1')).toBe(1); // canReask
    expect(path.taken.get('run.classify.validate:always:0')).toBe(1); // outputValid → notify
    expect(path.taken.get('run.notify.running:EFFECT_DONE:0')).toBe(1);
    expect(path.taken.get('run.route.ready:STEP_DONE:0')).toBe(1);
    expect(path.visited.has('run.failed')).toBe(false);
    for (const id of path.visited.keys()) expect(nodeIds).toContain(id);
    for (const id of path.taken.keys()) expect(edgeIds).toContain(id);
    expect(pathSteps(graph, envs).every((s) => s.explained)).toBe(true);
  });

  it('stops at untilSeq: visited and taken only up to that event, current as recorded there', () => {
    const envs = foldEnvelopes(eventfulRun);
    const at3 = pathOf(graph, envs, { untilSeq: 3 });
    expect(at3.current.sort()).toEqual(['run.classify', 'run.classify.backoff']);
    expect(envs[2]?.state.value).toEqual({ classify: 'backoff' });
    expect(at3.visited.has('run.notify')).toBe(false);
    expect(at3.taken.has('run.classify.backoff:TIMER:0')).toBe(false);
    expect(at3.taken.get('run.classify.ready:ATTEMPT:0')).toBe(1);
  });

  it('parks out of the step and resumes into it; which guard parked it stays a maybe', () => {
    const envs = foldEnvelopes([ev.attempt('classify', 1, 'open'), ev.resume()]);
    const steps = pathSteps(graph, envs);
    expect(envs[1]?.state.value).toBe('parked');
    // Four guarded edges lead from limits to parked: the graph alone cannot tell which one.
    expect(steps[1]?.taken).toEqual(['run.classify.ready:ATTEMPT:0']);
    expect(steps[1]?.maybe).toEqual([0, 1, 2, 3].map((i) => `run.classify.limits:always:${i}`));
    expect(steps[1]?.entered).toEqual(['run.classify.limits', 'run.parked']);
    expect(steps[2]?.taken).toEqual(['run.parked:RESUME:0']);
    expect(steps[2]?.entered).toEqual(['run.classify', 'run.classify.ready']);
    expect(pathOf(graph, envs).visited.get('run.classify')).toBe(2);
    // Given the exact edges (from the machine), they are used as they are.
    const exact = pathSteps(graph, envs, {
      edgesOf: (e) =>
        e.seq === 2 ? ['run.classify.ready:ATTEMPT:0', 'run.classify.limits:always:0'] : null,
    });
    expect(exact[1]).toMatchObject({
      taken: ['run.classify.ready:ATTEMPT:0', 'run.classify.limits:always:0'],
      maybe: [],
    });
  });

  it('ignores exact edges that do not lead to the recorded state', () => {
    const envs = foldEnvelopes([ev.attempt('classify')]);
    const steps = pathSteps(graph, envs, { edgesOf: () => ['run.classify.ready:SKIP:0'] });
    expect(steps[1]?.taken).toEqual([
      'run.classify.ready:ATTEMPT:0',
      'run.classify.limits:always:4',
    ]);
  });

  it('takes the root KILL edge from inside a step', () => {
    const path = pathOf(graph, foldEnvelopes([ev.attempt('classify'), ev.kill()]));
    expect(path.taken.get('run:KILL:0')).toBe(1);
    expect(path.current).toEqual(['run.killed']);
  });

  it('follows SKIP edges from one step to the next', () => {
    const envs = foldEnvelopes([ev.skip('classify'), ev.skip('notify'), ev.stepDone('route')]);
    const path = pathOf(graph, envs);
    expect([...path.taken.keys()]).toEqual([
      'run.classify.ready:SKIP:0',
      'run.notify.ready:SKIP:0',
      'run.route.ready:STEP_DONE:0',
    ]);
    expect(path.current).toEqual(['run.completed']);
  });

  it('prefers the edge of the recorded event when two edges lead to the same state', () => {
    // From route.ready both STEP_DONE and SKIP lead to completed.
    const envs = foldEnvelopes([ev.skip('classify'), ev.skip('notify'), ev.skip('route')]);
    expect(pathSteps(graph, envs)[3]?.taken).toEqual(['run.route.ready:SKIP:0']);
  });

  it('marks a move no edge explains, without inventing edges', () => {
    const envs = foldEnvelopes([ev.attempt('classify')]);
    const forged = [
      ...envs,
      { seq: 3, event: { type: 'STEP_DONE' }, state: { value: { route: 'ready' } } },
    ];
    const last = pathSteps(graph, forged)[2];
    expect(last).toMatchObject({
      explained: false,
      taken: [],
      entered: ['run.route', 'run.route.ready'],
    });
    expect(last?.current.sort()).toEqual(['run.route', 'run.route.ready']);
  });
});
