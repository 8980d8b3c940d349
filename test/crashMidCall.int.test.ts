/**
 * Cost truth at a crash (issue 15), end to end through CLI processes built in dist/: a
 * `plumbline run` process is mid-call — the fake Claude holds the call — when
 *  1. `plumbline resume` (no id, then with the run's id) runs in other processes: they leave
 *     the run to its live driver, say so, and make no call;
 *  2. the driver is SIGKILLed; the fake still answers the held call and bills it; a fresh
 *     `plumbline resume` finishes the run.
 * The ledger in the store then holds every request the fake billed that the runtime saw, at its
 * exact price, plus the killed call at exactly its reservation, flagged unconfirmed; `cost`
 * reports that part apart. Prices are Haiku 4.5's ($1 in, $5 out per million tokens).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { StoredEnvelope } from '../src/machines/events.js';
import { openSqliteStore } from '../src/store/sqlite.js';
import { startFakeClaude, type FakeAction, type FakeClaude } from '../src/testing/index.js';
import { ndjson, plumbline, ROOT } from './helpers/cli.js';

const BUDGETED = 'test/fixtures/pipelines/budgeted.ts';
/** The usage of the held call's answer (every other answer: the fake's default, 100 in, 50 out). */
const HELD_USAGE = { input_tokens: 400, output_tokens: 300 };
/** Haiku 4.5, USD per token. */
const IN = 1 / 1e6;
const OUT = 5 / 1e6;

let dir: string;
let fake: FakeClaude;
let held = 0;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'plumbline-midcall-'));
  fake = await startFakeClaude({
    script: (req): FakeAction => {
      const m = req.body.messages as Array<{ content: unknown }> | undefined;
      const prompt = JSON.stringify(m?.[0]?.content ?? '');
      const answer: FakeAction = { kind: 'json', value: { note: 'ok' } };
      // Step 'two' is held on its first call (in flight until the test flushes the fake).
      if (prompt.includes('two: ') && held++ === 0)
        return { kind: 'delay', ms: 600_000, then: { ...answer, usage: HELD_USAGE } };
      return answer;
    },
  });
});

afterAll(async () => {
  await fake.close();
  rmSync(dir, { recursive: true, force: true });
});

async function eventsOf(db: string, runId: string): Promise<StoredEnvelope[]> {
  const store = openSqliteStore(db);
  try {
    return await store.log.read(runId);
  } finally {
    await store.close();
  }
}

