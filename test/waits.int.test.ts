/**
 * Waiting without a process: a wait step parks the run durably until its signal (checked against
 * the schema; a bad one refused, an early one kept), a timeout, or a sleep's end; a sweep of the
 * store's schedule wakes due runs; another process sends the signal and finishes the run.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { definePipeline, step } from '../src/machines/pipeline.js';
import { sleep, wait } from '../src/machines/waits.js';
import { prepare } from '../src/runtime/prepare.js';
import { sendSignal } from '../src/runtime/signals.js';
import { WakeSweep } from '../src/runtime/wakeSweep.js';
import { silentLogger } from '../src/runtime/logger.js';
import { plumbline } from './helpers/cli.js';
import { harness, ofType, type Harness } from './helpers/harness.js';

const Approval = z.object({ ok: z.boolean(), by: z.string() });

function approvalPipeline(o: { timeoutMs?: number; onTimeout?: 'fail' | 'continue' } = {}) {
  return prepare(
    definePipeline({
      name: `approve-${o.timeoutMs ?? 'never'}-${o.onTimeout ?? 'fail'}`,
      version: '1',
      input: z.object({ amount: z.number() }),
      steps: [
        step({ name: 'draft', run: (c) => ({ amount: (c.input as { amount: number }).amount }) }),
        wait({ name: 'approval', signal: 'approve', schema: Approval, ...o }),
        step({ name: 'after', run: (c) => ({ approval: c.outputs.approval }) }),
      ],
    }),
  );
}

describe('wait for a signal', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await harness();
  });
  afterAll(() => h.close());

  it('parks the run as waiting (no drive held), then a signal finishes it; the signal is in the log', async () => {
    const p = approvalPipeline();
    const r = await h.runtime().start(p, { input: { amount: 30 }, runId: 'w-1' });
    expect(r.status).toBe('waiting');
    expect(r.waiting).toMatchObject({ step: 'approval', signal: 'approve', until: null });
    expect((await h.store.log.getRun('w-1'))?.status).toBe('waiting');
    expect((await h.store.waits.waiting(10)).map((w) => w.runId)).toContain('w-1');
    // Driving it again without a signal changes nothing.
    const again = await h.runtime().drive(p, 'w-1');
    expect(again.status).toBe('waiting');
    expect(again.seq).toBe(r.seq);
    await sendSignal(
      h.store,
      p,
      'w-1',
      'approve',
      { ok: true, by: 'ana' },
      { by: 'ana', now: 1234 },
    );
    const done = await h.runtime().drive(p, 'w-1');
    expect(done.status).toBe('completed');
    expect(done.outputs.after).toEqual({ approval: { ok: true, by: 'ana' } });
    const sig = ofType(await h.events('w-1'), 'SIGNAL');
    expect(sig.map((e) => e.event)).toEqual([
      {
        type: 'SIGNAL',
        step: 'approval',
        signal: 'approve',
        payload: { ok: true, by: 'ana' },
        by: 'ana',
        at: 1234,
      },
    ]);
    // Taken: nothing kept, nothing scheduled.
    expect(await h.store.waits.getSignal('w-1', 'approve')).toBeUndefined();
    expect((await h.store.waits.waiting(10)).map((w) => w.runId)).not.toContain('w-1');
  });

  it('refuses a bad payload with the reason and keeps waiting; refuses an unknown signal', async () => {
    const p = approvalPipeline();
    await h.runtime().start(p, { input: { amount: 1 }, runId: 'w-bad' });
    await expect(
      sendSignal(h.store, p, 'w-bad', 'approve', { ok: 'yes' }, { now: 1 }),
    ).rejects.toThrow(/ok: .*boolean.*by: .*the run keeps waiting/);
    await expect(sendSignal(h.store, p, 'w-bad', 'nope', {}, { now: 1 })).rejects.toThrow(
      "has no wait step for signal 'nope': its waits take 'approve'",
    );
    expect(await h.store.waits.getSignal('w-bad', 'approve')).toBeUndefined();
    expect((await h.runtime().drive(p, 'w-bad')).status).toBe('waiting');
  });

  it('keeps a signal sent before the run reaches the wait, and applies it when it arrives', async () => {
    const p = approvalPipeline();
    const id = await h.runtime().create(p, { input: { amount: 2 }, runId: 'w-early' });
    await sendSignal(h.store, p, id, 'approve', { ok: false, by: 'bo' }, { by: 'bo', now: 5 });
    const r = await h.runtime().drive(p, id);
    expect(r.status).toBe('completed');
    expect(r.outputs.approval).toEqual({ ok: false, by: 'bo' });
    await expect(
      sendSignal(h.store, p, id, 'approve', { ok: true, by: 'x' }, { now: 6 }),
    ).rejects.toThrow('is completed: no wait takes a signal any more');
  });

  it('a timeout wakes the run through the sweep: continue (output null) or fail', async () => {
    // A clock the test moves: the timeout passes when the test says, not when the machine is slow.
    let t = Date.now();
    const clock = {
      now: () => t,
      sleep: (ms: number) => new Promise<void>((r) => setTimeout(r, Math.min(ms, 50))),
    };
    const rt = () => h.runtime({ clock });
    const cont = approvalPipeline({ timeoutMs: 60_000, onTimeout: 'continue' });
    const fail = approvalPipeline({ timeoutMs: 60_000, onTimeout: 'fail' });
    expect((await rt().start(cont, { input: { amount: 3 }, runId: 'w-to-c' })).status).toBe(
      'waiting',
    );
    expect((await rt().start(fail, { input: { amount: 3 }, runId: 'w-to-f' })).status).toBe(
      'waiting',
    );
    const byId: Record<string, ReturnType<typeof approvalPipeline>> = {
      'w-to-c': cont,
      'w-to-f': fail,
    };
    const sweep = new WakeSweep({
      store: h.store,
      logger: silentLogger,
      now: () => t,
      wake: async (id) => {
        const pp = byId[id];
        if (pp !== undefined) await rt().drive(pp, id);
      },
    });
    // Before the timeout nothing is due.
    expect(await sweep.tick()).toBe(0);
    t += 60_001;
    await expect
      .poll(
        async () => {
          await sweep.tick();
          return [
            (await h.store.log.getRun('w-to-c'))?.status,
            (await h.store.log.getRun('w-to-f'))?.status,
          ];
        },
        { timeout: 30_000, interval: 100 },
      )
      .toEqual(['completed', 'failed']);
    const c = await rt().rebuild(cont, 'w-to-c');
    expect(c.snapshot.context.outputs.approval).toBeNull();
    const f = await rt().rebuild(fail, 'w-to-f');
    expect(f.snapshot.context.error).toMatchObject({ step: 'approval', kind: 'timeout' });
  });
});

describe('durable sleep', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await harness();
  });
  afterAll(() => h.close());

  it('records its wake-up time, holds no process, and is woken by the sweep once due', async () => {
    const p = prepare(
      definePipeline({
        name: 'sleeper',
        version: '1',
        input: z.object({}),
        steps: [sleep({ name: 'nap', forMs: 2_500 }), step({ name: 'up', run: () => 'awake' })],
      }),
    );
    const before = Date.now();
    const r = await h.runtime().start(p, { input: {}, runId: 's-1' });
    expect(r.status).toBe('waiting');
    const started = ofType(await h.events('s-1'), 'SLEEP_STARTED')[0]?.event;
    expect(started?.until).toBeGreaterThanOrEqual(before + 2_500);
    const sweep = new WakeSweep({
      store: h.store,
      logger: silentLogger,
      wake: async (id) => {
        await h.runtime().drive(p, id);
      },
    });
    // Not due yet (unless this machine is very slow): nothing woken before its time.
    if (Date.now() < (started?.until ?? 0) - 500) expect(await sweep.tick()).toBe(0);
    await expect
      .poll(
        async () => {
          await sweep.tick();
          return (await h.store.log.getRun('s-1'))?.status;
        },
        { timeout: 30_000, interval: 200 },
      )
      .toBe('completed');
    const wake = ofType(await h.events('s-1'), 'WAKE')[0];
    expect(wake?.event.at).toBeGreaterThanOrEqual(started?.until ?? Infinity);
  });
});

describe('two processes', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await harness();
  });
  afterAll(() => h.close());

  it('one process drives into the wait and exits; another sends the signal and finishes the run; a bad payload is refused', async () => {
    const sink = join(h.dir, 'refunds.txt');
    const env = { ANTHROPIC_BASE_URL: h.fake.url };
    const first = await plumbline(
      [
        'run',
        'test/fixtures/pipelines/approval.ts',
        '--input',
        JSON.stringify({ amount: 40, sink }),
        '--store',
        h.dbPath,
        '--run-id',
        'two-1',
      ],
      env,
    );
    expect(first.code, first.stderr).toBe(3);
    expect(first.stdout).toContain("waits for signal 'approve'");
    expect(existsSync(sink)).toBe(false);
    const bad = await plumbline(
      ['signal', 'two-1', 'approve', '--data', '{"ok":1}', '--store', h.dbPath],
      env,
    );
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('refused');
    const ok = await plumbline(
      [
        'signal',
        'two-1',
        'approve',
        '--data',
        '{"ok":true,"by":"ana"}',
        '--by',
        'ana',
        '--store',
        h.dbPath,
      ],
      env,
    );
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toContain('run two-1 completed');
    expect(readFileSync(sink, 'utf8')).toBe('two-1 40 ana\n');
  });
});
