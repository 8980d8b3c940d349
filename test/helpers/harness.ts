import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BreakerConfig } from '../../src/machines/breaker.js';
import type { StoredEnvelope } from '../../src/machines/events.js';
import { createAnthropicClient } from '../../src/model/anthropic.js';
import { Breakers } from '../../src/runtime/breakers.js';
import type { Clock } from '../../src/runtime/clock.js';
import { Runtime, type RuntimeOptions } from '../../src/runtime/driver.js';
import { openSqliteStore } from '../../src/store/sqlite.js';
import type { Store } from '../../src/store/types.js';
import {
  startFakeClaude,
  type FakeBatchOptions,
  type FakeClaude,
  type FakeScript,
  type FakeUsage,
} from '../../src/testing/index.js';

/** A store in a temp dir, a fake Claude, and runtimes wired to both. */
export interface Harness extends AsyncDisposable {
  dir: string;
  dbPath: string;
  store: Store;
  fake: FakeClaude;
  runtime(extra?: Partial<RuntimeOptions> & { breakerConfig?: Partial<BreakerConfig> }): Runtime;
  events(runId: string): Promise<StoredEnvelope[]>;
  close(): Promise<void>;
}

/** Starts a harness. */
export async function harness(
  opts: {
    script?: FakeScript;
    usage?: FakeUsage;
    clock?: Clock;
    /** How the fake's Message Batches progress (see FakeBatchOptions). */
    batches?: FakeBatchOptions;
  } = {},
): Promise<Harness> {
  const dir = mkdtempSync(join(tmpdir(), 'plumbline-h-'));
  const dbPath = join(dir, 'store.db');
  // Tests check every envelope the runtime writes (production skips it: issue 14).
  const store = openSqliteStore(dbPath, { validateAppends: true });
  const fake = await startFakeClaude({
    ...(opts.script ? { script: opts.script } : {}),
    ...(opts.usage ? { usage: opts.usage } : {}),
    ...(opts.batches ? { batches: opts.batches } : {}),
  });
  const model = createAnthropicClient({ apiKey: 'sk-ant-test-harness', baseURL: fake.url });
  const close = async (): Promise<void> => {
    await fake.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  };
  return {
    dir,
    dbPath,
    store,
    fake,
    runtime: (extra = {}) => {
      const { breakerConfig, ...rest } = extra;
      return new Runtime({
        store,
        model,
        ...(opts.clock ? { clock: opts.clock } : {}),
        ...(breakerConfig ? { breakers: new Breakers(store.control, breakerConfig) } : {}),
        ...rest,
      });
    },
    events: (runId) => store.log.read(runId),
    close,
    [Symbol.asyncDispose]: close,
  };
}

/** The events of a given type. */
export function ofType<T extends StoredEnvelope['event']['type']>(
  events: StoredEnvelope[],
  type: T,
): Array<StoredEnvelope & { event: Extract<StoredEnvelope['event'], { type: T }> }> {
  return events.filter((e) => e.event.type === type) as never;
}
