/**
 * Kill switches and limits: budget reservation, the iteration cap, the shared circuit breaker,
 * a kill from another process, and grep-able decision logs with no secret in them.
 */
import { spawn } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { definePipeline, llm } from '../src/machines/pipeline.js';
import { Breakers } from '../src/runtime/breakers.js';
import { prepare } from '../src/runtime/prepare.js';
import { openSqliteStore } from '../src/store/sqlite.js';
import { ROOT, ndjson, plumbline } from './helpers/cli.js';
import { harness, ofType, type Harness } from './helpers/harness.js';

describe('budget cap', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await harness({ usage: { input_tokens: 80, output_tokens: 450 } });
  });
  afterAll(() => h.close());

  it('parks before the call that would cross $0.01, spends ≤ the cap, and completes after resume --budget-usd 0.05', async () => {
    const env = { ANTHROPIC_BASE_URL: h.fake.url };
    const r = await plumbline(
      [
        'run',
        'test/fixtures/pipelines/budgeted.ts',
        '--input',
        '{"topic":"cats"}',
        '--budget-usd',
        '0.01',
        '--store',
        h.dbPath,
        '--json',
        '--run-id',
        'budget-1',
      ],
      env,
    );
    expect(r.code, r.stderr).toBe(3);
    const summary = ndjson(r.stdout).at(-1) as {
      status: string;
      costUsd: number;
      parked: { reason: string };
    };
    expect(summary.status).toBe('parked');
    expect(summary.parked.reason).toBe('budget');
    expect(summary.costUsd).toBeLessThanOrEqual(0.01);
    const events = await h.events('budget-1');
    const attempts = ofType(events, 'ATTEMPT');
    const responses = ofType(events, 'MODEL_RESPONSE');
    // Every call that was let through reached the server; the refused one did not.
    expect(h.fake.count).toBe(responses.length);
    expect(attempts.length).toBe(responses.length + 1);
    const refused = attempts.at(-1)?.event;
    expect(summary.costUsd + (refused?.estimate.usd ?? 0)).toBeGreaterThan(0.01);
    // Each call's actual cost stayed within what it reserved.
    for (const [i, resp] of responses.entries())
      expect(resp.event.costUsd).toBeLessThanOrEqual(attempts[i]?.event.estimate.usd ?? 0);
    expect(responses.length).toBeGreaterThanOrEqual(2);

    const resumed = await plumbline(
      ['resume', 'budget-1', '--budget-usd', '0.05', '--store', h.dbPath, '--json'],
      env,
    );
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(ndjson(resumed.stdout)[0]).toMatchObject({ status: 'completed' });
    expect(h.fake.count).toBe(5);
    const all = await h.events('budget-1');
    expect(ofType(all, 'RESUME')[0]?.event.budgetUsd).toBe(0.05);
  });
});

describe('iteration cap', () => {
  it('stops a model that keeps answering invalid output at exactly the cap', async () => {
    await using h = await harness({
      script: () => ({ kind: 'json', value: { n: 'not a number' } }),
    });
    const env = { ANTHROPIC_BASE_URL: h.fake.url };
    const r = await plumbline(
      [
        'run',
        'test/fixtures/pipelines/stubborn.ts',
        '--max-iterations',
        '5',
        '--store',
        h.dbPath,
        '--json',
        '--run-id',
        'iter-1',
      ],
      env,
    );
    expect(r.code, r.stderr).toBe(3);
    expect(ndjson(r.stdout).at(-1)).toMatchObject({
      status: 'parked',
      parked: { reason: 'iterations' },
    });
    expect(h.fake.count).toBe(5);
    const more = await plumbline(
      ['resume', 'iter-1', '--max-iterations', '7', '--store', h.dbPath, '--json'],
      env,
    );
    expect(more.code).toBe(3);
    expect(h.fake.count).toBe(7);
  });
});

