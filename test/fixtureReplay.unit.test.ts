/**
 * Recorded-log fixtures: real run logs checked into test/fixtures/runs/ must replay against
 * today's code; a log recorded with another machine is refused with both hashes named.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { MachineHashMismatchError, ReplayMismatchError } from '../src/errors.js';
import { StoredEnvelope } from '../src/machines/events.js';
import { foldLog } from '../src/machines/replay.js';
import { loadPipeline } from '../src/runtime/load.js';
import { prepare } from '../src/runtime/prepare.js';

const dir = new URL('./fixtures/runs/', import.meta.url);
const load = (name: string): StoredEnvelope[] =>
  readFileSync(new URL(name, dir), 'utf8')
    .trim()
    .split('\n')
    .map((l) => StoredEnvelope.parse(JSON.parse(l)));

describe('recorded-log fixtures', () => {
  const files = readdirSync(dir).filter((f) => f.endsWith('.jsonl'));

  it('has fixtures to replay', () => {
    expect(files.length).toBeGreaterThanOrEqual(2);
  });

  it.each(files)("%s replays against today's triage pipeline", async (file) => {
    const prepared = await loadPipeline('examples/triage.ts');
    const events = load(file);
    const last = events[events.length - 1] as StoredEnvelope;
    const folded = foldLog(prepared.machine, prepared.hash, last.runId, events);
    expect(folded.seq).toBe(last.seq);
    expect(folded.snapshot.value).toBe('completed');
    expect(folded.snapshot.context.costUsd).toBe(last.state.costUsd);
  });

  it('refuses a log whose machine hash differs, naming both hashes', async () => {
    const prepared = await loadPipeline('examples/triage.ts');
    const events = load('triage-skipped.jsonl');
    const first = events[0] as StoredEnvelope & { event: { machineHash: string } };
    const altered = [
      { ...first, event: { ...first.event, machineHash: 'deadbeefdeadbeef' } },
      ...events.slice(1),
    ];
    expect(() => foldLog(prepared.machine, prepared.hash, 'triage-skipped', altered)).toThrow(
      MachineHashMismatchError,
    );
    expect(() => foldLog(prepared.machine, prepared.hash, 'triage-skipped', altered)).toThrow(
      new RegExp(`deadbeefdeadbeef.*${prepared.hash}`),
    );
  });

  it('refuses the log after a step is renamed in the pipeline', async () => {
    const prepared = await loadPipeline('examples/triage.ts');
    const renamed = prepare({
      ...prepared.pipeline,
      steps: prepared.pipeline.steps.map((s) =>
        s.name === 'draft' ? { ...s, name: 'compose' } : s,
      ),
    });
    expect(renamed.hash).not.toBe(prepared.hash);
    const events = load('triage-reask-escalated.jsonl');
    expect(() => foldLog(renamed.machine, renamed.hash, 'triage-reask-escalated', events)).toThrow(
      `was recorded with machine ${prepared.hash} but the pipeline now compiles to ${renamed.hash}`,
    );
  });

  it('names the first seq whose recorded state no longer matches', async () => {
    const prepared = await loadPipeline('examples/triage.ts');
    const events = load('triage-reask-escalated.jsonl');
    const altered = events.map((e) =>
      e.seq === 4 ? { ...e, state: { ...e.state, value: { classify: 'backoff' } } } : e,
    );
    expect(() => foldLog(prepared.machine, prepared.hash, 'x', altered)).toThrow(
      ReplayMismatchError,
    );
    expect(() => foldLog(prepared.machine, prepared.hash, 'x', altered)).toThrow(
      /seq 4: after ATTEMPT the log recorded \{"classify":"backoff"\}/,
    );
  });
});
