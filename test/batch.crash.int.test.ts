/**
 * The batch crash test (issue 15): a process (built JS, dist/) drives a `batch: true` run; the
 * fake Claude keeps the batch in progress; once BATCH_SUBMITTED is in the log and the process
 * has polled, it is SIGKILLed, before any result was read. A fresh `plumbline resume` polls the
 * same batch (still held, then released), never submits again (one submission, counted at the
 * fake), and completes the run with the batch price recorded. The one at-least-once window is
 * shown too: a process killed after the batch was created but before BATCH_SUBMITTED was
 * appended leaves a lost call; the resumed run submits a new item (two batches at the fake).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openSqliteStore } from '../src/store/sqlite.js';
import { startFakeClaude } from '../src/testing/index.js';
import { ndjson, plumbline, ROOT, runNode } from './helpers/cli.js';

const until = async (what: string, check: () => Promise<boolean> | boolean): Promise<void> => {
  // A generous deadline for a loaded machine; the order of events is what is asserted.
  for (let i = 0; i < 1_200; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
};

describe('batch crash', () => {
  it('a run killed while its batch is in progress resumes polling that batch and never submits again', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'plumbline-batch-crash-'));
    await using fake = await startFakeClaude({
      batches: {
        hold: true,
        script: () => ({
          kind: 'json',
          value: { label: 'ok', score: 3 },
          usage: { input_tokens: 2_000, output_tokens: 100 },
        }),
      },
    });
    const storePath = join(dir, 'batch.db');
    const env = { ANTHROPIC_BASE_URL: fake.url, ANTHROPIC_API_KEY: 'test-key' };
    const store = openSqliteStore(storePath);
    try {
      const child = spawn(
        process.execPath,
        ['test/fixtures/batchCrashChild.mjs', storePath, 'bc1'],
        {
          cwd: ROOT,
          env: { ...process.env, PLUMBLINE_LOG_LEVEL: 'warn', ...env },
          stdio: 'ignore',
        },
      );
      const exited = new Promise<NodeJS.Signals | null>((res) =>
        child.on('close', (_code, signal) => res(signal)),
      );
      const types = async (): Promise<string[]> =>
        (await store.log.read('bc1')).map((e) => e.event.type);
      const polls = (): number =>
        fake.requests.filter(
          (q) => q.method === 'GET' && /^\/v1\/messages\/batches\/[^/]+$/.test(q.path),
        ).length;
      await until('BATCH_SUBMITTED in the log', async () =>
        (await types()).includes('BATCH_SUBMITTED'),
      );
      await until('a poll of the held batch', () => polls() >= 1);
      child.kill('SIGKILL');
      expect(await exited).toBe('SIGKILL');
      expect(await types()).toEqual(['run.started', 'ATTEMPT', 'BATCH_SUBMITTED']);
      expect(fake.batches).toBe(1);
      expect(fake.requests.filter((q) => q.path.endsWith('/results'))).toHaveLength(0);

      // The resumed process polls the same batch while it is still held, then it ends.
      const atKill = polls();
      const resumed = plumbline(['resume', 'bc1', '--store', storePath, '--json'], {
        ...env,
        PLUMBLINE_BATCH: '{"poll":{"minMs":50,"maxMs":200}}',
      });
      await until('the resumed process to poll', () => polls() > atKill);
      fake.holdBatches(false);
      const r = await resumed;
      expect(r.code, r.stderr).toBe(0);
      expect((ndjson(r.stdout)[0] as { status: string }).status).toBe('completed');

      expect(fake.batches).toBe(1);
      expect(fake.batchItems).toBe(1);
      expect(fake.calls).toBe(0);
      const events = await store.log.read('bc1');
      expect(events.map((e) => e.event.type)).toEqual([
        'run.started',
        'ATTEMPT',
        'BATCH_SUBMITTED',
        'MODEL_RESPONSE',
      ]);
      const submitted = events[2]!.event as { batchId: string; customId: string };
      const polled = new Set(
        fake.requests
          .filter((q) => q.path.startsWith('/v1/messages/batches/'))
          .map((q) => q.path.split('/')[4]),
      );
      expect([...polled]).toEqual([submitted.batchId]);
      // Sonnet 4.6 at the batch price: 2,000 in × $1.5 + 100 out × $7.5 per million.
      const response = events[3]!.event as { costUsd: number; verdict: string };
      expect(response.verdict).toBe('valid');
      expect(response.costUsd).toBeCloseTo((2_000 * 1.5 + 100 * 7.5) / 1_000_000, 12);
      expect((await store.log.getRun('bc1'))?.costUsd).toBeCloseTo(0.00375, 12);
    } finally {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);

  it('a run killed between the batch create and its append submits again on resume (the documented window)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'plumbline-batch-window-'));
    await using fake = await startFakeClaude({
      batches: {
        script: () => ({
          kind: 'json',
          value: { label: 'ok', score: 3 },
          usage: { input_tokens: 2_000, output_tokens: 100 },
        }),
      },
    });
    const storePath = join(dir, 'batch.db');
    const env = { ANTHROPIC_BASE_URL: fake.url, ANTHROPIC_API_KEY: 'test-key' };
    const child = await runNode(['test/fixtures/batchCrashChild.mjs', storePath, 'bw1'], {
      ...env,
      CRASH_AT: 'created',
    });
    expect(child.signal, child.stderr).toBe('SIGKILL');
    expect(fake.batches).toBe(1);
    const store = openSqliteStore(storePath);
    try {
      expect((await store.log.read('bw1')).map((e) => e.event.type)).toEqual([
        'run.started',
        'ATTEMPT',
      ]);
      const r = await plumbline(['resume', 'bw1', '--store', storePath, '--json'], {
        ...env,
        PLUMBLINE_BATCH: '{"poll":{"minMs":50,"maxMs":200}}',
      });
      expect(r.code, r.stderr).toBe(0);
      const events = await store.log.read('bw1');
      expect(events.map((e) => e.event.type)).toEqual([
        'run.started',
        'ATTEMPT',
        'MODEL_ERROR',
        'TIMER',
        'ATTEMPT',
        'BATCH_SUBMITTED',
        'MODEL_RESPONSE',
      ]);
      const lost = events[2]!.event as { kind: string; unconfirmed?: boolean; costUsd: number };
      expect([lost.kind, lost.unconfirmed]).toEqual(['lost', true]);
      // Submitted twice: the first batch's id was never recorded.
      expect(fake.batches).toBe(2);
      const first = events[1]!.event as { estimate: { usd: number } };
      expect(lost.costUsd).toBe(first.estimate.usd);
      const answer = events[6]!.event as { costUsd: number };
      expect(answer.costUsd).toBeCloseTo(0.00375, 12);
      expect((await store.log.getRun('bw1'))?.costUsd).toBeCloseTo(lost.costUsd + 0.00375, 9);
    } finally {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});
