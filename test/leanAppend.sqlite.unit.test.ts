/**
 * SQLite appends in one write path (issue 14): the run index row is the version check, the
 * conflict still names the log's real version, and envelopes are checked at the port only when
 * asked (`validateAppends`), while reads always check.
 */
import { describe, expect, it } from 'vitest';
import { CorruptEventError, VersionConflictError } from '../src/errors.js';
import { openSqliteStore } from '../src/store/sqlite.js';
import { started, stepDone } from './helpers/envelopes.js';

describe('sqlite append', () => {
  it('reports the version the log is at on a conflict, for every kind of stale expectation', async () => {
    const store = openSqliteStore(':memory:');
    await store.log.append('r', [started(), stepDone(1)], 'no_stream');
    for (const expected of ['no_stream', 1, 3] as const) {
      const e = await store.log.append('r', [stepDone(9)], expected).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(VersionConflictError);
      expect(e).toMatchObject({ expected, actual: 2 });
    }
    const unknown = await store.log.append('nope', [stepDone(1)], 4).catch((x: unknown) => x);
    expect(unknown).toMatchObject({ expected: 4, actual: 'unknown' });
    // A refused append left nothing behind: the index and the log still end at 2.
    expect((await store.log.read('r')).map((e) => e.seq)).toEqual([1, 2]);
    expect(await store.log.getRun('r')).toMatchObject({ lastSeq: 2, startedAt: 1_000 });
    await store.close();
  });

  it('keeps the first and last times of a run created and ended in one append', async () => {
    const store = openSqliteStore(':memory:');
    await store.log.append(
      'r',
      [started('p', 1_000), stepDone(1, 'completed', 0, 5_000)],
      'no_stream',
    );
    expect(await store.log.getRun('r')).toMatchObject({
      startedAt: 1_000,
      updatedAt: 5_000,
      endedAt: 5_000,
      status: 'completed',
      lastSeq: 2,
    });
    await store.close();
  });

  it('checks envelopes at the port only with validateAppends; reads always check', async () => {
    const bad = { ...stepDone(1), v: 2 } as unknown as ReturnType<typeof stepDone>;
    const strict = openSqliteStore(':memory:', { validateAppends: true });
    await strict.log.append('r', [started()], 'no_stream');
    await expect(strict.log.append('r', [bad], 1)).rejects.toThrow();
    expect(await strict.log.getRun('r')).toMatchObject({ lastSeq: 1 });
    await strict.close();

    const fast = openSqliteStore(':memory:');
    await fast.log.append('r', [started()], 'no_stream');
    expect(await fast.log.append('r', [bad], 1)).toBe(2);
    const read = await fast.log.read('r').catch((x: unknown) => x);
    expect(read).toBeInstanceOf(CorruptEventError);
    await fast.close();
  });
});
