/**
 * Crash test of the support-agent example (examples/supportAgent.ts): a child process runs it
 * from the compiled package (test/fixtures/supportAgentChild.mjs) and SIGKILLs itself after each
 * append of the run, and around the refund: after the ledger claim and between "ran" (paid) and
 * "recorded". Then one fresh `plumbline resume` process finishes every unfinished run. Then:
 * - it finishes with the uninterrupted run's outputs (the same final answer);
 * - the refunds file holds each refund once (the refund ran twice only where it was killed
 *   between ran and recorded: the payments stand-in is idempotent by the call's key);
 * - no turn is sent to the model twice: the fake Claude runs in this process, so it counts the
 *   requests of every process, and each run asked each of its turns exactly once (a kill right
 *   after a turn's ATTEMPT comes before its request leaves; after AGENT_TURN the answer is read
 *   from the log).
 * Small refund (paid by the agent's effect tool): every append (11) + 2 points. Large
 * refund (approval): after the signal, a child drives on and is killed at every append after
 * the wait and around the refund effect step. Every point (no sampling), killed 3 at a time.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { supportAnswer } from '../src/cli/demoAgentData.js';
import { foldLog } from '../src/machines/replay.js';
import { loadPipeline } from '../src/runtime/load.js';
import { sendSignal } from '../src/runtime/signals.js';
import { openSqliteStore } from '../src/store/sqlite.js';
import { startFakeClaude, type FakeClaude, type FakeRequest } from '../src/testing/index.js';
import { ndjson, plumbline, runNode } from './helpers/cli.js';

const CHILD = 'test/fixtures/supportAgentChild.mjs';
const EXAMPLE = 'dist/examples/supportAgent.js';
const SMALL = 'The cable from order A-1002 arrived damaged. Can I get a refund?';
const LARGE = 'The office chair (order A-1003) broke on day two. I want a refund.';
const WORKERS = 3;

let dir: string;
let store: string;
let refunds: string;
let fake: FakeClaude;
let env: Record<string, string>;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'plumbline-crash-agent-'));
  store = join(dir, 'crash.db');
  refunds = join(dir, 'refunds.jsonl');
  // The demo's agent script: each turn decided from the conversation in the request alone.
  fake = await startFakeClaude({ script: (req) => supportAnswer(req) ?? { kind: 'valid' } });
  // Every killed turn is recorded as lost on resume; across ~25 runs sharing a store the circuit
  // breaker (tested on its own elsewhere) might open, which is not what this test is about.
  env = {
    ANTHROPIC_BASE_URL: fake.url,
    PLUMBLINE_REFUNDS: refunds,
    PLUMBLINE_BREAKER: '{"minCalls":1000,"consecutive":1000}',
  };
});

afterAll(async () => {
  await fake.close();
  rmSync(dir, { recursive: true, force: true });
});

const child = (runId: string, text: string, extra: Record<string, string> = {}) =>
  runNode([CHILD, store, runId, text], { ...env, ...extra });

/** The turns (assistant messages already in the conversation) of each request of a run. */
const turnsAsked = (runId: string): number[] =>
  fake.requests
    .filter((r: FakeRequest) => r.path === '/v1/messages')
    .filter((r) => JSON.stringify(r.body.messages ?? '').includes(`Message ${runId} from`))
    .map(
      (r) =>
        (r.body.messages as Array<{ role: string }>).filter((m) => m.role === 'assistant').length,
    );

const lines = (path: string): Array<{ runId: string; key: string; via?: string }> => {
  try {
    return ndjson(readFileSync(path, 'utf8')) as Array<{ runId: string; key: string }>;
  } catch {
    return [];
  }
};

/** The run's status, its outputs (run id normalised) and its seqs, folded by the example. */
async function stateOf(runId: string) {
  const s = openSqliteStore(store);
  try {
    const events = await s.log.read(runId);
    const last = events[events.length - 1];
    const prepared = await loadPipeline(EXAMPLE);
    const folded = foldLog(prepared.machine, prepared.hash, runId, events);
    return {
      status: last?.state.status,
      outputs: JSON.stringify(folded.snapshot.context.outputs).split(runId).join('<id>'),
      seqs: events.map((e) => e.seq),
      types: events.map((e) => e.event.type),
    };
  } finally {
    await s.close();
  }
}

async function approve(runId: string): Promise<void> {
  const s = openSqliteStore(store);
  try {
    const prepared = await loadPipeline(EXAMPLE);
    await sendSignal(
      s,
      prepared,
      runId,
      'approve',
      { ok: true, by: 'ana' },
      { by: 'ana', now: Date.now() },
    );
  } finally {
    await s.close();
  }
}

/** Runs `work` on every point, WORKERS at a time. */
async function eachPoint(points: string[], work: (p: string) => Promise<void>): Promise<string[]> {
  const queue = [...points];
  const done: string[] = [];
  const worker = async (): Promise<void> => {
    for (let p = queue.shift(); p !== undefined; p = queue.shift()) {
      await work(p);
      done.push(p);
    }
  };
  await Promise.all(Array.from({ length: WORKERS }, worker));
  return done;
}

