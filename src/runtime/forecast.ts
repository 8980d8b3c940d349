/**
 * Forecasting a run from the recorded history of its pipeline version: the spread (p50, p95,
 * p99, max) of cost, model calls and duration per run and per step. Pure: it reads run logs
 * handed to it and computes; `forecastHistory.ts` reads them from a store.
 */
import type { StoredEnvelope } from '../machines/events.js';
import { roundUsd } from '../machines/context.js';
import { isTerminal } from '../machines/fold.js';

/** What one step of one finished run took. */
export interface StepSample {
  costUsd: number;
  calls: number;
  durationMs: number;
}

/** What one finished run took: its totals and each step it reached. */
export interface RunSample extends StepSample {
  /**
   * The smallest budget cap under which it would not have parked: at each ATTEMPT the budget
   * guard asks for spent + the call's worst case, so this is the peak of those (≥ its cost).
   */
  neededUsd: number;
  runId: string;
  status: string;
  input: unknown;
  steps: Record<string, StepSample>;
}

/** The spread of one measure: nearest-rank percentiles and the maximum. */
export interface Spread {
  p50: number;
  p95: number;
  p99: number;
  max: number;
}

/** The spread of cost, calls and duration over `runs` samples. */
export interface Spreads {
  runs: number;
  costUsd: Spread;
  calls: Spread;
  durationMs: Spread;
}

/** A forecast: per run, and per step (each based on the runs that reached it). */
export interface Forecast extends Spreads {
  /** The budget cap each run needed (see {@link RunSample.neededUsd}). */
  neededUsd: Spread;
  steps: Array<Spreads & { step: string }>;
}

/** The margin `--budget-usd auto` puts on the forecast's p99 cost. */
export const AUTO_BUDGET_MARGIN = 1.5;

/**
 * The sample of a finished run, from its log; null when the run has not reached a terminal
 * state or is a fork (its first events are copies of another run's, at that run's times).
 * Cost is what the run's state says it spent (calls lost mid-flight at their reservation);
 * calls count model outcomes; time between two events goes to the step the run was in.
 */
export function sampleOf(events: readonly StoredEnvelope[]): RunSample | null {
  const first = events[0];
  const last = events[events.length - 1];
  if (first === undefined || last === undefined || first.event.type !== 'run.started') return null;
  if (first.event.forkedFrom !== null || !isTerminal(last.state.status)) return null;
  const steps: Record<string, StepSample> = {};
  const at = (step: string): StepSample =>
    (steps[step] ??= { costUsd: 0, calls: 0, durationMs: 0 });
  let calls = 0;
  let neededUsd = last.state.costUsd;
  for (let i = 1; i < events.length; i++) {
    const e = events[i] as StoredEnvelope;
    const prev = events[i - 1] as StoredEnvelope;
    if (prev.state.step !== null) at(prev.state.step).durationMs += Math.max(0, e.at - prev.at);
    const ev = e.event;
    if (ev.type === 'ATTEMPT')
      neededUsd = Math.max(neededUsd, roundUsd(prev.state.costUsd + ev.estimate.usd));
    if (ev.type === 'MODEL_RESPONSE' || ev.type === 'MODEL_ERROR') {
      calls += 1;
      const s = at(ev.step);
      s.calls += 1;
      s.costUsd = roundUsd(s.costUsd + ev.costUsd);
    } else if ('step' in ev && typeof ev.step === 'string') at(ev.step);
  }
  return {
    runId: first.runId,
    status: last.state.status,
    input: first.event.input,
    costUsd: last.state.costUsd,
    neededUsd,
    calls,
    durationMs: Math.max(0, last.at - first.at),
    steps,
  };
}

/** The nearest-rank `q` quantile (0 < q ≤ 1) of ascending `sorted`; NaN when empty. */
export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil(q * sorted.length)));
  return sorted[rank - 1] as number;
}

/** p50, p95, p99 and max of `values`. */
export function spreadOf(values: readonly number[]): Spread {
  const sorted = [...values].sort((a, b) => a - b);
  return {
    p50: quantile(sorted, 0.5),
    p95: quantile(sorted, 0.95),
    p99: quantile(sorted, 0.99),
    max: sorted[sorted.length - 1] ?? Number.NaN,
  };
}

function spreadsOf(samples: readonly StepSample[]): Spreads {
  return {
    runs: samples.length,
    costUsd: spreadOf(samples.map((s) => s.costUsd)),
    calls: spreadOf(samples.map((s) => s.calls)),
    durationMs: spreadOf(samples.map((s) => s.durationMs)),
  };
}

/**
 * The forecast from finished runs' samples; steps in the order they were first seen.
 * @example forecast(logs.map(sampleOf).filter((s) => s !== null)).costUsd.p95
 */
export function forecast(samples: readonly RunSample[]): Forecast {
  const names: string[] = [];
  for (const s of samples)
    for (const n of Object.keys(s.steps)) if (!names.includes(n)) names.push(n);
  return {
    ...spreadsOf(samples),
    neededUsd: spreadOf(samples.map((s) => s.neededUsd)),
    steps: names.map((step) => ({
      step,
      ...spreadsOf(samples.flatMap((s) => (s.steps[step] !== undefined ? [s.steps[step]] : []))),
    })),
  };
}

/**
 * The cap `--budget-usd auto` sets: the p99 of the cap runs needed times `margin`. Not the p99
 * cost alone: the budget guard admits a call only when spent + its worst case fits, and a
 * call's worst case (max_tokens at the output price) is usually far above what it costs.
 */
export function autoBudgetUsd(f: Forecast, margin = AUTO_BUDGET_MARGIN): number {
  return roundUsd(Math.max(f.costUsd.p99, f.neededUsd.p99) * margin);
}
