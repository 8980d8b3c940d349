/**
 * Small statistics for the benchmark: medians, ranges and percentiles of plain number lists.
 */

/** The value at quantile `q` (0–1) of `xs`, by nearest rank on a sorted copy. */
export function percentile(xs: readonly number[], q: number): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const i = Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1));
  return s[i] as number;
}

/** Median, minimum and maximum of the repetitions of one figure. */
export interface Spread {
  median: number;
  min: number;
  max: number;
  n: number;
}

/** The spread of `xs` (NaN fields when empty). */
export function spread(xs: readonly number[]): Spread {
  const s = [...xs].filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return { median: Number.NaN, min: Number.NaN, max: Number.NaN, n: 0 };
  const mid = Math.floor(s.length / 2);
  const median =
    s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
  return { median, min: s[0] as number, max: s[s.length - 1] as number, n: s.length };
}

/** Formats a number with a sensible number of digits for a table. */
export function fmt(x: number, digits?: number): string {
  if (!Number.isFinite(x)) return 'n/a';
  const d = digits ?? (Math.abs(x) >= 100 ? 0 : Math.abs(x) >= 10 ? 1 : 2);
  return x.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d });
}

/** `median (min–max)` of a spread. */
export function fmtSpread(s: Spread, digits?: number): string {
  if (s.n === 0) return 'n/a';
  if (s.n === 1) return fmt(s.median, digits);
  return `${fmt(s.median, digits)} (${fmt(s.min, digits)}–${fmt(s.max, digits)})`;
}