describe('circuit breaker across runs', () => {
  it('opens on 529s, parks further runs without a request, closes on the half-open probe, and resumed runs complete', async () => {
    await using h = await harness({ script: () => ({ kind: 'status', status: 529 }) });
    const breakerConfig = {
      window: 10,
      minCalls: 5,
      failureRate: 0.5,
      consecutive: 5,
      coolDownMs: 2_500,
      probeTimeoutMs: 5_000,
    };
    // Resumed by hand here (auto-resume has its own test: breakerResume.int.test.ts).
    const rt = h.runtime({ breakerConfig, killPollMs: 20, random: () => 1, autoResume: false });
    const p = prepare(
      definePipeline({
        name: 'fleet',
        version: '1',
        input: z.object({ i: z.number() }),
        retry: { maxAttempts: 10, baseMs: 800, maxBackoffMs: 800 },
        steps: [
          llm({
            name: 'ask',
            model: 'claude-sonnet-4-6',
            prompt: ({ input }) => `q${(input as { i: number }).i}`,
            output: z.object({ ok: z.boolean() }),
          }),
        ],
      }),
    );
    // Five runs at once trip the breaker (five consecutive 529s) and park on their retry.
    const first = await Promise.all(
      [0, 1, 2, 3, 4].map((i) => rt.start(p, { input: { i }, runId: `fleet-${i}` })),
    );
    expect(first.map((r) => `${r.status}:${r.parked?.reason}`)).toEqual(
      Array(5).fill('parked:breaker'),
    );
    expect(h.fake.count).toBe(5);
    const gate = new Breakers(h.store.control, breakerConfig);
    expect((await gate.state('claude-sonnet-4-6')).state).toBe('open');
    // Fifteen more runs at once park without calling: the server sees no new request.
    const rest = await Promise.all(
      Array.from({ length: 15 }, (_, k) =>
        rt.start(p, { input: { i: k + 5 }, runId: `fleet-${k + 5}` }),
      ),
    );
    expect(rest.every((r) => r.status === 'parked' && r.parked?.reason === 'breaker')).toBe(true);
    expect(h.fake.count).toBe(5);
    // The provider recovers; after the cool-down one probe goes through and closes the breaker.
    h.fake.setScript(() => ({ kind: 'json', value: { ok: true } }));
    await new Promise((r) => setTimeout(r, 2_600));
    const probe = await rt.resume(p, 'fleet-0');
    expect(probe.status).toBe('completed');
    expect(ofType(await h.events('fleet-0'), 'ATTEMPT').at(-1)?.event.breaker).toBe('half_open');
    expect((await gate.state('claude-sonnet-4-6')).state).toBe('closed');
    expect(h.fake.count).toBe(6);
    const resumed = await Promise.all(
      Array.from({ length: 19 }, (_, k) => rt.resume(p, `fleet-${k + 1}`)),
    );
    expect(resumed.every((r) => r.status === 'completed')).toBe(true);
    expect(h.fake.count).toBe(25);
  });
});

