/**
 * The queries of `bench/storeScale.ts` against a JetStream store that is already filled (for
 * example one a long `storeScale.ts` run is still writing): the first call (cold), then the
 * median of 5, in ms, and the calls the cost rollups hold.
 *
 * Usage: node --import tsx bench/storeScaleQueries.ts nats://127.0.0.1:4222
 */
import { costReport } from '../src/cli/cost.js';
import { openJetStreamStore } from '../src/store/jetstream.js';
import { listRuns as vizListRuns } from '../src/viz/api.js';

/** Times `f`: the first call, then the median of 5 (ms). */
async function time(f: () => Promise<unknown>): Promise<{ cold: number; warm: number }> {
  const once = async (): Promise<number> => {
    const t = performance.now();
    await f();
    return performance.now() - t;
  };
  const cold = await once();
  const xs: number[] = [];
  for (let k = 0; k < 5; k++) xs.push(await once());
  xs.sort((a, b) => a - b);
  return { cold: Math.round(cold), warm: Math.round(xs[2] as number) };
}

const js = await openJetStreamStore({ servers: process.argv[2] ?? 'nats://127.0.0.1:4222' });
try {
  const first = await js.log.listRuns({ limit: 51 });
  const cursor = first[first.length - 1]?.runId;
  const out = {
    newest: first[0]?.runId,
    'runs, first page (50)': await time(() => js.log.listRuns({ limit: 51 })),
    'runs --after <the first page>': await time(() =>
      js.log.listRuns({ limit: 51, ...(cursor !== undefined ? { after: cursor } : {}) }),
    ),
    'runs --status running': await time(() => js.log.listRuns({ status: 'running', limit: 51 })),
    'cost --by day': await time(() => costReport(js, 'day')),
    'visualizer run list (500)': await time(() =>
      vizListRuns(js.log, new URLSearchParams(), Date.now()),
    ),
    callsInRollups: (await costReport(js, 'day')).rows.reduce((a, r) => a + r.calls, 0),
  };
  process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
} finally {
  await js.close();
}
