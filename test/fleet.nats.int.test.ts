/**
 * The fleet on NATS JetStream: worker processes (`plumbline worker`) drive runs of the crashy
 * pipeline (three model calls, three effects) against the fake Claude while the test kills a
 * worker, the server, or a cluster node with SIGKILL. Every run must complete with a
 * contiguous log that replays, each effect in the sink once, and orphaned runs taken over
 * within the ack wait.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openNatsBus } from '../src/bus/nats.js';
import type { CommandBus } from '../src/bus/types.js';
import { isTerminal, statusOf } from '../src/machines/fold.js';
import { foldLog } from '../src/machines/replay.js';
import { loadPipeline } from '../src/runtime/load.js';
import type { Prepared } from '../src/runtime/prepare.js';
import { openJetStreamStore, type JetStreamStore } from '../src/store/jetstream.js';
import { startFakeClaude, type FakeClaude } from '../src/testing/index.js';
import { ndjson, plumbline } from './helpers/cli.js';
import { spawnWorker as startWorker, type WorkerProc } from './helpers/worker.js';
import {
  startNatsCluster,
  startNatsServer,
  type NatsClusterHandle,
  type NatsServerHandle,
} from './helpers/natsServer.js';

const CRASHY = 'test/fixtures/pipelines/crashy.ts';
const KEYS = ['first', 'second', 'notify'];
const ACK_WAIT_MS = 2_000;
/** Pick-ups slower than the ack wait plus this are printed with their workers' log lines. */
const PICKUP_SLACK_MS = 1_500;
const RUNS = Number(process.env.FLEET_RUNS ?? 200);
const RUNS_SERVER_KILL = Number(process.env.FLEET_RUNS_SERVER_KILL ?? 200);
const RUNS_CLUSTER = Number(process.env.FLEET_RUNS_CLUSTER ?? 150);

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

let dir: string;
let sink: string;
let fake: FakeClaude;
let prepared: Prepared;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'plumbline-fleet-'));
  sink = join(dir, 'sink');
  prepared = await loadPipeline(CRASHY);
  fake = await startFakeClaude({
    script: (req) => {
      const m = req.body.messages as Array<{ content: string }>;
      const [label = '', id = ''] = (m[0]?.content ?? '').split(' ');
      const then = { kind: 'json' as const, value: { label: `${label}-ok`, score: label.length } };
      // The worker-kill test's runs (`a-…`) are slower, so that a worker is still in the middle
      // of some when the kill lands, however late a busy machine runs this process.
      const ms = id.startsWith('a-')
        ? 100 + Math.floor(Math.random() * 150)
        : 5 + Math.floor(Math.random() * 45);
      return { kind: 'delay', ms, then };
    },
  });
});