/** One fresh `plumbline resume` of every unfinished run: each must complete. */
async function resumeAll(expected: string[]): Promise<void> {
  const r = await plumbline(['resume', '--store', store, '--json'], env, 180_000);
  expect(r.code, `resume stderr: ${r.stderr}`).toBe(0);
  const lines = ndjson(r.stdout) as Array<{ runId: string; status: string }>;
  expect(lines.every((l) => l.status === 'completed')).toBe(true);
  // Every run killed before its last append was unfinished, and only those.
  expect(lines.map((l) => l.runId).sort()).toEqual([...expected].sort());
}

describe('support agent: crash and resume', () => {
  it('a small refund by the tool: killed anywhere, resumed to the same answer, paid once, no turn asked twice', async () => {
    const base = await child('small-base', SMALL);
    expect(base.code, base.stderr).toBe(0);
    const baseline = await stateOf('small-base');
    expect(baseline.status).toBe('completed');
    expect(baseline.outputs).toContain('"status":"refunded"');
    expect(turnsAsked('small-base')).toEqual([0, 1, 2]);
    const last = baseline.seqs.length;
    const points = [...baseline.seqs.map((s) => `append:${s}`), 'claimed:tool', 'ran:tool'];
    expect(points.length).toBeGreaterThanOrEqual(12);
    const idOf = (point: string): string => `small-${point.replace(':', '-')}`;
    const killed = await eachPoint(points, async (point) => {
      const c = await child(idOf(point), SMALL, { CRASH_AT: point });
      expect(c.signal, `${point}: must die by SIGKILL (stderr: ${c.stderr})`).toBe('SIGKILL');
    });
    expect(killed.sort()).toEqual([...points].sort());
    await resumeAll(points.filter((p) => p !== `append:${last}`).map(idOf));
    for (const point of points) {
      const after = await stateOf(idOf(point));
      expect(after.outputs, point).toBe(baseline.outputs);
      expect(after.seqs).toEqual(after.seqs.map((_, i) => i + 1));
      expect(turnsAsked(idOf(point)), `${point}: each turn asked once`).toEqual([0, 1, 2]);
    }
    // Each run's refund paid once; the payments stand-in was asked twice only where the process
    // died after it paid and before the ledger recorded it (at least once, made once by the key).
    const paid = lines(refunds);
    const asked = lines(`${refunds}.requests`);
    for (const point of points) {
      const runId = idOf(point);
      expect(
        paid.filter((l) => l.runId === runId),
        point,
      ).toHaveLength(1);
      expect(paid.find((l) => l.runId === runId)?.key).toMatch(/^tool:toolu_/);
      expect(
        asked.filter((l) => l.runId === runId),
        point,
      ).toHaveLength(point === 'ran:tool' ? 2 : 1);
    }
  }, 240_000);

  it('a large refund after approval: killed anywhere after the signal, resumed, paid once', async () => {
    const first = await child('large-base', LARGE);
    expect(ndjson(first.stdout)[0]).toMatchObject({ status: 'waiting' });
    const waitingAt = (await stateOf('large-base')).seqs.length;
    await approve('large-base');
    const drove = await child('large-base', LARGE, { MODE: 'drive' });
    expect(ndjson(drove.stdout)[0]).toMatchObject({ status: 'completed' });
    const baseline = await stateOf('large-base');
    expect(baseline.outputs).toContain('"status":"refunded after approval"');
    const last = baseline.seqs.length;
    const points = [
      ...baseline.seqs.filter((s) => s > waitingAt).map((s) => `append:${s}`),
      'claimed:step',
      'ran:step',
    ];
    expect(points.length).toBeGreaterThanOrEqual(5);
    const idOf = (point: string): string => `large-${point.replace(':', '-')}`;
    // One process takes every run to its wait (fewer processes: this part is not killed).
    const parked = await child(points.map(idOf).join(','), LARGE, { MODE: 'park' });
    expect(ndjson(parked.stdout)[0], parked.stderr).toEqual({
      statuses: points.map(() => 'waiting'),
    });
    const killed = await eachPoint(points, async (point) => {
      await approve(idOf(point));
      const c = await child(idOf(point), LARGE, { MODE: 'drive', CRASH_AT: point });
      expect(c.signal, `${point}: must die by SIGKILL (stderr: ${c.stderr})`).toBe('SIGKILL');
    });
    expect(killed.sort()).toEqual([...points].sort());
    await resumeAll(points.filter((p) => p !== `append:${last}`).map(idOf));
    const paid = lines(refunds);
    const asked = lines(`${refunds}.requests`);
    for (const point of points) {
      const runId = idOf(point);
      const after = await stateOf(runId);
      expect(after.outputs, point).toBe(baseline.outputs);
      expect(
        after.types.filter((t) => t === 'SIGNAL'),
        point,
      ).toHaveLength(1);
      expect(turnsAsked(runId), `${point}: each turn asked once`).toEqual([0, 1, 2]);
      expect(
        paid.filter((l) => l.runId === runId),
        point,
      ).toEqual([expect.objectContaining({ key: `refund-${runId}`, via: 'approval' })]);
      expect(
        asked.filter((l) => l.runId === runId),
        point,
      ).toHaveLength(point === 'ran:step' ? 2 : 1);
    }
  }, 240_000);
});