const poll = async (what: string, ok: () => boolean | Promise<boolean>): Promise<void> => {
  const until = Date.now() + 120_000;
  while (!(await ok())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
};

const round9 = (x: number): number => Math.round(x * 1e9) / 1e9;

it('a driver killed mid-call: resume racing it makes no call; after the kill the ledger = the billed calls it saw + the lost call at its reservation (unconfirmed)', async () => {
  const db = join(dir, 'store.db');
  const env = { ANTHROPIC_BASE_URL: fake.url, ANTHROPIC_API_KEY: 'sk-ant-test-midcall' };
  const driver = spawn(
    process.execPath,
    [
      'bin/plumbline.mjs',
      'run',
      BUDGETED,
      '--store',
      db,
      '--run-id',
      'r',
      '--input',
      '{"topic":"owls"}',
    ],
    { cwd: ROOT, env: { ...process.env, PLUMBLINE_LOG_LEVEL: 'warn', ...env }, stdio: 'ignore' },
  );
  const exited = new Promise<NodeJS.Signals | null>((r) => driver.once('exit', (_, s) => r(s)));
  await poll('the held call to reach the fake', () => held === 1);

  // 1. The driver is alive and mid-call: resume (every run, then this run) leaves it alone.
  const calls = fake.calls;
  for (const args of [['resume'], ['resume', 'r']]) {
    for (const json of [true, false]) {
      const r = await plumbline([...args, '--store', db, ...(json ? ['--json'] : [])], env);
      // Exit 1: the run is still running (elsewhere), not finished by this process.
      expect(r.code, r.stderr).toBe(1);
      if (json) {
        const [summary, ...more] = ndjson(r.stdout) as Array<{
          runId: string;
          stopped?: string;
          holder?: { owner: string };
        }>;
        expect(more).toEqual([]);
        expect(summary).toMatchObject({ runId: 'r', stopped: 'leased' });
        expect(summary?.holder?.owner.split('/')[1]).toBe(String(driver.pid));
      } else {
        expect(r.stdout).toMatch(
          /^run r is driven by \S+ \(lease token .+\): left to it, nothing done here/,
        );
      }
    }
  }
  expect(fake.calls).toBe(calls);
  expect(held).toBe(1);

  // 2. SIGKILL while the call is in flight; then the provider finishes it and bills it.
  driver.kill('SIGKILL');
  expect(await exited).toBe('SIGKILL');
  const stranded = await eventsOf(db, 'r');
  const attempt = stranded.at(-1)?.event;
  if (attempt?.type !== 'ATTEMPT') throw new Error(`expected ATTEMPT, got ${attempt?.type}`);
  expect(attempt.step).toBe('two');
  fake.flush();
  await poll('the held call to be billed', () => fake.billed.length === 2);

  const resumed = await plumbline(['resume', 'r', '--store', db, '--json'], env);
  expect(resumed.code, resumed.stderr).toBe(0);
  expect(ndjson(resumed.stdout)[0]).toMatchObject({ runId: 'r', status: 'completed' });

  // What the fake billed: 'one', the held 'two', then 'two' to 'five' again.
  const billed = fake.billed;
  expect(billed).toHaveLength(6);
  const heldBill = billed[1];
  expect(heldBill?.usage).toMatchObject(HELD_USAGE);
  const events = await eventsOf(db, 'r');
  const responses = events.flatMap((e) => (e.event.type === 'MODEL_RESPONSE' ? [e.event] : []));
  const errors = events.flatMap((e) => (e.event.type === 'MODEL_ERROR' ? [e.event] : []));
  // Every billed call the runtime saw is in the ledger once, at its exact price; the held one
  // (its answer went to a dead process) is not.
  expect(responses.map((r) => r.requestId)).toEqual(
    billed.filter((b) => b !== heldBill).map((b) => b.requestId),
  );
  for (const r of responses) {
    const bill = billed.find((b) => b.requestId === r.requestId);
    expect(r.costUsd).toBe(
      round9((bill?.usage.input_tokens ?? NaN) * IN + (bill?.usage.output_tokens ?? NaN) * OUT),
    );
    expect(r.costUsd).toBe(round9(100 * IN + 50 * OUT));
  }
  // The killed call: exactly its reservation (input reserved + 500 max output tokens), flagged.
  expect(attempt.estimate.maxTokens).toBe(500);
  // The CLI counts no tokens first: the input reserved is the request's UTF-8 byte bound.
  expect(attempt.estimate.inputTokens).toBeGreaterThan(400);
  const reservation = round9(attempt.estimate.inputTokens * IN + 500 * OUT);
  expect(attempt.estimate.usd).toBe(reservation);
  expect(errors).toEqual([
    expect.objectContaining({ kind: 'lost', unconfirmed: true, costUsd: reservation }),
  ]);
  // The reservation bounds what the provider billed for it: never counted below the truth.
  const heldPrice = round9(400 * IN + 300 * OUT);
  expect(reservation).toBeGreaterThanOrEqual(heldPrice);

  // Hand-computed totals: 5 answers at $0.00035, the lost call at its reservation.
  const confirmed = round9(5 * (100 * IN + 50 * OUT));
  expect(confirmed).toBe(0.00175);
  const total = round9(confirmed + reservation);
  expect(events.at(-1)?.state.costUsd).toBeCloseTo(total, 9);
  const cost = await plumbline(['cost', '--json', '--store', db]);
  expect(cost.code, cost.stderr).toBe(0);
  const [row, ...more] = ndjson(cost.stdout) as Array<Record<string, number | string>>;
  expect(more).toEqual([]);
  expect(row).toMatchObject({ key: 'budgeted', calls: 6, unconfirmedCalls: 1 });
  expect(Number(row?.costUsd)).toBeCloseTo(total, 9);
  expect(Number(row?.unconfirmedUsd)).toBeCloseTo(reservation, 9);
  const text = await plumbline(['cost', '--store', db]);
  expect(text.code, text.stderr).toBe(0);
  expect(text.stdout).toContain(`$${total.toFixed(6)}`);
  expect(text.stdout).toContain(`$${reservation.toFixed(6)}`);
  expect(text.stdout).toContain('1 call(s) lost mid-flight are counted at their reservation');
}, 240_000);