afterAll(async () => {
  await fake?.close();
  rmSync(dir, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------
// Worker processes

const workers = new Set<WorkerProc>();

/** Spawns `plumbline worker` on the crashy pipeline and tracks it for clean-up. */
async function spawnWorker(
  name: string,
  spec: string,
  env: Record<string, string> = {},
): Promise<WorkerProc> {
  const w = await startWorker({
    name,
    store: spec,
    pipelines: CRASHY,
    ackWaitMs: ACK_WAIT_MS,
    concurrency: 20,
    env: { ANTHROPIC_BASE_URL: fake.url, CRASHY_SINK: sink, ...env },
  });
  workers.add(w);
  void w.exited.then(() => workers.delete(w));
  return w;
}

/** Stops every worker still running (SIGTERM, then SIGKILL after 5 s). */
async function stopWorkers(): Promise<void> {
  await Promise.all([...workers].map((w) => w.kill('SIGTERM')));
}

// ---------------------------------------------------------------------------------------------
// Checks

const TERMINAL = ['completed', 'failed', 'killed'] as const;

/** How many of `ids` the run index shows terminal. */
async function terminalCount(store: JetStreamStore, ids: Set<string>): Promise<number> {
  const runs = await store.log.listRuns({ status: [...TERMINAL] });
  return runs.filter((r) => ids.has(r.runId)).length;
}

/** Waits until at least `n` of `ids` are terminal. */
async function waitTerminal(
  store: JetStreamStore,
  ids: string[],
  n: number,
  timeoutMs: number,
  what: string,
): Promise<void> {
  const set = new Set(ids);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const done = await terminalCount(store, set);
    if (done >= n) return;
    if (Date.now() > deadline) {
      const out = [...workers].map((w) => `--- ${w.name}\n${w.output().slice(-2_000)}`).join('\n');
      const terminal = new Set(
        (await store.log.listRuns({ status: [...TERMINAL] })).map((r) => r.runId),
      );
      const open = await pool(ids.filter((id) => !terminal.has(id)).slice(0, 10), 4, async (id) => {
        const r = await store.log.getRun(id).catch((e: unknown) => String(e));
        return `${id}: ${typeof r === 'string' ? r : `${r?.status} at seq ${r?.lastSeq}`}`;
      });
      const stuck = new Set(ids.filter((id) => !terminal.has(id)).slice(0, 10));
      const about = [...allWorkers]
        .flatMap((w) =>
          w.lines
            .filter((l) => stuck.has(l.runId ?? ''))
            .map((l) => `${w.name} ${JSON.stringify(l)}`),
        )
        .slice(0, 60)
        .join('\n');
      const errors = [...allWorkers]
        .flatMap((w) =>
          w.lines.filter((l) => l.level >= 40).map((l) => `${w.name} ${JSON.stringify(l)}`),
        )
        .slice(-30)
        .join('\n');
      throw new Error(
        `${what}: ${done}/${n} runs terminal after ${timeoutMs} ms; not terminal in the index (status after catching up):\n${open.join('\n')}\nworker lines about them:\n${about}\nlast warnings and errors:\n${errors}\n${out}`,
      );
    }
    await sleep(250);
  }
}

/** Runs `f` over `items`, `n` at a time. */
async function pool<T, R>(items: T[], n: number, f: (t: T) => Promise<R>): Promise<R[]> {
  const out: R[] = [];
  let i = 0;
  await Promise.all(
    Array.from({ length: n }, async () => {
      while (i < items.length) {
        const k = i++;
        out[k] = await f(items[k] as T);
      }
    }),
  );
  return out;
}

/** One event's identity: a second event with the same identity in a run is a duplicate. */
function identity(e: { event: { type: string } & Record<string, unknown> }): string {
  const ev = e.event;
  return [ev.type, ev.step ?? '', ev.attempt ?? '', ev.key ?? ''].join('|');
}

/**
 * Every run completed; its seqs are 1..n; the fold reproduces every recorded state; no event
 * appears twice; each effect finished once; the outputs are those of an uninterrupted run.
 */
async function verifyRuns(store: JetStreamStore, ids: string[]): Promise<{ events: number }> {
  let events = 0;
  const norm = (v: unknown, id: string): string => JSON.stringify(v).split(id).join('<id>');
  let reference: string | undefined;
  await pool(ids, 6, async (id) => {
    const log = await store.log.read(id);
    events += log.length;
    expect(
      log.map((e) => e.seq),
      `${id}: seqs`,
    ).toEqual(log.map((_, i) => i + 1));
    const folded = foldLog(prepared.machine, prepared.hash, id, log);
    if (statusOf(folded.snapshot) !== 'completed') {
      const again = await store.log.read(id);
      const run = await store.log.getRun(id);
      throw new Error(
        `${id}: not completed after ${log.length} events (${log.map((e) => e.event.type).join(' ')}); index ${JSON.stringify(run)}; read again: ${again.length} events; store stats ${JSON.stringify(store.stats)}`,
      );
    }
    const seen = new Set<string>();
    for (const e of log) {
      const key = identity(e as never);
      expect(seen.has(key), `${id}: duplicate event ${key}`).toBe(false);
      seen.add(key);
    }
    const done = log.filter((e) => e.event.type === 'EFFECT_DONE').map((e) => identity(e as never));
    expect(done, `${id}: effects done`).toHaveLength(3);
    expect(
      log.filter((e) => e.event.type === 'run.started'),
      `${id}: starts`,
    ).toHaveLength(1);
    const outputs = norm(folded.snapshot.context.outputs, id);
    reference ??= outputs;
    expect(outputs, `${id}: outputs`).toBe(reference);
  });
  return { events };
}

/** The sink holds exactly one file per effect key; returns how often effects actually ran. */
function checkSink(ids: string[]): { expected: number; executions: number; repeated: string[] } {
  for (const id of ids)
    for (const k of KEYS)
      expect(existsSync(join(sink, `${id}-${k}.json`)), `${id}-${k} in the sink`).toBe(true);
  const mine = new Set(ids.flatMap((id) => KEYS.map((k) => `${id}-${k}`)));
  const files = readdirSync(sink).filter((f) => mine.has(f.replace(/\.json$/, '')));
  expect(files).toHaveLength(ids.length * KEYS.length);
  const lines = readFileSync(join(sink, 'executions.log'), 'utf8')
    .split('\n')
    .filter((l) => mine.has(l));
  const counts = new Map<string, number>();
  for (const l of lines) counts.set(l, (counts.get(l) ?? 0) + 1);
  const repeated = [...counts].filter(([, n]) => n > 1).map(([k, n]) => `${k}×${n}`);
  return { expected: mine.size, executions: lines.length, repeated };
}

/** How long an orphaned run waited: until another worker took it over, and until its next event. */
interface Takeover {
  runId: string;
  /** Kill → another worker logs "take over" (redelivery after the ack wait + getRun). */
  pickedUpMs: number;
  /** Kill → the run's next event in the log (+ rebuilding it and its next step). */
  nextEventMs: number;
  /** The command's delivery count when it was taken over (2: the first redelivery). */
  delivery: number;
}

/**
 * Runs the killed worker was driving at `killedAt` (it logged them, and their last event
 * before the kill is not terminal), with their takeover times after the latest of `allKills`
 * that preceded the take-over.
 */
async function takeovers(
  store: JetStreamStore,
  killed: WorkerProc,
  killedAt: number,
  allKills: number[] = [killedAt],
): Promise<Takeover[]> {
  const fenced = new Set(killed.lines.filter((l) => l.msg === 'fenced').map((l) => l.runId));
  const touched = [
    ...new Set(killed.lines.flatMap((l) => (l.runId !== undefined ? [l.runId] : []))),
  ].filter((id) => !fenced.has(id));
  const out: Takeover[] = [];
  await pool(touched, 6, async (runId) => {
    const log = await store.log.read(runId);
    const before = log.filter((e) => e.at <= killedAt);
    const last = before[before.length - 1];
    if (last === undefined || isTerminal(last.state.status)) return;
    const next = log.find((e) => e.at > killedAt);
    expect(next, `${runId}: no event after the kill`).toBeDefined();
    const picked = [...allWorkers]
      .filter((w) => w !== killed)
      .flatMap((w) => w.lines)
      .filter((l) => l.runId === runId && l.msg === 'take over' && l.time > killedAt)
      .sort((a, b) => a.time - b.time)[0];
    expect(picked, `${runId}: nobody logged taking it over`).toBeDefined();
    // Measured from the latest kill before the pick-up (a run can be orphaned twice).
    const pickedAt = picked?.time ?? Infinity;
    const from = Math.max(...allKills.filter((k) => k < pickedAt), killedAt);
    out.push({
      runId,
      pickedUpMs: pickedAt - from,
      nextEventMs: (next?.at ?? Infinity) - from,
      delivery: Number(/delivery (\d+)/.exec(picked?.reason ?? '')?.[1] ?? 0),
    });
  });
  return out;
}

/** Runs with events both before `from` and after `to`: they were in flight across an outage. */
async function inFlightAcross(
  store: JetStreamStore,
  ids: string[],
  from: number,
  to: number,
): Promise<number> {
  const hit = await pool(ids, 6, async (id) => {
    const log = await store.log.read(id);
    const before = log.filter((e) => e.at < from);
    const last = before[before.length - 1];
    return last !== undefined && !isTerminal(last.state.status) && log.some((e) => e.at > to);
  });
  return hit.filter(Boolean).length;
}

const countBy = (xs: number[]): string => {
  const m = new Map<number, number>();
  for (const x of xs) m.set(x, (m.get(x) ?? 0) + 1);
  return [...m].map(([k, n]) => `${k}: ${n}`).join(', ');
};

const stats = (xs: number[]): string => {
  const s = [...xs].sort((a, b) => a - b);
  const at = (q: number): number => s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? NaN;
  return `n=${s.length} min=${s[0]} p50=${at(0.5)} p90=${at(0.9)} max=${s[s.length - 1]} ms`;
};

/** Drives stopped because another worker appended to the run (the worker logs "release"). */
const fencedLines = (): number =>
  [...allWorkers].reduce(
    (n, w) => n + w.lines.filter((l) => l.msg === 'fenced' && l.decision === 'release').length,
    0,
  );
const allWorkers = new Set<WorkerProc>();

async function startFleet(spec: string, n: number, env?: Record<string, string>): Promise<void> {
  const started = await Promise.all(
    Array.from({ length: n }, (_, i) => spawnWorker(`w${i}`, spec, env)),
  );
  for (const w of started) allWorkers.add(w);
}

// ---------------------------------------------------------------------------------------------

describe('fleet on one nats-server', () => {
  let server: NatsServerHandle;
  let store: JetStreamStore;
  let bus: CommandBus;

  beforeAll(async () => {
    server = await startNatsServer();
    store = await openJetStreamStore({ servers: server.url });
    // Same ack wait as the workers: opening the bus updates the shared durable consumer.
    bus = await openNatsBus({ servers: server.url, ackWaitMs: ACK_WAIT_MS });
    await startFleet(server.url, 3);
  }, 60_000);

  afterAll(async () => {
    await stopWorkers();
    allWorkers.clear();
    await bus?.close();
    await store?.close();
    await server?.[Symbol.asyncDispose]();
  });

  it(`completes ${RUNS} runs while one of 3 workers is SIGKILLed twice, taking orphans over after each kill`, async () => {
    const ids = Array.from({ length: RUNS }, (_, i) => `a-${i}`);
    // Two waves, so the second kill also lands under load: the first wave, kill 1 at 20 % of
    // it; once kill 1's orphans are taken over, the second wave, and kill 2 of the restarted
    // worker once it drives runs of that wave.
    const waves = [ids.slice(0, Math.ceil(RUNS * 0.6)), ids.slice(Math.ceil(RUNS * 0.6))];
    const t0 = Date.now();
    const kills: Array<{ worker: WorkerProc; at: number }> = [];
    let victim = [...allWorkers].find((w) => w.name === 'w0') as WorkerProc;
    for (const [i, wave] of waves.entries()) {
      const previous = kills[kills.length - 1]?.at;
      if (previous !== undefined) await sleep(previous + ACK_WAIT_MS + 1_500 - Date.now());
      await pool(wave, 20, (id) =>
        bus.publishStart({ runId: id, pipeline: 'crashy', input: { id } }),
      );
      const mine = new Set(wave);
      if (i === 0) await waitTerminal(store, wave, Math.floor(wave.length * 0.2), 90_000, 'kill 1');
      // Kill it while it drives runs of this wave: at least 3 it logged and has not finished,
      // still running in the store (its log lines reach this process late on a busy machine: a
      // run can be over before its last line is read). The first worker found so is killed.
      const open = (w: WorkerProc): string[] => {
        const seen = new Set<string>();
        const done = new Set<string>();
        for (const l of w.lines) {
          if (l.runId === undefined || !mine.has(l.runId)) continue;
          seen.add(l.runId);
          if (/^run (completed|failed|killed|parked)$/.test(l.msg)) done.add(l.runId);
        }
        return [...seen].filter((id) => !done.has(id));
      };
      const running = async (ids: string[]): Promise<number> =>
        (await Promise.all(ids.map(async (id) => (await store.log.getRun(id))?.status))).filter(
          (s) => s === 'running',
        ).length;
      // The first kill takes a worker that drives runs of the wave (a fixed one may have drawn
      // few of them on a fast machine), the busiest by its lines first; the second, the
      // restarted worker.
      const candidates = (): WorkerProc[] =>
        (i === 0
          ? [...allWorkers].filter((w) => w.child.exitCode === null && w.child.signalCode === null)
          : [victim]
        ).sort((a, b) => open(b).length - open(a).length);
      // A candidate is frozen (SIGSTOP) while the store is read: it cannot finish those runs
      // between the read and the kill, however late this process gets to the kill.
      let found: WorkerProc | undefined;
      for (let t = 0; t < 2_000 && found === undefined; t++) {
        for (const w of candidates()) {
          const ids = open(w);
          if (ids.length < 3) continue;
          w.child.kill('SIGSTOP');
          if ((await running(ids)) >= 3) {
            found = w;
            break;
          }
          w.child.kill('SIGCONT');
        }
        if (found === undefined) await sleep(10);
      }
      victim = found ?? victim;
      const at = Date.now();
      await victim.kill('SIGKILL');
      kills.push({ worker: victim, at });
      victim = await spawnWorker(`w0-restart${i + 1}`, server.url);
      allWorkers.add(victim);
    }
    await waitTerminal(store, ids, RUNS, 150_000, 'all runs');
    const elapsed = Date.now() - t0;

    const { events } = await verifyRuns(store, ids);
    const sinkReport = checkSink(ids);
    const perKill: Takeover[][] = [];
    for (const k of kills)
      perKill.push(
        await takeovers(
          store,
          k.worker,
          k.at,
          kills.map((x) => x.at),
        ),
      );
    const all = perKill.flat();
    console.log(
      [
        `${RUNS} runs, ${events} events in ${(elapsed / 1000).toFixed(1)} s with 2 worker kills`,
        `orphaned runs per kill: ${perKill.map((t) => t.length).join(', ')}`,
        `kill → taken over by another worker (ack wait ${ACK_WAIT_MS} ms): ${stats(all.map((g) => g.pickedUpMs))}`,
        `kill → next event of the run: ${stats(all.map((g) => g.nextEventMs))}`,
        `delivery count at take-over: ${countBy(all.map((t) => t.delivery))}`,
        `effects: ${sinkReport.executions} executions for ${sinkReport.expected} sink entries${sinkReport.repeated.length > 0 ? ` (re-run: ${sinkReport.repeated.join(', ')})` : ''}`,
        `fenced stops: ${fencedLines()}`,
      ].join('\n'),
    );
    // Each kill orphaned runs, and each orphan was taken over within the ack wait (+ slack).
    for (const t of perKill) expect(t.length).toBeGreaterThan(0);
    const slow = all.filter((g) => g.pickedUpMs > ACK_WAIT_MS + PICKUP_SLACK_MS);
    if (slow.length > 0) {
      const k0 = kills[0]?.at ?? 0;
      const about = slow
        .slice(0, 2)
        .flatMap((g) =>
          [...allWorkers].flatMap((w) =>
            w.lines
              .filter((l) => l.runId === g.runId)
              .map((l) => `${g.runId} ${w.name} +${l.time - k0} ${l.msg} ${l.reason ?? ''}`),
          ),
        );
      const starts = [...allWorkers].map(
        (w) =>
          `${w.name} started +${(w.lines.find((l) => l.msg === 'worker started')?.time ?? 0) - k0}`,
      );
      console.log(
        `slow pick-ups (kills at +0 and +${(kills[1]?.at ?? 0) - k0}):\n${starts.join('\n')}\n${about.join('\n')}`,
      );
    }
    // Orders, not wall-clock bounds (a loaded machine makes any bound flaky; the recovery time is
    // measured by bench/recovery.ts): every orphan was taken over by another worker after the
    // kill, and its next event came after that take-over.
    for (const g of all) {
      expect(g.pickedUpMs, `pick-up of ${g.runId}`).toBeGreaterThanOrEqual(0);
      expect(g.nextEventMs, `next event of ${g.runId}`).toBeGreaterThanOrEqual(g.pickedUpMs);
    }
  }, 240_000);

  it(`completes ${RUNS_SERVER_KILL} runs while the nats-server is SIGKILLed and restarted`, async () => {
    const ids = Array.from({ length: RUNS_SERVER_KILL }, (_, i) => `b-${i}`);
    const t0 = Date.now();
    await pool(ids, 20, (id) => bus.publishStart({ runId: id, pipeline: 'crashy', input: { id } }));
    await waitTerminal(store, ids, Math.floor(RUNS_SERVER_KILL * 0.3), 90_000, 'before the kill');
    const fencedBefore = fencedLines();
    const down = Date.now();
    await server.kill('SIGKILL');
    await sleep(1_000);
    await server.restart();
    const up = Date.now();
    await waitTerminal(store, ids, RUNS_SERVER_KILL, 120_000, 'after the restart');
    const elapsed = Date.now() - t0;
    const across = await inFlightAcross(store, ids, down, up);
    expect(across, 'runs in flight across the outage').toBeGreaterThan(0);
    for (const w of allWorkers)
      if (workers.has(w)) expect(w.child.exitCode, `${w.name} still running`).toBeNull();
    const { events } = await verifyRuns(store, ids);
    const sinkReport = checkSink(ids);
    console.log(
      [
        `${RUNS_SERVER_KILL} runs, ${events} events in ${(elapsed / 1000).toFixed(1)} s with a server kill -9 + restart (${up - down} ms down); ${across} runs in flight across it`,
        `effects: ${sinkReport.executions} executions for ${sinkReport.expected} sink entries${sinkReport.repeated.length > 0 ? ` (re-run: ${sinkReport.repeated.join(', ')})` : ''}`,
        `fenced stops during the restart: ${fencedLines() - fencedBefore}`,
      ].join('\n'),
    );
  }, 240_000);

  it('dead-letters fuzzed commands with a reason and keeps serving valid ones', async () => {
    const js = jetstream(store.connection);
    const enc = (v: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(v));
    const cases: Array<{ subject: string; data: Uint8Array; reason: RegExp }> = [];
    const start = (data: Uint8Array, reason: RegExp): void => {
      cases.push({ subject: 'plumbline.cmd.start', data, reason });
    };
    const undecodable = /^command is not UTF-8 text$|^command is not JSON|^invalid command/;
    for (const bytes of fc.sample(fc.uint8Array({ minLength: 1, maxLength: 300 }), {
      numRuns: 15,
      seed: 5,
    }))
      start(bytes, undecodable);
    for (const v of fc.sample(fc.jsonValue(), { numRuns: 15, seed: 7 }))
      start(enc(v), /^invalid command/);
    const shapes: unknown[] = [
      null,
      [],
      'start',
      { type: 'start' },
      { type: 'start', runId: 5, pipeline: 'crashy', input: {} },
      { type: 'start', runId: '', pipeline: 'crashy', input: {} },
      { type: 'start', runId: 'x'.repeat(201), pipeline: 'crashy', input: {} },
      { type: 'stop', runId: 'fz-stop' },
      {
        type: 'start',
        runId: 'fz-limits',
        pipeline: 'crashy',
        input: {},
        limits: { budgetUsd: -1 },
      },
    ];
    for (const v of shapes) start(enc(v), /^invalid command/);
    start(
      enc({ type: 'start', runId: 'fz bad.id', pipeline: 'crashy', input: { id: 'x' } }),
      /run id/,
    );
    start(
      enc({ type: 'start', runId: 'fz-unknown', pipeline: 'nope', input: {} }),
      /unknown pipeline 'nope'/,
    );
    start(
      enc({ type: 'start', runId: 'fz-badinput', pipeline: 'crashy', input: { id: 5 } }),
      /input does not match pipeline 'crashy' input schema/,
    );
    start(
      enc({
        type: 'start',
        runId: 'fz-huge',
        pipeline: 'crashy',
        input: { id: 'x'.repeat(300_000) },
      }),
      /over the 262144-byte limit/,
    );
    start(randomBytes(900 * 1024), /over the 262144-byte limit/);
    cases.push({
      subject: 'plumbline.cmd.resume',
      data: enc({ type: 'resume', runId: 'fz-ghost' }),
      reason: /resume of unknown run 'fz-ghost'/,
    });
    // Over the server's max payload: refused at publish, never queued.
    await expect(js.publish('plumbline.cmd.start', randomBytes(2 * 1024 * 1024))).rejects.toThrow();

    const before = (await bus.deadLetters()).length;
    for (const c of cases) await js.publish(c.subject, c.data);
    const ids = Array.from({ length: 10 }, (_, i) => `e-${i}`);
    await pool(ids, 5, (id) => bus.publishStart({ runId: id, pipeline: 'crashy', input: { id } }));
    await waitTerminal(store, ids, ids.length, 60_000, 'valid runs among fuzz');
    await verifyRuns(store, ids);

    let dlq = (await bus.deadLetters()).slice(before);
    for (
      const deadline = Date.now() + 30_000;
      dlq.length < cases.length && Date.now() < deadline;
    ) {
      await sleep(250);
      dlq = (await bus.deadLetters()).slice(before);
    }
    const unmatched = [...dlq];
    for (const c of cases) {
      const i = unmatched.findIndex(
        (d) => Buffer.compare(Buffer.from(d.data), Buffer.from(c.data)) === 0,
      );
      expect(
        i,
        `dead letter for ${Buffer.from(c.data).subarray(0, 80).toString()}`,
      ).toBeGreaterThanOrEqual(0);
      const d = unmatched.splice(i, 1)[0];
      expect(d?.reason).toMatch(c.reason);
    }
    expect(unmatched).toEqual([]);
    for (const id of ['fz-unknown', 'fz-badinput', 'fz-huge', 'fz-ghost'])
      expect(await store.log.getRun(id)).toBeUndefined();
    for (const w of allWorkers)
      if (workers.has(w)) expect(w.child.exitCode, `${w.name} still running`).toBeNull();
    console.log(
      `fuzz: ${cases.length} bad commands dead-lettered, ${ids.length} valid runs completed`,
    );
  }, 120_000);

  it('creates one run when the same start is published twice (plumbline start, concurrently)', async () => {
    const id = 'dup-1';
    const args = [
      'start',
      CRASHY,
      '--store',
      server.url,
      '--input',
      JSON.stringify({ id }),
      '--run-id',
      id,
      '--json',
    ];
    const [r1, r2] = await Promise.all([plumbline(args), plumbline(args)]);
    expect(r1.code, r1.stderr).toBe(0);
    expect(r2.code, r2.stderr).toBe(0);
    const answers = [r1, r2].map((r) => (ndjson(r.stdout)[0] as { duplicate: boolean }).duplicate);
    expect(answers.sort()).toEqual([false, true]);
    await waitTerminal(store, [id], 1, 60_000, 'the duplicated start');
    // The same start again, raw and without a msgID (past the dedup window): acked, no new run.
    const js = jetstream(store.connection);
    await js.publish(
      'plumbline.cmd.start',
      JSON.stringify({ type: 'start', runId: id, pipeline: 'crashy', input: { id } }),
    );
    const jsm = await jetstreamManager(store.connection);
    const busy = async (): Promise<number> => {
      const ci = await jsm.consumers.info('PLUMBLINE_CMDS', 'plumbline_workers');
      return ci.num_pending + ci.num_ack_pending;
    };
    for (let i = 0; i < 100 && (await busy()) > 0; i++) await sleep(100);
    expect(await busy()).toBe(0);
    await verifyRuns(store, [id]);
    const s = checkSink([id]);
    expect(s.executions).toBe(3);
  }, 90_000);
});

describe('fleet on a 3-node JetStream cluster (R3)', () => {
  let cluster: NatsClusterHandle;
  let store: JetStreamStore;
  let bus: CommandBus;

  beforeAll(async () => {
    cluster = await startNatsCluster(3);
    store = await openJetStreamStore({ servers: cluster.servers, replicas: 3 });
    bus = await openNatsBus({ servers: cluster.servers, replicas: 3, ackWaitMs: ACK_WAIT_MS });
    await startFleet(cluster.url, 3, { NATS_REPLICAS: '3' });
  }, 90_000);

  afterAll(async () => {
    await stopWorkers();
    allWorkers.clear();
    await bus?.close();
    await store?.close();
    await cluster?.[Symbol.asyncDispose]();
  });

  it(`loses nothing when the events stream's leader node is SIGKILLed during ${RUNS_CLUSTER} runs`, async () => {
    const jsm = await jetstreamManager(store.connection);
    const info = await jsm.streams.info('PLUMBLINE_EVENTS');
    expect(info.config.num_replicas).toBe(3);
    const ids = Array.from({ length: RUNS_CLUSTER }, (_, i) => `d-${i}`);
    const t0 = Date.now();
    await pool(ids, 20, (id) => bus.publishStart({ runId: id, pipeline: 'crashy', input: { id } }));
    await waitTerminal(store, ids, Math.floor(RUNS_CLUSTER * 0.3), 90_000, 'before the node kill');
    const leader = (await jsm.streams.info('PLUMBLINE_EVENTS')).cluster?.leader;
    const node = cluster.nodes[Math.max(0, cluster.names.indexOf(leader ?? ''))];
    const killedAt = Date.now();
    await node?.kill('SIGKILL');
    await waitTerminal(store, ids, RUNS_CLUSTER, 150_000, 'after the node kill');
    const elapsed = Date.now() - t0;
    const across = await inFlightAcross(store, ids, killedAt, killedAt);
    expect(across, 'runs in flight across the node kill').toBeGreaterThan(0);
    const { events } = await verifyRuns(store, ids);
    const sinkReport = checkSink(ids);
    console.log(
      [
        `cluster: ${RUNS_CLUSTER} runs, ${events} events in ${(elapsed / 1000).toFixed(1)} s; killed node ${leader ?? '?'} (events stream leader) with ${across} runs in flight`,
        `effects: ${sinkReport.executions} executions for ${sinkReport.expected} sink entries`,
        `fenced stops: ${fencedLines()}`,
      ].join('\n'),
    );
  }, 240_000);
});
