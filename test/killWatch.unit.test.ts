/**
 * The kill watcher asks the store once per tick for every watched run, and wakes only the
 * runs whose flag is set.
 */
import { describe, expect, it } from 'vitest';
import { KillWatcher } from '../src/runtime/killWatch.js';
import { openSqliteStore } from '../src/store/sqlite.js';
import type { ControlStore } from '../src/store/types.js';

describe('kill watcher', () => {
  it('polls once for 1,000 waiting runs and wakes the killed one', async () => {
    const store = openSqliteStore(':memory:');
    let batched = 0;
    let single = 0;
    const control: ControlStore = {
      ...store.control,
      getKills: async (ids) => {
        batched += 1;
        return store.control.getKills?.(ids) ?? [];
      },
      getKill: async (id) => {
        single += 1;
        return store.control.getKill(id);
      },
    };
    const w = new KillWatcher(control, 20);
    const woken: string[] = [];
    const stops = Array.from({ length: 1000 }, (_, i) =>
      w.watch(`r${i}`, (f) => woken.push(`${f.runId}:${f.reason}`)),
    );
    await new Promise((r) => setTimeout(r, 70));
    expect(woken).toEqual([]);
    await store.control.setKill({ runId: 'r417', reason: 'stop', at: 1 });
    await new Promise((r) => setTimeout(r, 70));
    expect(woken).toEqual(['r417:stop']);
    expect(single).toBe(0);
    expect(batched).toBeGreaterThanOrEqual(3);
    expect(batched).toBeLessThanOrEqual(8);
    stops.forEach((s) => s());
    const after = batched;
    await new Promise((r) => setTimeout(r, 60));
    expect(batched).toBe(after);
    await store.close();
  });
});
