/**
 * A wide map across worker processes with crashes (issue 11): 3 `plumbline worker`s on one
 * backend, the map run started with `plumbline start`, one worker SIGKILLed twice while
 * children run (first the one driving the parent, then its replacement while it drives
 * children), each time restarted; then the run must finish as if nothing happened.
 */
import { expect } from 'vitest';
import type { StoredEnvelope } from '../../src/machines/events.js';
import type { Store } from '../../src/store/types.js';
import { plumbline } from './cli.js';
import { CHILD_PIPELINE, checkMap, pool, type MapReport } from './mapCheck.js';
import { spawnWorker, type WorkerProc } from './worker.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Options of {@link mapWithKills}. */
export interface MapFleetOptions {
  /** The `--store` spec the workers and the CLI use. */
  spec: string;
  /** The test's own connection to the same store. */
  store: Store;
  pipelines: string;
  parentId: string;
  n: number;
  /** Environment of the workers (the fake Claude's URL, the sink). */
  env: Record<string, string>;
  sink: string;
  /** Until the parent completes (ms). */
  deadlineMs: number;
}

/** What happened, for the test's report line. */
export interface MapFleetReport extends MapReport {
  elapsedMs: number;
  kills: Array<{ at: number; worker: string; drivingParent: boolean; unfinished: number }>;
  /** Per kill of the parent's driver, the process that drove the parent after it. */
  parentTakeovers: string[];
}

/** Completed children of `parentId` in the run index. */
async function completedChildren(store: Store, parentId: string): Promise<number> {
  const runs = await store.log.listRuns({ pipeline: CHILD_PIPELINE, status: 'completed' });
  return runs.filter((r) => r.runId.startsWith(`${parentId}-`)).length;
}

/** Runs `w` drove (logged an event of, beyond run.started) and has not logged finishing. */
function unfinished(w: WorkerProc, prefix: string): string[] {
  const seen = new Set<string>();
  const done = new Set<string>();
  for (const l of w.lines) {
    if (l.runId === undefined || !l.runId.startsWith(prefix)) continue;
    // The parent's driver records every child's run.started: that is not driving it.
    if ((l as { event?: string }).event !== 'run.started') seen.add(l.runId);
    if (/^run (completed|failed|killed|parked)$/.test(l.msg)) done.add(l.runId);
  }
  return [...seen].filter((id) => !done.has(id));
}

/** True when `w` logged about run `runId` and has not logged it finishing. */
function drives(w: WorkerProc, runId: string): boolean {
  return unfinished(w, runId).includes(runId);
}

/**
 * Starts 3 workers and the map run, kills a worker twice mid-way (after 20 % and 55 % of the
 * children completed), restarts it each time, waits for the parent, and checks the outcome
 * with {@link checkMap}. An effect may run twice only where a kill fell between running it
 * and recording it (EFFECT_STARTED before the kill, EFFECT_DONE after): asserted per key.
 */
export async function mapWithKills(o: MapFleetOptions): Promise<MapFleetReport> {
  const all: WorkerProc[] = [];
  const start = async (name: string): Promise<WorkerProc> => {
    const w = await spawnWorker({
      name,
      store: o.spec,
      pipelines: o.pipelines,
      // A waiting parent holds a command slot; 50 children need 50 more across the fleet.
      concurrency: 60,
      env: o.env,
    });
    all.push(w);
    return w;
  };
  try {
    const fleet = await Promise.all(['w0', 'w1', 'w2'].map((n) => start(n)));
    const t0 = Date.now();
    const started = await plumbline(
      ['start', o.pipelines, '--store', o.spec, '--input', JSON.stringify({ n: o.n })].concat([
        '--run-id',
        o.parentId,
        '--json',
      ]),
      {},
    );
    expect(started.code, started.stderr).toBe(0);
    const kills: MapFleetReport['kills'] = [];
    let slot = 0;
    const childPrefix = `${o.parentId}-each-`;
    for (const [k, share] of [0.2, 0.55].entries()) {
      const want = Math.floor(o.n * share);
      const until = Date.now() + o.deadlineMs;
      while ((await completedChildren(o.store, o.parentId)) < want) {
        if (Date.now() > until) throw new Error(`fewer than ${want} children completed in time`);
        await sleep(250);
      }
      // Kill 1: the worker driving the parent. Kill 2: its replacement once it drives children.
      if (k === 0)
        slot = Math.max(
          0,
          fleet.findIndex((w) => drives(w, o.parentId)),
        );
      const victim = fleet[slot] as WorkerProc;
      if (k > 0)
        for (let t = 0; t < 600 && unfinished(victim, childPrefix).length < 3; t++) await sleep(50);
      const drivingParent = drives(victim, o.parentId);
      const open = unfinished(victim, childPrefix).length;
      const at = Date.now();
      await victim.kill('SIGKILL');
      kills.push({ at, worker: victim.name, drivingParent, unfinished: open });
      fleet[slot] = await start(`w${slot}-restart${k + 1}`);
    }
    const until = t0 + o.deadlineMs;
    for (;;) {
      const run = await o.store.log.getRun(o.parentId);
      if (run?.status === 'completed') break;
      // Parked is a pause (an open breaker: the workers resume it once it closed), not an end.
      if (run?.status === 'failed' || run?.status === 'killed')
        throw new Error(`parent ${run.status}: ${JSON.stringify(run)}`);
      if (Date.now() > until) {
        const tails = all.map((w) => `--- ${w.name}\n${w.output().slice(-1_500)}`).join('\n');
        throw new Error(
          `parent not completed after ${o.deadlineMs} ms; ${await completedChildren(o.store, o.parentId)}/${o.n} children completed\n${tails}`,
        );
      }
      await sleep(500);
    }
    const elapsedMs = Date.now() - t0;
    const report = await checkMap(o.store, o.parentId, o.n, o.sink);
    // A repeated effect is one a kill interrupted between running it and recording it.
    const killTimes = kills.map((k) => k.at);
    for (const r of report.repeated) {
      const i = Number(/^item-(\d+)×/.exec(r)?.[1]);
      const log = await o.store.log.read(`${childPrefix}${i}`);
      expect(interruptedEffect(log, killTimes), `${r}: re-run without a kill between`).toBe(true);
    }
    // After each kill of the parent's driver, another process drove the parent on (logged a
    // take-over, or the parent's later events).
    const parentTakeovers = kills
      .filter((k) => k.drivingParent)
      .map(
        (k) =>
          all.find(
            (w) =>
              w.name !== k.worker && w.lines.some((l) => l.runId === o.parentId && l.time > k.at),
          )?.name ?? 'nobody',
      );
    return { ...report, elapsedMs, kills, parentTakeovers };
  } finally {
    await pool(all, all.length, (w) => w.kill('SIGTERM'));
  }
}

/** True when a kill fell between the effect's EFFECT_STARTED and its EFFECT_DONE. */
function interruptedEffect(log: StoredEnvelope[], kills: number[]): boolean {
  const started = log.find((e) => e.event.type === 'EFFECT_STARTED')?.at;
  const done = log.find((e) => e.event.type === 'EFFECT_DONE')?.at;
  if (started === undefined || done === undefined) return false;
  return kills.some((k) => started <= k && k <= done);
}
