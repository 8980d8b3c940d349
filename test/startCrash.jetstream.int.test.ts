/**
 * A JetStream writer killed (SIGKILL) while it starts runs: every run whose `run.started` is in
 * the stream is listed — among the unfinished runs (`stranded`, `resume` with no id, `runs
 * --status running`), in pages and in `runs --all` — even when the writer died before writing
 * its index entry. Before, a run listed only after its first event, and a writer that died in
 * between left a run no listing showed. The writer is a child running the built package.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { jetstreamManager } from '@nats-io/jetstream';
import { describe, expect, it } from 'vitest';
import { openJetStreamStore } from '../src/store/jetstream.js';
import { ROOT } from './helpers/cli.js';
import { started } from './helpers/envelopes.js';
import { startNatsServer } from './helpers/natsServer.js';

const BUNDLE = pathToFileURL(join(ROOT, 'dist', 'bundle', 'index.js')).href;
const ROUNDS = 5;

describe('a jetstream writer killed while it starts runs', { timeout: 240_000 }, () => {
  it('leaves every run it started listed, unfinished and in pages', async () => {
    const first = JSON.stringify(started('p', 1_000));
    let runs = 0;
    for (let round = 0; round < ROUNDS; round++) {
      await using server = await startNatsServer();
      // Four runs at a time, started one group after another until the kill.
      const script = `
        const { openStoreFromUrl } = await import(${JSON.stringify(BUNDLE)});
        const store = await openStoreFromUrl(${JSON.stringify(server.url)});
        process.stdout.write('ready\\n');
        const env = ${first};
        for (let i = 0; ; i++)
          await Promise.all([0, 1, 2, 3].map((k) => store.log.append('r' + i + '-' + k, [env], 'no_stream')));`;
      const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      const exited = new Promise((resolve) => child.on('exit', resolve));
      await new Promise<void>((resolve) =>
        child.stdout.on('data', (d: Buffer) => d.toString().includes('ready') && resolve()),
      );
      // At least this long (a different moment in each round), then killed mid-start.
      await new Promise((resolve) => setTimeout(resolve, 300 + round * 97));
      child.kill('SIGKILL');
      await exited;

      // A reader, as `runs` and `stranded` open it: it folds a missing index entry without
      // writing it, so each listing below meets the runs as the kill left them.
      const store = await openJetStreamStore({ servers: server.url, readOnly: true });
      try {
        const jsm = await jetstreamManager(store.connection);
        const info = await jsm.streams.info('PLUMBLINE_EVENTS', {
          subjects_filter: 'plumbline.run.*.ev',
        });
        const ids = Object.keys(info.state.subjects ?? {}).map((s) => s.split('.')[2] as string);
        runs += ids.length;
        const every = new Set((await store.log.listRuns({})).map((r) => r.runId));
        const unfinished = new Set(
          (await store.log.listRuns({ status: 'running' })).map((r) => r.runId),
        );
        const paged = new Set((await store.log.listRuns({ limit: 100_000 })).map((r) => r.runId));
        expect(ids.filter((id) => !unfinished.has(id))).toEqual([]);
        expect(ids.filter((id) => !paged.has(id))).toEqual([]);
        expect(ids.filter((id) => !every.has(id))).toEqual([]);
      } finally {
        await store.close();
      }
    }
    expect(runs).toBeGreaterThan(0);
  });
});
