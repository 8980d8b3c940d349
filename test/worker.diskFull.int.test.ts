/**
 * A worker whose store fills up mid-work: real SQLITE_FULL errors (the worker's own connections
 * are capped with `PRAGMA max_page_count`), then space is "freed" (the cap raised). The worker
 * must not die, must say once which file and what to do, must not burn the commands' deliveries
 * into the dead-letter queue, and must finish every run once the store accepts writes again.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type Database from 'better-sqlite3';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { openSqliteBus } from '../src/bus/sqlite.js';
import { Runtime } from '../src/runtime/driver.js';
import { loadPipelines } from '../src/runtime/load.js';
import { runWorker } from '../src/runtime/worker.js';
import { openSqliteStore } from '../src/store/sqlite.js';

interface Line {
  level: number;
  msg: string;
  store?: string;
  fix?: string;
  decision?: string;
}

const until = async (what: string, ok: () => boolean | Promise<boolean>, ms = 90_000) => {
  const deadline = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
};

describe('worker on a full disk', () => {
  it('pauses with one clear error, loses nothing, and finishes every run when space is freed', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'plumbline-full-'));
    const dbPath = join(dir, 'plumbline.db');
    const conns: Database.Database[] = [];
    const keep = (db: Database.Database): void => void conns.push(db);
    const store = openSqliteStore(dbPath, { connection: keep });
    const bus = openSqliteBus(dbPath, { ackWaitMs: 2_000, connection: keep });
    const lines: Line[] = [];
    const logger = pino(
      { level: 'info' },
      { write: (s: string) => void lines.push(JSON.parse(s) as Line) },
    );
    const runtime = new Runtime({ store, logger });
    const pipelines = await loadPipelines(['test/fixtures/pipelines/bulky.ts']);
    const downs: boolean[] = [];
    const ac = new AbortController();
    const N = 24;
    try {
      for (let i = 0; i < N; i++)
        await bus.publishStart({ runId: `full-${i}`, pipeline: 'bulky', input: { i } });
      const worker = runWorker({
        runtime,
        bus,
        pipelines,
        concurrency: 4,
        signal: ac.signal,
        logger,
        heartbeatMs: 100,
        strandedCheckMs: 200,
        strandedAfterMs: 60_000,
        onStoreDown: (d) => void downs.push(d),
      });
      const completed = async (): Promise<number> =>
        (await store.log.listRuns({ status: 'completed' })).length;
      await until('a few runs to complete', async () => (await completed()) >= 2);

      // The disk is full: no new page for any of the worker's connections.
      expect(conns.length).toBeGreaterThanOrEqual(2);
      for (const c of conns)
        c.pragma(`max_page_count = ${c.pragma('page_count', { simple: true }) as number}`);
      await until('the worker to report the full store', () =>
        lines.some((l) => l.msg.startsWith('store unavailable')),
      );
      // Stay full for a while: long enough for commands to be tried again and again.
      const fullFor = Date.now() + 6_000;
      await until('six seconds of full disk', () => Date.now() > fullFor);
      const doneWhileFull = await completed();
      expect(doneWhileFull).toBeLessThan(N);

      // Space freed.
      for (const c of conns) c.pragma('max_page_count = 1073741823');
      await until('every run to complete', async () => (await completed()) === N);
      ac.abort();
      await worker; // Resolves: the worker never died.

      const first = lines.find((l) => l.msg.startsWith('store unavailable')) as Line;
      expect(first.level).toBe(50); // error
      expect(first.store).toBe(dbPath);
      expect(first.msg).toContain(`free space on the disk holding ${dbPath}`);
      expect(first.decision).toBe('pause');
      // One error line per outage, not one per poll or per failed command.
      expect(
        lines.filter((l) => l.level >= 50 && l.msg.startsWith('store unavailable')),
      ).toHaveLength(1);
      expect(lines.some((l) => l.msg === 'store available: worker resumed')).toBe(true);
      expect(downs[0]).toBe(true);
      expect(downs.at(-1)).toBe(false);
      expect(
        lines.some((l) => /unexpected|SqliteError/.test(JSON.stringify(l)) && l.level >= 50),
      ).toBe(false);
      // Nothing lost: every run completed, nothing dead-lettered, each event once.
      expect(await bus.deadLetters()).toEqual([]);
      for (let i = 0; i < N; i++) {
        const events = await store.log.read(`full-${i}`);
        expect(events.map((e) => e.seq)).toEqual(events.map((_, k) => k + 1));
        expect(events.at(-1)?.state.status).toBe('completed');
      }
    } finally {
      ac.abort();
      await bus.close();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 180_000);
});

describe('worker whose store file is deleted', () => {
  it('stops taking work and says which file, instead of serving a file nobody reads', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'plumbline-gone-'));
    const dbPath = join(dir, 'plumbline.db');
    const store = openSqliteStore(dbPath);
    const bus = openSqliteBus(dbPath, { ackWaitMs: 2_000 });
    const lines: Line[] = [];
    const logger = pino(
      { level: 'info' },
      { write: (s: string) => void lines.push(JSON.parse(s) as Line) },
    );
    const runtime = new Runtime({ store, logger });
    const pipelines = await loadPipelines(['test/fixtures/pipelines/bulky.ts']);
    const ac = new AbortController();
    let ended = false;
    try {
      await bus.publishStart({ runId: 'g-0', pipeline: 'bulky', input: { i: 0 } });
      const worker = runWorker({
        runtime,
        bus,
        pipelines,
        concurrency: 2,
        signal: ac.signal,
        logger,
      });
      void worker.finally(() => (ended = true));
      await until(
        'the first run',
        async () => (await store.log.getRun('g-0'))?.status === 'completed',
      );
      for (const f of [dbPath, `${dbPath}-wal`, `${dbPath}-shm`]) rmSync(f, { force: true });
      // The next `start` makes a new file at the same path: the worker must not serve the old one.
      const other = openSqliteBus(dbPath);
      await other.publishStart({ runId: 'g-1', pipeline: 'bulky', input: { i: 1 } });
      await until('the worker to report the vanished file', () =>
        lines.some((l) => l.msg.startsWith('store unavailable')),
      );
      const line = lines.find((l) => l.msg.startsWith('store unavailable')) as Line;
      expect(line.level).toBe(50);
      expect(line.store).toBe(dbPath);
      expect(line.msg).toContain(
        `the store file ${dbPath} was deleted or replaced while plumbline was running: restore it or restart`,
      );
      await new Promise((r) => setTimeout(r, 1_000));
      expect(ended).toBe(false); // Alive, paused: not dead, not serving.
      expect(lines.filter((l) => l.msg === 'store available: worker resumed')).toHaveLength(0);
      await other.close();
      ac.abort();
      await worker;
      // The run queued in the new file is still there for a worker started on it.
      const fresh = openSqliteStore(dbPath);
      expect(await fresh.log.getRun('g-1')).toBeUndefined();
      await fresh.close();
    } finally {
      ac.abort();
      await bus.close();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});
