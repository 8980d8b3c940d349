/**
 * Rebuilding from a saved snapshot plus the events after it equals a full fold, at every point
 * of a run (including an effect in flight), and the run then finishes as it would have.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { foldLog } from '../src/machines/replay.js';
import { loadPipeline } from '../src/runtime/load.js';
import { harness } from './helpers/harness.js';

describe('snapshots', () => {
  it('snapshot + tail == full fold at every seq, then the run completes', async () => {
    process.env.CRASHY_SINK = mkdtempSync(join(tmpdir(), 'plumbline-snap-'));
    await using h = await harness({
      script: (req) => ({
        kind: 'json',
        value: {
          label: String((req.body.messages as Array<{ content: string }>)[0]?.content).split(
            ' ',
          )[0],
          score: 3,
        },
      }),
    });
    const prepared = await loadPipeline('test/fixtures/pipelines/crashy.ts');
    for (let k = 2; k <= 14; k++) {
      const runId = `snap-${k}`;
      const ac = new AbortController();
      const rt = h.runtime({
        snapshotEvery: k,
        hooks: { afterAppend: (_r, seq) => seq === k && ac.abort() },
      });
      const stopped = await rt.start(prepared, { input: { id: runId }, runId, signal: ac.signal });
      expect(stopped.stopped, `k=${k}`).toBe('aborted');
      const saved = await h.store.log.loadSnapshot(runId);
      // An outcome and the decision after it are appended together: the snapshot may be one later.
      expect(saved?.seq).toBeGreaterThanOrEqual(k);
      expect(saved?.seq).toBeLessThanOrEqual(k + 1);
      const events = await h.events(runId);
      const full = foldLog(prepared.machine, prepared.hash, runId, events);
      const rebuilt = await h.runtime().rebuild(prepared, runId);
      expect(rebuilt.seq).toBe(full.seq);
      expect(rebuilt.snapshot.value).toEqual(full.snapshot.value);
      expect(rebuilt.snapshot.context).toEqual(full.snapshot.context);
      const done = await h.runtime().drive(prepared, runId);
      expect(done.status, `k=${k}`).toBe('completed');
      expect(Object.keys(done.outputs)).toHaveLength(8);
    }
  });
});
