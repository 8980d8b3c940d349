/**
 * Waiting on NATS JetStream with a worker process: a run parks in its wait (the worker acks the
 * command and holds nothing), another process sends the signal and the worker finishes the run;
 * a signal sent before the run reaches its wait is applied when it gets there; a bad payload is
 * refused; a durable sleep is woken by a worker's sweep after its time, even across a SIGKILL.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openNatsBus } from '../src/bus/nats.js';
import { Runtime } from '../src/runtime/driver.js';
import { loadPipeline } from '../src/runtime/load.js';
import { silentLogger } from '../src/runtime/logger.js';
import { openJetStreamStore, type JetStreamStore } from '../src/store/jetstream.js';
import { plumbline } from './helpers/cli.js';
import { ofType } from './helpers/harness.js';
import { startNatsServer, type NatsServerHandle } from './helpers/natsServer.js';
import { spawnWorker, type WorkerProc } from './helpers/worker.js';

const APPROVAL = 'test/fixtures/pipelines/approval.ts';
const NAP = 'test/fixtures/pipelines/nap.ts';
const POLL = { timeout: 60_000, interval: 100 };

let server: NatsServerHandle;
let store: JetStreamStore;
let dir: string;
let worker: WorkerProc;
const workers: WorkerProc[] = [];

const start = (): Promise<WorkerProc> =>
  spawnWorker({
    name: `w${workers.length + 1}`,
    store: server.url,
    pipelines: APPROVAL,
    args: ['--pipelines', NAP],
    concurrency: 4,
    env: {},
  }).then((w) => (workers.push(w), w));

const status = async (id: string): Promise<string | undefined> =>
  (await store.log.getRun(id))?.status;

/** Commands the workers hold or have not taken yet. */
async function unsettled(): Promise<number> {
  const jsm = await jetstreamManager(store.connection);
  const ci = await jsm.consumers.info('PLUMBLINE_CMDS', 'plumbline_workers');
  return ci.num_pending + ci.num_ack_pending;
}

const signal = (id: string, data: string, by?: string) =>
  plumbline([
    'signal',
    id,
    'approve',
    '--data',
    data,
    ...(by !== undefined ? ['--by', by] : []),
    '--store',
    server.url,
  ]);

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'plumbline-waits-nats-'));
  server = await startNatsServer();
  store = await openJetStreamStore({ servers: server.url });
  worker = await start();
});

afterAll(async () => {
  await Promise.all(workers.map((w) => w.kill('SIGTERM')));
  await store?.close();
  await server?.[Symbol.asyncDispose]();
  rmSync(dir, { recursive: true, force: true });
});

describe('wait for a signal on NATS, with a worker process', () => {
  it('parks the run (acked, nothing held); a bad payload is refused; another process signals and the worker finishes it', async () => {
    const id = 'nw-1';
    const sink = join(dir, 'refunds-1.txt');
    const started = await plumbline([
      'start',
      APPROVAL,
      '--store',
      server.url,
      '--input',
      JSON.stringify({ amount: 40, sink }),
      '--run-id',
      id,
    ]);
    expect(started.code, started.stderr).toBe(0);
    await expect.poll(() => status(id), POLL).toBe('waiting');
    // The worker let it go: its command is acked and nothing is pending.
    await expect.poll(unsettled, POLL).toBe(0);
    expect((await store.waits.waiting(100)).map((w) => w.runId)).toContain(id);
    expect(existsSync(sink)).toBe(false);

    const bad = await signal(id, '{"ok":1}');
    expect(bad.code, bad.stdout).toBe(2);
    expect(bad.stderr).toMatch(/refused.*ok: .*boolean.*by: .*the run keeps waiting/);
    expect(await store.waits.getSignal(id, 'approve')).toBeUndefined();
    expect(await status(id)).toBe('waiting');

    const ok = await signal(id, '{"ok":true,"by":"ana"}', 'ana');
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toContain('queued for a worker');
    await expect.poll(() => status(id), POLL).toBe('completed');
    expect(readFileSync(sink, 'utf8')).toBe(`${id} 40 ana\n`);
    const sig = ofType(await store.log.read(id), 'SIGNAL').map((e) => e.event);
    expect(sig).toMatchObject([
      { step: 'approve', signal: 'approve', payload: { ok: true, by: 'ana' }, by: 'ana' },
    ]);
    // Taken: nothing kept, nothing scheduled.
    expect(await store.waits.getSignal(id, 'approve')).toBeUndefined();
    expect((await store.waits.waiting(100)).map((w) => w.runId)).not.toContain(id);
  });

  it('keeps a signal sent before the run reaches its wait and applies it when the run gets there', async () => {
    const id = 'nw-early';
    const sink = join(dir, 'refunds-early.txt');
    // Created, not driven: no command for it is on the bus yet.
    const prepared = await loadPipeline(APPROVAL);
    const rt = new Runtime({ store, logger: silentLogger, autoResume: false });
    await rt.create(prepared, { input: { amount: 7, sink }, runId: id });
    expect(await status(id)).toBe('running');

    const early = await signal(id, '{"ok":true,"by":"bo"}', 'bo');
    expect(early.code, early.stderr).toBe(0);
    expect(early.stdout).toContain(`kept for run ${id} (running)`);
    expect(await store.waits.getSignal(id, 'approve')).toMatchObject({ by: 'bo' });

    const bus = await openNatsBus({ servers: server.url });
    try {
      await bus.publishResume({ runId: id });
    } finally {
      await bus.close();
    }
    await expect.poll(() => status(id), POLL).toBe('completed');
    expect(readFileSync(sink, 'utf8')).toBe(`${id} 7 bo\n`);
    const log = await store.log.read(id);
    const waited = ofType(log, 'WAIT_STARTED')[0];
    const got = ofType(log, 'SIGNAL')[0];
    // Sent before the wait began, recorded after it: the early signal was kept, not lost.
    expect(got?.event.at).toBeLessThanOrEqual(waited?.event.at ?? -1);
    expect(got!.seq).toBeGreaterThan(waited!.seq);
    expect(await store.waits.getSignal(id, 'approve')).toBeUndefined();
  });
});

describe('durable sleep on NATS', () => {
  it('is woken by a worker sweep after its time, though the worker that put it to sleep was SIGKILLed', async () => {
    const id = 'nap-1';
    const started = await plumbline(['start', NAP, '--store', server.url, '--run-id', id]);
    expect(started.code, started.stderr).toBe(0);
    await expect.poll(() => status(id), POLL).toBe('waiting');
    await expect.poll(unsettled, POLL).toBe(0);
    const until = ofType(await store.log.read(id), 'SLEEP_STARTED')[0]?.event.until ?? 0;
    await worker.kill('SIGKILL');
    const killedAt = Date.now();
    expect(killedAt, 'the worker died before the wake-up time').toBeLessThan(until);

    // No worker: past its time the run still sleeps (nothing in any process wakes it).
    await new Promise((r) => setTimeout(r, Math.max(0, until - Date.now()) + 500));
    expect(await status(id)).toBe('waiting');

    worker = await start();
    await expect.poll(() => status(id), POLL).toBe('completed');
    const log = await store.log.read(id);
    // One sleep, its time unchanged by the restart; woken at or after it.
    expect(ofType(log, 'SLEEP_STARTED').map((e) => e.event.until)).toEqual([until]);
    const wake = ofType(log, 'WAKE');
    expect(wake).toHaveLength(1);
    expect(wake[0]?.event.at).toBeGreaterThanOrEqual(until);
    expect((await store.waits.waiting(100)).map((w) => w.runId)).not.toContain(id);
  });
});
