/**
 * A crash in the middle of a backoff resumes the wait, not restarts it: the deadline is in the
 * log (MODEL_ERROR.retryAt) and a fresh runtime waits only for what is left of it.
 */
import { describe, expect, it } from 'vitest';
import { virtualClock } from '../src/runtime/clock.js';
import { loadPipeline } from '../src/runtime/load.js';
import { harness, ofType } from './helpers/harness.js';

describe('backoff across a crash', () => {
  it('re-arms the recorded deadline on resume', async () => {
    await using h = await harness({
      script: [
        { kind: 'status', status: 429, headers: { 'retry-after': '30' } },
        { kind: 'json', value: { n: 1 } },
      ],
    });
    const clock = virtualClock();
    const prepared = await loadPipeline('test/fixtures/pipelines/patient.ts');
    // The first process records the 429 and dies (here: stops) while waiting out its 30 s.
    const ac = new AbortController();
    const first = h.runtime({
      clock,
      hooks: { afterAppend: (_r, _s, type) => type === 'MODEL_ERROR' && ac.abort() },
    });
    const r1 = await first.start(prepared, { input: {}, runId: 'b-1', signal: ac.signal });
    expect(r1).toMatchObject({ status: 'running', stopped: 'aborted' });
    const err = ofType(await h.events('b-1'), 'MODEL_ERROR')[0];
    expect(err?.event.retryAt).toBe((err?.at ?? 0) + 30_000);
    // Ten seconds pass before another process picks the run up.
    await clock.sleep(10_000);
    const restartedAt = clock.now();
    const r2 = await h.runtime({ clock }).drive(prepared, 'b-1');
    expect(r2.status).toBe('completed');
    const timer = ofType(await h.events('b-1'), 'TIMER')[0];
    expect(timer?.event.at).toBe(err?.event.retryAt);
    expect((timer?.event.at ?? 0) - restartedAt).toBe(20_000);
    expect(h.fake.count).toBe(2);
  });
});