describe('manual kill', () => {
  it('kill from a second process stops a run waiting in backoff within one second', async () => {
    await using h = await harness({
      script: () => ({ kind: 'status', status: 429, headers: { 'retry-after': '30' } }),
    });
    const child = spawn(
      process.execPath,
      [
        'bin/plumbline.mjs',
        'run',
        'test/fixtures/pipelines/patient.ts',
        '--store',
        h.dbPath,
        '--run-id',
        'kill-1',
        '--json',
      ],
      {
        cwd: ROOT,
        env: { ...process.env, ANTHROPIC_BASE_URL: h.fake.url, PLUMBLINE_LOG_LEVEL: 'warn' },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let stdout = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    const exited = new Promise<number | null>((r) => child.on('close', (code) => r(code)));
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline && ofType(await h.events('kill-1'), 'MODEL_ERROR').length === 0)
      await new Promise((r) => setTimeout(r, 50));
    expect(ofType(await h.events('kill-1'), 'MODEL_ERROR')[0]?.event.delayMs).toBe(30_000);
    const k = await plumbline(['kill', 'kill-1', '--reason', 'runaway', '--store', h.dbPath]);
    expect(k.code, k.stderr).toBe(0);
    expect(await exited).toBe(3);
    const events = await h.events('kill-1');
    const kill = ofType(events, 'KILL')[0];
    expect(kill?.event.reason).toBe('runaway');
    const flag = await h.store.control.getKill('kill-1');
    expect((kill?.at ?? Infinity) - (flag?.at ?? 0)).toBeLessThan(1_000);
    expect(ndjson(stdout).at(-1)).toMatchObject({ status: 'killed' });
    expect(h.fake.count).toBe(1);
    // A killed run never resumes.
    const again = await plumbline(['resume', 'kill-1', '--store', h.dbPath]);
    expect(again.code).toBe(3);
    expect(again.stdout).toMatch(/already killed/);
  });
});

describe('kill of a run nobody drives', () => {
  it('records KILL itself after a short grace when no process picks the flag up', async () => {
    await using h = await harness();
    const { Runtime } = await import('../src/runtime/driver.js');
    const { loadPipeline } = await import('../src/runtime/load.js');
    await new Runtime({ store: h.store }).create(
      await loadPipeline('test/fixtures/pipelines/patient.ts'),
      { input: {}, runId: 'orphan-1' },
    );
    const k = await plumbline([
      'kill',
      'orphan-1',
      '--reason',
      'stuck',
      '--store',
      h.dbPath,
      '--json',
    ]);
    expect(ndjson(k.stdout)[0]).toMatchObject({
      runId: 'orphan-1',
      killed: true,
      status: 'killed',
    });
    expect(ofType(await h.events('orphan-1'), 'KILL')[0]?.event.reason).toBe('stuck');
    expect(h.fake.count).toBe(0);
  });
});

describe('observability', () => {
  it('logs every decision with its run id, and the API key appears in no log line and no event', async () => {
    const key = 'sk-ant-api03-SECRETSECRET-0123456789abcdef';
    await using h = await harness({
      script: (req) =>
        JSON.stringify(req.body).includes('Classify')
          ? { kind: 'json', value: { category: 'question', urgency: 2, summary: 'a question' } }
          : { kind: 'valid' },
    });
    const outbox = join(h.dir, 'outbox');
    const r = await plumbline(
      [
        'run',
        'examples/triage.ts',
        '--input',
        '{"id":"T-9","from":"a@b.c","subject":"hi","body":"a question"}',
        '--store',
        h.dbPath,
        '--run-id',
        'logs-1',
      ],
      {
        ANTHROPIC_API_KEY: key,
        ANTHROPIC_BASE_URL: h.fake.url,
        PLUMBLINE_LOG_LEVEL: 'info',
        PLUMBLINE_OUTBOX: outbox,
      },
    );
    expect(r.code, r.stderr).toBe(0);
    const auth = h.fake.requests[0]?.headers;
    expect(`${String(auth?.['x-api-key'])} ${String(auth?.authorization)}`).toContain(key);
    const lines = r.stderr
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const events = await h.events('logs-1');
    for (const e of events) {
      const line = lines.find(
        (l) => l.seq === e.seq && l.event === e.event.type && l.runId === 'logs-1',
      );
      expect(line, `no log line for seq ${e.seq} ${e.event.type}`).toBeDefined();
      expect(typeof line?.decision).toBe('string');
      expect(typeof line?.reason).toBe('string');
      expect(line?.pipeline).toBe('triage');
    }
    const skip = lines.filter((l) => l.decision === 'skip');
    expect(skip.map((l) => [l.step, l.reason])).toEqual([
      ['draft', 'urgency 2 below threshold 3'],
      ['escalate', 'urgency 2 below threshold 3'],
    ]);
    expect(lines.find((l) => l.event === 'ATTEMPT')).toMatchObject({
      step: 'classify',
      attempt: 1,
      decision: 'call',
    });
    // The key is nowhere: not in stdout, stderr, the log events, or the database files.
    expect(r.stdout + r.stderr).not.toContain(key);
    expect(JSON.stringify(events)).not.toContain(key);
    for (const f of readdirSync(h.dir).filter((x) => x.startsWith('store.db'))) {
      expect(readFileSync(join(h.dir, f)).includes(Buffer.from(key)), f).toBe(false);
    }
    const s = openSqliteStore(h.dbPath);
    expect(JSON.stringify(await s.log.readAll(0, 10_000))).not.toContain(key);
    await s.close();
  });
});
