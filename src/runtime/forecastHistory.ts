/**
 * The recorded history a forecast is based on: the finished runs of one pipeline version, read
 * from a store (newest first, up to a limit), and the forecast for a run about to start.
 */
import { UsageError } from '../errors.js';
import { canonicalJson } from '../machines/chain.js';
import type { RunStatus } from '../machines/events.js';
import type { Store } from '../store/types.js';
import {
  AUTO_BUDGET_MARGIN,
  autoBudgetUsd,
  forecast,
  sampleOf,
  type Forecast,
  type RunSample,
} from './forecast.js';

const FINISHED: RunStatus[] = ['completed', 'failed', 'killed'];

/** Which runs a forecast is based on. */
export interface HistoryQuery {
  pipeline: string;
  /** The pipeline version; default: the version of the newest finished run of `pipeline`. */
  version?: string;
  /** When set, only runs with this input count, if there are any (else every run). */
  input?: unknown;
  /** Read at most this many runs, newest first (default 1000). */
  limit?: number;
}

/** A forecast with what it is based on. */
export interface HistoryForecast {
  pipeline: string;
  version: string;
  /** `input`: only the runs that had the given input; `all`: every finished run of the version. */
  basis: 'input' | 'all';
  forecast: Forecast;
}

/**
 * The forecast from the store's finished runs of a pipeline version.
 * @throws UsageError when there is no such run, naming the fix.
 */
export async function forecastFromStore(store: Store, q: HistoryQuery): Promise<HistoryForecast> {
  const finished = await store.log.listRuns({ pipeline: q.pipeline, status: FINISHED });
  const version = q.version ?? finished[0]?.version;
  const runs = finished.filter((r) => r.version === version).slice(0, q.limit ?? 1000);
  const samples: RunSample[] = [];
  for (const r of runs) {
    const s = sampleOf(await store.log.read(r.runId));
    if (s !== null) samples.push(s);
  }
  if (samples.length === 0 || version === undefined)
    throw new UsageError(
      `no finished run of pipeline '${q.pipeline}'${q.version !== undefined ? ` version '${q.version}'` : ''} in this store to forecast from: ` +
        'run it a few times first with a budget you choose (--budget-usd <n>), then forecast',
    );
  let basis: 'input' | 'all' = 'all';
  let used = samples;
  if (q.input !== undefined) {
    const key = canonicalJson(q.input);
    const same = samples.filter((s) => canonicalJson(s.input) === key);
    if (same.length > 0) {
      basis = 'input';
      used = same;
    }
  }
  return { pipeline: q.pipeline, version, basis, forecast: forecast(used) };
}

/** The cap `--budget-usd auto` sets, and the sentence that says how it was chosen. */
export async function autoBudget(
  store: Store,
  q: HistoryQuery,
): Promise<{ budgetUsd: number; note: string }> {
  let h: HistoryForecast;
  try {
    h = await forecastFromStore(store, q);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    throw new UsageError(
      `--budget-usd auto: no finished run of pipeline '${q.pipeline}'${q.version !== undefined ? ` version '${q.version}'` : ''} to forecast from: ` +
        'pass --budget-usd <n> until a few runs have finished (`plumbline forecast` then shows what auto would pick)',
      { cause: e },
    );
  }
  const budgetUsd = autoBudgetUsd(h.forecast);
  const f = h.forecast;
  return {
    budgetUsd,
    note: `--budget-usd auto: $${budgetUsd.toFixed(6)} = p99 of the cap runs needed $${f.neededUsd.p99.toFixed(6)} (spent + the next call's worst case; p99 cost $${f.costUsd.p99.toFixed(6)}) × margin ${AUTO_BUDGET_MARGIN}, from ${f.runs} finished run(s) of ${h.pipeline} v${h.version}${h.basis === 'input' ? ' with this input' : ''}`,
  };
}
