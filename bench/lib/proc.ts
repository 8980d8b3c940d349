/**
 * Process helpers for the benchmark: CPU time of other processes (from /proc), the load
 * average, and the `RESULT {json}` line every measuring child prints on stdout.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { percentile } from './stats.js';

const TICK_MS = 10; // USER_HZ is 100 on Linux.

/** CPU time (user + system, ms) a process has used so far, or 0 if it is gone. */
export function cpuOfPid(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the `(comm)` part: state is field 3, utime 14, stime 15 (1-based).
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(rest[11]) + Number(rest[12])) * TICK_MS;
  } catch {
    return 0;
  }
}

/** Pids of every process whose command name is `comm` (e.g. `postgres`). */
export function pidsNamed(comm: string): number[] {
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (readFileSync(`/proc/${d}/comm`, 'utf8').trim() === comm) out.push(Number(d));
    } catch {
      // gone
    }
  }
  return out;
}

/** A CPU meter over this process and some other processes (by pid, or by name, re-listed at the end). */
export function cpuMeter(opts: { pids?: number[]; names?: string[] } = {}): {
  stop(): { selfMs: number; othersMs: number };
} {
  const self0 = process.cpuUsage();
  const list = (): number[] => [...(opts.pids ?? []), ...(opts.names ?? []).flatMap(pidsNamed)];
  const before = new Map(list().map((p) => [p, cpuOfPid(p)]));
  return {
    stop() {
      const d = process.cpuUsage(self0);
      let othersMs = 0;
      for (const p of new Set([...before.keys(), ...list()]))
        othersMs += cpuOfPid(p) - (before.get(p) ?? 0);
      return { selfMs: (d.user + d.system) / 1000, othersMs };
    },
  };
}

/** The 1-minute load average, rounded. */
export function load1(): number {
  return Math.round((loadavg()[0] ?? 0) * 100) / 100;
}

/** Prints the result of a measuring child for the orchestrator. */
export function emitResult(value: unknown): void {
  process.stdout.write(`RESULT ${JSON.stringify(value)}\n`);
}

/** Reads `--name value` from argv. */
export function arg(name: string, fallback?: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
}

/** Reads a numeric `--name value` from argv. */
export function numArg(name: string, fallback: number): number {
  const v = arg(name);
  return v === undefined ? fallback : Number(v);
}

/** Times `n` runs of `one(i)` one at a time; returns each run's milliseconds. */
export async function latencies(
  n: number,
  one: (i: number) => Promise<unknown>,
): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const s = performance.now();
    await one(i);
    out.push(performance.now() - s);
  }
  return out;
}

/** The throughput and latency figures every system reports, in the harness's shape. */
export function runFigures(a: {
  runs: number;
  wallMs: number;
  loaded: number[];
  cpu: { selfMs: number; othersMs: number };
  alone: number[];
}): Record<string, number> {
  return {
    stepsPerSec: (a.runs * 3) / (a.wallMs / 1000),
    p50: percentile(a.loaded, 0.5),
    p99: percentile(a.loaded, 0.99),
    cpuPerRunMs: (a.cpu.selfMs + a.cpu.othersMs) / a.runs,
    serverCpuPerRunMs: a.cpu.othersMs / a.runs,
    latP50: percentile(a.alone, 0.5),
    latP99: percentile(a.alone, 0.99),
  };
}
