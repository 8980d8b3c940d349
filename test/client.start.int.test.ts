/**
 * What `client.start` puts on the command bus (the CLI's `start` is a thin
 * caller of them): every cap, token caps included, the deadline as an absolute time, the module
 * path; `budgetUsd: 'auto'` refused without history and publishing nothing; the unknown-run hint.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Command } from '../src/bus/types.js';
import { connect, type PlumblineClient } from '../src/index.js';
import { loadPipeline } from '../src/runtime/load.js';
import { plumbline } from './helpers/cli.js';

/** Takes every queued command off the bus (acking them), waiting until `n` have come. */
async function drainBus(client: PlumblineClient, n: number): Promise<Command[]> {
  const seen: Command[] = [];
  const ac = new AbortController();
  const consuming = client.bus.consume(
    async (cmd) => {
      seen.push(cmd);
      if (seen.length >= n) ac.abort();
    },
    { concurrency: 1, signal: ac.signal },
  );
  const deadline = Date.now() + 30_000;
  while (seen.length < n && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  ac.abort();
  await consuming;
  return seen;
}

describe('client.start on the bus', () => {
  let dir: string;
  let client: PlumblineClient;
  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'plumbline-client-start-'));
    client = await connect(join(dir, 'p.db'));
  });
  afterEach(async () => {
    await client.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('publishes every cap, token caps included, a deadline as a time, and the module path', async () => {
    const prepared = await loadPipeline('test/fixtures/pipelines/stubborn.ts');
    const before = Date.now();
    const r = await client.start(
      prepared.pipeline,
      {},
      {
        runId: 'caps-1',
        module: prepared.module ?? 'none',
        limits: {
          budgetUsd: 0.5,
          maxIterations: 3,
          deadlineMs: 60_000,
          maxInputTokens: 1_000,
          maxOutputTokens: 200,
        },
      },
    );
    expect(r).toEqual({ runId: 'caps-1', pipeline: 'stubborn', duplicate: false });
    const [cmd] = await drainBus(client, 1);
    expect(cmd?.type).toBe('start');
    if (cmd?.type !== 'start') return;
    expect(cmd.module).toBe(prepared.module);
    expect(cmd.limits).toMatchObject({
      budgetUsd: 0.5,
      maxIterations: 3,
      maxInputTokens: 1_000,
      maxOutputTokens: 200,
    });
    expect(cmd.limits?.deadlineAt).toBeGreaterThanOrEqual(before + 60_000);
  });

  it("budgetUsd 'auto' with no finished run is refused, and nothing is published", async () => {
    await expect(
      client.start('stubborn', {}, { runId: 'auto-1', limits: { budgetUsd: 'auto' } }),
    ).rejects.toThrow(/no finished run of pipeline 'stubborn'/);
    const r = await client.start('stubborn', {}, { runId: 'after-1' });
    const cmds = await drainBus(client, 1);
    expect(r.duplicate).toBe(false);
    expect(cmds.map((c) => c.runId)).toEqual(['after-1']);
  });

  it('the unknown-run error says how to list runs, as the caller words it', async () => {
    await expect(client.kill('nope')).rejects.toThrow(/list runs with client\.runs\(\)/);
    const cli = await connect(join(dir, 'p.db'), { listRunsHint: '`plumbline runs`' });
    try {
      await expect(cli.kill('nope')).rejects.toThrow(/list runs with `plumbline runs`/);
    } finally {
      await cli.close();
    }
  });

  it('the CLI verbs that call the client keep their wording: kill of an unknown run, start', async () => {
    const db = join(dir, 'p.db');
    const kill = await plumbline(['kill', 'nope', '--store', db]);
    expect(kill.code).toBe(2);
    expect(kill.stderr).toMatch(/unknown run id 'nope': list runs with `plumbline runs`/);
    const start = await plumbline([
      'start',
      'stubborn',
      '--run-id',
      'cli-1',
      '--max-input-tokens',
      '900',
      '--store',
      db,
    ]);
    expect(start.code).toBe(0);
    expect(start.stdout).toBe('queued run cli-1 (stubborn)\n');
    const again = await plumbline([
      'start',
      'stubborn',
      '--run-id',
      'cli-1',
      '--json',
      '--store',
      db,
    ]);
    expect(JSON.parse(again.stdout)).toEqual({
      runId: 'cli-1',
      pipeline: 'stubborn',
      duplicate: true,
    });
    const [cmd] = await drainBus(client, 1);
    expect(cmd?.type === 'start' ? cmd.limits?.maxInputTokens : undefined).toBe(900);
  });
});
