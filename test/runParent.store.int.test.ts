/**
 * The run index knows each child run's parent (issue 11), on both stores: `getRun` and
 * `listRuns` carry `parent` from `run.started`; `parent: null` pages through top-level runs only
 * and `parent: <runId>` lists one run's children; a SQLite file made before child runs gets the
 * columns, filled from its logs, when opened for writing.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { childCounts, childrenOf } from '../src/client/children.js';
import type { ChildOf, NewEnvelope } from '../src/machines/events.js';
import { openJetStreamStore } from '../src/store/jetstream.js';
import { openSqliteStore } from '../src/store/sqlite.js';
import type { Store } from '../src/store/types.js';
import { started, stepDone } from './helpers/envelopes.js';
import { startNatsServer, type NatsServerHandle } from './helpers/natsServer.js';

/** A run.started of a child run. */
function childStarted(parent: ChildOf, at: number): NewEnvelope {
  const s = started('p-m', at);
  return { ...s, event: { ...s.event, parent } as NewEnvelope['event'] };
}

/** Two parents, three children, one grandchild; P1-m-1 failed, the rest completed. */
async function seed(store: Store): Promise<void> {
  const make = async (id: string, first: NewEnvelope, status: 'completed' | 'failed') => {
    await store.log.append(id, [first], 'no_stream');
    await store.log.append(id, [stepDone(1, status, 0, first.at + 1)], 1);
  };
  await make('P1', started('p', 1_000), 'completed');
  await make('P1-m-0', childStarted({ runId: 'P1', step: 'm', part: 0 }, 1_100), 'completed');
  await make('P1-m-1', childStarted({ runId: 'P1', step: 'm', part: 1 }, 1_200), 'failed');
  await make(
    'P1-m-0-x-a',
    childStarted({ runId: 'P1-m-0', step: 'x', part: 'a' }, 1_300),
    'completed',
  );
  await make('P2', started('p', 2_000), 'completed');
  await make('P2-c', childStarted({ runId: 'P2', step: 'c', part: null }, 2_100), 'completed');
  // A top-level run still going (the unfinished-runs listing path).
  await store.log.append('P3', [started('p', 3_000)], 'no_stream');
}

function describeParents(name: string, open: () => Promise<Store>): void {
  describe(`run parents: ${name}`, () => {
    let store: Store;
    beforeAll(async () => {
      store = await open();
      await seed(store);
    });
    afterAll(() => store.close());

    it('getRun and listRuns carry the parent of a child run, and none for a top-level run', async () => {
      expect((await store.log.getRun('P1-m-1'))?.parent).toEqual({
        runId: 'P1',
        step: 'm',
        part: 1,
      });
      expect((await store.log.getRun('P2-c'))?.parent).toEqual({
        runId: 'P2',
        step: 'c',
        part: null,
      });
      expect(await store.log.getRun('P1')).not.toHaveProperty('parent');
      const all = await store.log.listRuns();
      expect(all.find((r) => r.runId === 'P1-m-0-x-a')?.parent?.part).toBe('a');
      expect(all).toHaveLength(7);
    });

    it('parent: null pages through top-level runs only', async () => {
      const ids = async (f: Parameters<Store['log']['listRuns']>[0]) =>
        (await store.log.listRuns(f)).map((r) => r.runId);
      expect(await ids({ parent: null })).toEqual(['P3', 'P2', 'P1']);
      expect(await ids({ parent: null, limit: 2 })).toEqual(['P3', 'P2']);
      expect(await ids({ parent: null, limit: 2, after: 'P2' })).toEqual(['P1']);
      expect(await ids({ parent: null, status: 'running' })).toEqual(['P3']);
      expect(await ids({ parent: null, status: 'completed', limit: 5 })).toEqual(['P2', 'P1']);
    });

    it("parent: <runId> lists one run's direct children, paged", async () => {
      const ids = async (f: Parameters<Store['log']['listRuns']>[0]) =>
        (await store.log.listRuns(f)).map((r) => r.runId);
      expect(await ids({ parent: 'P1' })).toEqual(['P1-m-1', 'P1-m-0']);
      expect(await ids({ parent: 'P1', limit: 1 })).toEqual(['P1-m-1']);
      expect(await ids({ parent: 'P1', limit: 1, after: 'P1-m-1' })).toEqual(['P1-m-0']);
      expect(await ids({ parent: 'P1', status: 'failed' })).toEqual(['P1-m-1']);
      expect(await ids({ parent: 'P1-m-0' })).toEqual(['P1-m-0-x-a']);
      expect(await ids({ parent: 'P3' })).toEqual([]);
      expect(await ids({ parent: 'no-such-run' })).toEqual([]);
    });

    it('the client helpers order children by part and count them by status', async () => {
      expect((await childrenOf(store, 'P1')).map((r) => r.runId)).toEqual(['P1-m-0', 'P1-m-1']);
      const counts = await childCounts(store, ['P1', 'P2', 'P3']);
      expect(counts.get('P1')).toEqual({ total: 2, byStatus: { completed: 1, failed: 1 } });
      expect(counts.get('P2')).toEqual({ total: 1, byStatus: { completed: 1 } });
      expect(counts.has('P3')).toBe(false);
    });
  });
}

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
const tempDb = (): string => {
  const dir = mkdtempSync(join(tmpdir(), 'plumbline-parents-'));
  dirs.push(dir);
  return join(dir, 'store.db');
};

describeParents('sqlite', async () => openSqliteStore(tempDb(), { validateAppends: true }));

let server: NatsServerHandle | undefined;
afterAll(async () => server?.[Symbol.asyncDispose]());
describeParents('jetstream', async () => {
  server = await startNatsServer();
  return openJetStreamStore({ servers: server.url, validateAppends: true });
});

describe('run parents: a SQLite store made before child runs', () => {
  it('reads as all top-level read-only, and gets its parents from the logs when opened to write', async () => {
    const path = tempDb();
    const s1 = openSqliteStore(path);
    await seed(s1);
    await s1.close();
    // Back to the schema of before: no parent columns.
    const raw = new Database(path);
    raw.exec(`DROP INDEX runs_parent; DROP INDEX runs_top_started;
      ALTER TABLE runs DROP COLUMN parent; ALTER TABLE runs DROP COLUMN parent_step;
      ALTER TABLE runs DROP COLUMN parent_part;`);
    raw.close();

    const ro = openSqliteStore(path, { readonly: true });
    expect(await ro.log.listRuns({ parent: null })).toHaveLength(7);
    expect(await ro.log.listRuns({ parent: 'P1' })).toEqual([]);
    expect(await ro.log.getRun('P1-m-0')).not.toHaveProperty('parent');
    await ro.close();

    const rw = openSqliteStore(path);
    expect((await rw.log.listRuns({ parent: null })).map((r) => r.runId)).toEqual([
      'P3',
      'P2',
      'P1',
    ]);
    expect((await rw.log.getRun('P2-c'))?.parent).toEqual({ runId: 'P2', step: 'c', part: null });
    expect((await rw.log.getRun('P1-m-0-x-a'))?.parent).toEqual({
      runId: 'P1-m-0',
      step: 'x',
      part: 'a',
    });
    expect((await rw.log.listRuns({ parent: 'P1' })).map((r) => r.runId)).toEqual([
      'P1-m-1',
      'P1-m-0',
    ]);
    await rw.close();
  });
});
