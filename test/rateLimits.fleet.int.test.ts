/**
 * Shared provider rate limits across a fleet: 200 concurrent one-call runs on 3 worker
 * processes (from dist/, sharing one SQLite store) against a fake Claude enforcing 60 requests
 * and 24,000 input tokens per minute (400 per request: both windows bind at 60 calls a minute)
 * and sending the anthropic-ratelimit-* headers. The workers pace their calls by the shared
 * buckets instead of being sent to get 429s: after the first minute at most 2 % of requests
 * are refused, throughput stays within 15 % of the limit, the breaker never opens, and every
 * run completes. Takes about 3 minutes of real time (the limit sets the pace).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openSqliteBus } from '../src/bus/sqlite.js';
import { Breakers } from '../src/runtime/breakers.js';
import { openSqliteStore } from '../src/store/sqlite.js';
import type { Store } from '../src/store/types.js';
import { startFakeClaude, type FakeClaude } from '../src/testing/index.js';
import { spawnWorker, type WorkerProc } from './helpers/worker.js';

const PIPELINE = 'test/fixtures/pipelines/oneCall.ts';
const MODEL = 'claude-haiku-4-5';
const RUNS = 200;
const RPM = 60;
const INPUT_TOKENS = 400;
const ITPM = RPM * INPUT_TOKENS;
const MINUTE = 60_000;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

let dir: string;
let db: string;
let fake: FakeClaude;
let store: Store;
const workers: WorkerProc[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'plumbline-rate-fleet-'));
  db = join(dir, 'fleet.db');
  fake = await startFakeClaude({
    usage: { input_tokens: INPUT_TOKENS, output_tokens: 20 },
    rateLimits: { requestsPerMinute: RPM, inputTokensPerMinute: ITPM },
    script: (req) => {
      const m = req.body.messages as Array<{ content: string }>;
      return { kind: 'json', value: { label: `${m[0]?.content ?? ''}-ok` } };
    },
  });
  store = openSqliteStore(db);
});

afterAll(async () => {
  for (const w of workers)
    if (w.child.exitCode === null && w.child.signalCode === null) w.child.kill('SIGKILL');
  await Promise.all(workers.map((w) => w.exited));
  await store?.close();
  await fake?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('shared rate limits across a fleet', () => {
  it(
    `${RUNS} runs on 3 workers against ${RPM} requests/min: few 429s after the first minute, throughput at the limit, breaker closed`,
    async () => {
      for (let i = 0; i < 3; i++)
        workers.push(
          await spawnWorker({
            name: `w${i}`,
            store: db,
            pipelines: PIPELINE,
            // Every run in flight at once (3 × 70 ≥ 200): the pacing, not the queue, holds them.
            concurrency: 70,
            env: { ANTHROPIC_BASE_URL: fake.url, ANTHROPIC_API_KEY: 'sk-ant-fleet-test' },
            args: ['--rate-limits'],
          }),
        );
      const bus = openSqliteBus(db);
      for (let i = 0; i < RUNS; i++)
        await bus.publishStart({ runId: `r-${i}`, pipeline: 'oneCall', input: { id: `r-${i}` } });
      const done = async (): Promise<number> =>
        (await store.log.listRuns({ status: ['completed', 'failed', 'killed', 'parked'] })).length;
      // 60 at once, then one a second: about 2.5 minutes; generous for a loaded machine.
      const deadline = Date.now() + 10 * MINUTE;
      while ((await done()) < RUNS) {
        if (Date.now() > deadline)
          throw new Error(
            `${await done()}/${RUNS} runs ended\n${workers.map((w) => w.output().slice(-2_000)).join('\n---\n')}`,
          );
        await sleep(1_000);
      }
      await bus.close();

      const runs = await store.log.listRuns({});
      expect(runs.filter((r) => r.status === 'completed')).toHaveLength(RUNS);
      // The breaker never opened: closed, never opened, no run parked on it.
      expect(await new Breakers(store.control).state(MODEL)).toMatchObject({
        state: 'closed',
        opens: 0,
      });
      const logged = workers.flatMap((w) => w.lines);
      expect(logged.filter((l) => /breaker/i.test(l.msg) && /open/i.test(l.msg))).toEqual([]);

      // Measured at the fake: every answer and every rate-limit 429, in its time.
      const answers = [...fake.answeredAt].sort((a, b) => a - b);
      const limited = [...fake.limitedAt];
      expect(answers).toHaveLength(RUNS);
      const first = Math.min(answers[0] ?? 0, ...limited);
      const after = first + MINUTE;
      const answersAfter = answers.filter((t) => t >= after);
      const limitedAfter = limited.filter((t) => t >= after).length;
      const last = answers[answers.length - 1] ?? after;
      const perMinute = (answersAfter.length * MINUTE) / Math.max(1, last - after);
      const share = limitedAfter / Math.max(1, answersAfter.length + limitedAfter);
      console.log(
        `rate fleet: ${RUNS} runs; ${limited.length} rate-limit 429s in all, ${limitedAfter} after the first minute (${(share * 100).toFixed(2)} % of ${answersAfter.length + limitedAfter} requests); ${answersAfter.length} answers after the first minute at ${perMinute.toFixed(1)}/min (limit ${RPM}); first minute: ${answers.length - answersAfter.length} answers; total ${((last - first) / 1000).toFixed(1)} s`,
      );
      expect(answersAfter.length).toBeGreaterThan(60);
      expect(share).toBeLessThanOrEqual(0.02);
      expect(perMinute).toBeGreaterThanOrEqual(RPM * 0.85);
      // The limit held at the fake (its own buckets refuse the excess): never above it either.
      expect(perMinute).toBeLessThanOrEqual(RPM * 1.15);
    },
    15 * MINUTE,
  );
});
