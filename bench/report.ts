/**
 * Renders BENCHMARKS.md from the results of `bench/run.ts`: every figure as the median and
 * min–max over its repetitions, ratios computed within one round, the load average beside
 * each figure, then the hand-written notes (bench/notes.md).
 */
import { fmt, fmtSpread, spread, type Spread } from './lib/stats.js';

type Row = Record<string, unknown>;

/** Everything `bench/run.ts` collected. */
export interface Results {
  quick: boolean;
  params: {
    reps: number;
    runs: number;
    inflight: number;
    latency: number;
    big: number;
    kills: number;
    memRuns: number;
    memReps: number;
    /** Warm-up runs before each measured phase (100 before 2026-11-30's second run). */
    warmup?: number;
    /** Spawns per command of the CLI start figure (absent before 2026-11-30's third run). */
    spawns?: number;
  };
  startedAt: string;
  finishedAt?: string;
  minutes?: number;
  /** Figures re-measured later with --merge, and when. */
  merged?: string[];
  machine: {
    cores: number;
    cpu: string;
    memoryGiB: number;
    node: string;
    nats: string;
    postgres: string;
    sqlite: string;
    restate: string;
    dbos: string;
    langgraph: string;
    commit: string;
    dirty: number;
    load: number;
  };
  /** By system: one row per round. */
  throughput: Record<string, Row[]>;
  replay: Record<string, Row[]>;
  recovery: Row[];
  memory: Row[];
  /** CLI start (bench/cliStart.ts): one row. */
  cli?: Row[];
}

function at(row: Row, path: string): number {
  let v: unknown = row;
  for (const k of path.split('.')) v = (v as Record<string, unknown> | undefined)?.[k];
  return typeof v === 'number' ? v : Number.NaN;
}

const ok = (rows: Row[] | undefined): Row[] => (rows ?? []).filter((r) => r.error === undefined);
const s = (rows: Row[] | undefined, path: string): Spread =>
  spread(ok(rows).map((r) => at(r, path)));

function loads(rows: Row[] | undefined): string {
  const xs = ok(rows).flatMap((r) => (Array.isArray(r.load) ? (r.load as number[]) : []));
  if (xs.length === 0) return 'n/a';
  return `${fmt(Math.min(...xs), 1)}–${fmt(Math.max(...xs), 1)}`;
}

function errors(rows: Row[] | undefined): string[] {
  return (rows ?? []).filter((r) => r.error !== undefined).map((r) => String(r.error));
}

const SYSTEMS: [string, string, string][] = [
  ['sqlite', 'plumbline, SQLite (WAL, synchronous=NORMAL)', 'plumbline'],
  ['sqlite-full', 'plumbline, SQLite (WAL, synchronous=FULL)', 'plumbline'],
  ['jetstream', 'plumbline, NATS JetStream (1 node, file storage)', 'plumbline'],
  ['restate', 'Restate, `ctx.run` per step', ''],
  ['dbos', 'DBOS Transact on PostgreSQL, `DBOS.runStep` per step', ''],
  ['langgraph', 'LangGraph.js + SqliteSaver, one node per step', ''],
];
const PEERS = ['restate', 'dbos', 'langgraph'];

/** plumbline's steps/s (or another figure of its row) over the best peer's, round by round. */
function vsBestPeer(r: Results, key: string, path = 'plumbline.stepsPerSec'): Spread {
  const mine = r.throughput[key] ?? [];
  const ratios: number[] = [];
  for (const [i, row] of mine.entries()) {
    const peers = PEERS.map((p) => r.throughput[p]?.[i]).filter(
      (x): x is Row => x !== undefined && x.error === undefined,
    );
    if (row.error !== undefined || peers.length === 0) continue;
    ratios.push(at(row, path) / Math.max(...peers.map((p) => at(p, 'stepsPerSec'))));
  }
  return spread(ratios);
}

/** Renders the report. */
export function renderReport(r: Results, notes: string): string {
  const m = r.machine;
  const P = r.params;
  const tp = r.throughput;
  const L: string[] = [];
  const date = r.startedAt.slice(0, 10);
  L.push('# Benchmarks');
  L.push('');
  L.push(
    `Measured on ${date} (${r.startedAt} to ${r.finishedAt ?? '?'}, ${fmt(r.minutes ?? Number.NaN, 1)} min) by \`npm run bench\`${r.quick ? ' --quick (smoke run: small N, not for quoting)' : ''}, ` +
      `at commit ${m.commit}${m.dirty > 0 ? ` with ${m.dirty} uncommitted file(s) under src/ from other work in progress` : ''}. ` +
      `Every figure is the **median (min–max) of ${P.reps} repetitions**, each in a fresh process; the systems take turns round by round, ` +
      'so a burst of load from elsewhere falls on all of them. Ratios are computed within one round, then summarised. ' +
      'The machine was shared with other engineers running tests: the 1-minute load average seen during each figure is given beside it ' +
      `(${m.cores} cores, so a load above ${m.cores} means the run competed for CPU).`,
  );
  if (r.merged !== undefined)
    L.push(
      '',
      `Re-measured afterwards with \`--merge\` (other figures kept): ${r.merged.join('; ')}.`,
    );
  L.push('');
  L.push('## Machine');
  L.push('');
  L.push('| | |');
  L.push('|---|---|');
  L.push(`| CPU | ${m.cores} cores, ${m.cpu} |`);
  L.push(`| memory | ${m.memoryGiB} GiB |`);
  L.push(`| Node | ${m.node} |`);
  L.push(`| nats-server | ${m.nats} |`);
  L.push(`| PostgreSQL | ${m.postgres} |`);
  L.push(`| SQLite (better-sqlite3) | ${m.sqlite} |`);
  L.push(`| Restate | ${m.restate} |`);
  L.push(`| DBOS Transact | ${m.dbos} |`);
  L.push(`| LangGraph.js | ${m.langgraph} |`);
  L.push('');
  L.push('## Commands');
  L.push('');
  L.push('```sh');
  L.push(
    'npm install --prefix bench/peers      # the peers: Restate, DBOS, LangGraph.js (not plumbline dependencies)',
  );
  L.push(
    'npm run bench                         # everything below, rewrites BENCHMARKS.md and bench/results/latest.json',
  );
  L.push(
    'npm run bench -- --quick              # smoke run (or BENCH_QUICK=1), written to a temp dir',
  );
  L.push('npm run bench -- --only plumbline,peers --reps 3');
  L.push(
    'npm run bench -- --profile            # CPU profile of the SQLite throughput run, top functions',
  );
  L.push('# one figure, one repetition:');
  L.push(
    `node --import tsx bench/plumbline.ts --backend sqlite|sqlite-full|jetstream --runs ${P.runs} --inflight ${P.inflight} --latency ${P.latency}`,
  );
  L.push(
    `node --import tsx bench/peers/restate.ts|dbos.ts|langgraph.ts --runs ${P.runs} --inflight ${P.inflight} --latency ${P.latency}`,
  );
  L.push(`node --import tsx bench/replay.ts --backend sqlite|jetstream --big ${P.big}`);
  L.push(`node --import tsx bench/recovery.ts --kills ${P.kills}`);
  L.push(
    `node --expose-gc --import tsx bench/memory.ts --runs ${P.memRuns} --unload-ms 10000 --retry-after 3600`,
  );
  L.push(`npm run build && node --import tsx bench/cliStart.ts --spawns ${String(P.spawns ?? 20)}`);
  L.push('```');
  L.push('');

  // Figures 1 and 3.
  L.push('## 1 and 3. Step throughput and run latency: plumbline and its peers');
  L.push('');
  L.push(
    `Workload: ${P.runs.toLocaleString('en-US')} runs of a 3-step pipeline (two \`llm\` steps with zod schemas, then one \`effect\` appending a line to a file), ` +
      `${P.inflight} in flight; then ${P.latency} runs of a 1-step pipeline (one \`llm\` step) one at a time. The fake Claude answers at once, in its own process ` +
      '(its CPU is not counted); every system sends it the same request through the same Anthropic SDK client and validates the answer with the same zod schema. ' +
      `${(P.warmup ?? 100).toLocaleString('en-US')} warm-up runs (every system the same) are made first and not counted. CPU per run = the benchmark process plus the system’s server processes ` +
      '(nats-server, restate-server, every postgres process), divided by the runs.',
  );
  L.push('');
  L.push(
    '| system | steps/s | run latency at load p50 / p99 (ms) | 1-step run alone p50 / p99 (ms) | CPU per 3-step run (ms) | load |',
  );
  L.push('|---|---|---|---|---|---|');
  for (const [key, label, kind] of SYSTEMS) {
    const rows = tp[key];
    if (rows === undefined) continue;
    const pre = kind === 'plumbline' ? 'plumbline.' : '';
    const e = errors(rows);
    if (ok(rows).length === 0) {
      L.push(`| ${label} | did not run: ${e[0] ?? 'no result'} | | | | |`);
      continue;
    }
    L.push(
      `| ${label} | ${fmtSpread(s(rows, `${pre}stepsPerSec`), 0)} | ${fmtSpread(s(rows, `${pre}p50`), 0)} / ${fmtSpread(s(rows, `${pre}p99`), 0)} | ` +
        `${fmtSpread(s(rows, `${pre}latP50`), 1)} / ${fmtSpread(s(rows, `${pre}latP99`), 1)} | ${fmtSpread(s(rows, `${pre}cpuPerRunMs`), 1)} | ${loads(rows)} |`,
    );
    if (e.length > 0) L.push(`| ↳ ${e.length} repetition(s) failed: ${e[0]} | | | | | |`);
  }
  L.push('');
  if (tp.sqlite !== undefined && PEERS.some((p) => tp[p] !== undefined)) {
    if (tp['sqlite-full'] !== undefined)
      L.push(
        `- plumbline on SQLite (FULL, the default: durable against power loss, as the peers) ÷ the best peer, steps/s, same round: **${fmtSpread(vsBestPeer(r, 'sqlite-full'), 2)}×** (target ≥ 3×).`,
      );
    L.push(
      `- plumbline on SQLite (NORMAL) ÷ the best peer, steps/s, same round: **${fmtSpread(vsBestPeer(r, 'sqlite'), 2)}×**.`,
    );
    const ceiling = vsBestPeer(r, 'sqlite', 'floor.stepsPerSec');
    if (ceiling.n > 0)
      L.push(
        `- The ceiling: the same workload with no durability at all (figure 2’s floor, measured in the plumbline repetition of the same round) ÷ the best peer: **${fmtSpread(ceiling, 2)}×**. An engine cannot be faster than its workload without the engine.`,
      );
    if (tp.jetstream !== undefined)
      L.push(
        `- plumbline on JetStream ÷ the best peer, steps/s, same round: **${fmtSpread(vsBestPeer(r, 'jetstream'), 2)}×**.`,
      );
    L.push('');
  }

  // Figure 2.
  L.push('## 2. The limit: raw appends of the same bytes');
  L.push('');
  L.push(
    'Each plumbline repetition records every event it wrote; in the same process, right after, the same workload is run by hand-written code ' +
      '(same model calls, same zod checks, same file append, same concurrency) that makes **one raw append of the very same bytes** wherever plumbline appended an event: ' +
      'a plain `INSERT` in its own transaction into a table with the same unique key (same journal mode and synchronous setting), or one ack’d JetStream publish ' +
      '(same connection options, `noAsyncTraces`) to a per-run subject. *Overhead* = plumbline’s wall time ÷ the raw version’s, per repetition. ' +
      '*Append-only* drops the model and the effect: the same appends at the same concurrency, nothing else. ' +
      '*Floor* drops the appends instead: the same hand-written workload (same SDK calls, zod checks, effect, concurrency) with no durability at all; its CPU per run is the limit of this machine for this workload.',
  );
  L.push('');
  L.push(
    '| backend | plumbline steps/s | raw steps/s | overhead (time) | overhead (CPU) | CPU per run: plumbline / raw / floor (ms) | 1-step alone p50, plumbline / raw (ms) | append-only appends/s | events, bytes per repetition | load |',
  );
  L.push('|---|---|---|---|---|---|---|---|---|---|');
  for (const [key, label] of SYSTEMS.slice(0, 3)) {
    const rows = tp[key];
    if (rows === undefined || ok(rows).length === 0) continue;
    const first = ok(rows)[0] as Row;
    L.push(
      `| ${label.replace('plumbline, ', '')} | ${fmtSpread(s(rows, 'plumbline.stepsPerSec'), 0)} | ${fmtSpread(s(rows, 'raw.stepsPerSec'), 0)} | ` +
        `**${fmtSpread(s(rows, 'overhead'), 2)}×** | ${fmtSpread(s(rows, 'cpuOverhead'), 2)}× | ` +
        `${fmt(s(rows, 'plumbline.cpuPerRunMs').median, 2)} / ${fmt(s(rows, 'raw.cpuPerRunMs').median, 2)} / ${fmt(s(rows, 'floor.cpuPerRunMs').median, 2)} | ` +
        `${fmtSpread(s(rows, 'plumbline.latP50'), 1)} / ${fmtSpread(s(rows, 'raw.latP50'), 1)} | ` +
        `${fmtSpread(s(rows, 'appendOnly.appendsPerSec'), 0)} | ${fmt(at(first, 'events'), 0)}, ${fmt(at(first, 'bytes') / 2 ** 20, 1)} MiB | ${loads(rows)} |`,
    );
  }
  L.push('');
  L.push('Target: overhead ≤ 1.3× the raw appends.');
  L.push('');

  // Figure 4.
  L.push('## 4. Replay: rebuilding a run from its log');
  L.push('');
  L.push(
    '`Runtime.rebuild(prepared, runId)` end to end (store read, JSON parse + zod check of every event, fold with state verification), median of 3 timed calls after one warm call per repetition. ' +
      `The runs are a model step failing and being retried (ATTEMPT, MODEL_ERROR, TIMER, …), ${P.big.toLocaleString('en-US')} and 100 events. ` +
      'With a snapshot: one saved 100 events before the end (50 for the 100-event run), i.e. the average tail with the default `snapshotEvery: 200`. ' +
      'events/s = events in the run ÷ rebuild time (“effective” when a snapshot skips most of them).',
  );
  L.push('');
  L.push(
    `| backend | 100 events, no snapshot | 100 events, snapshot | ${P.big.toLocaleString('en-US')} events, no snapshot | ${P.big.toLocaleString('en-US')} events, snapshot | of which: read + parse all, fold all (no snapshot) | load |`,
  );
  L.push('|---|---|---|---|---|---|---|');
  for (const [backend, rows] of Object.entries(r.replay)) {
    if (ok(rows).length === 0) {
      L.push(`| ${backend} | did not run: ${errors(rows)[0] ?? ''} | | | | | |`);
      continue;
    }
    const cell = (k: string): string =>
      `${fmtSpread(s(rows, `${k}.ms`), 1)} ms, ${fmtSpread(s(rows, `${k}.eventsPerSec`), 0)} ev/s`;
    L.push(
      `| ${backend} | ${cell('small')} | ${cell('smallSnap')} | ${cell('big')} | **${cell('bigSnap')}** | ${fmtSpread(s(rows, 'bigReadMs'), 0)} ms + ${fmtSpread(s(rows, 'bigFoldMs'), 0)} ms (fold ${fmtSpread(s(rows, 'bigFoldEventsPerSec'), 0)} ev/s) | ${loads(rows)} |`,
    );
  }
  L.push('');
  L.push(
    `\`rebuild\` loads the snapshot and reads only the events from its seq on (fix 2 below, in since commit 4d09442); ` +
      `the same tail-only read timed directly by the harness: ` +
      Object.entries(r.replay)
        .filter(([, rows]) => ok(rows).some((x) => x.bigSnapTailOnly !== undefined))
        .map(
          ([b, rows]) =>
            `${b} ${fmtSpread(s(rows, 'bigSnapTailOnly.ms'), 1)} ms = ${fmtSpread(s(rows, 'bigSnapTailOnly.eventsPerSec'), 0)} events/s effective`,
        )
        .join('; ') +
      '.',
  );
  L.push('');
  L.push(`Target: ${P.big.toLocaleString('en-US')}-event rebuild ≥ 100k events/s effective.`);
  L.push('');

  // Figure 5.
  L.push('## 5. Recovery: SIGKILL of a worker holding runs');
  L.push('');
  const recs = ok(r.recovery);
  const rec = recs[0];
  if (rec === undefined) {
    L.push(`Did not run: ${errors(r.recovery)[0] ?? 'not selected'}.`);
  } else {
    L.push(
      'Two `plumbline worker --store nats://… --pipelines bench/recoveryPipeline.ts --concurrency 32` processes (default ack wait, heartbeats and max deliver; the second series adds `--ack-wait 1s`) on a NATS JetStream store and work queue; ' +
        'each round queues 8 runs of a 30-step pipeline (the fake answers after 20 ms), waits until they are all under way, SIGKILLs the worker holding most of the running runs, ' +
        'and times each run that worker held from the kill to the first event it appends on the other worker (seen by a subscriber on the event stream); then a fresh worker replaces the killed one. ' +
        'The bus heartbeats a worker’s commands every ack wait / 5, so the queue redelivers a dead worker’s runs between ⅘ and 1 ack wait after the kill (1.2–1.5 s at the default 1.5 s): the ack wait sets the floor. ' +
        'One series per ack wait (each kill is its own sample), not 5 repeated series.',
    );
    L.push('');
    L.push(
      '| ack wait | kills | held runs | never back within 30 s | per held run p50 / p99 / max (ms) | per kill, last run back, p50 / p99 (ms) | load |',
    );
    L.push('|---|---|---|---|---|---|---|');
    for (const x of recs) {
      L.push(
        `| ${String(x.ackWait)} | ${String(x.kills)} | ${String(x.runs)} | ${String(x.timeouts)} | ${fmt(at(x, 'runP50'), 0)} / **${fmt(at(x, 'runP99'), 0)}** / ${fmt(at(x, 'runMax'), 0)} | ` +
          `${fmt(at(x, 'killP50'), 0)} / ${fmt(at(x, 'killP99'), 0)} | ${loads([x])} |`,
      );
    }
    for (const e of errors(r.recovery)) L.push(`| failed: ${e} | | | | | | |`);
  }
  L.push('');
  L.push('Target: recovery p99 ≤ 2 s.');
  L.push('');

  // Figure 6.
  L.push('## 6. Memory per run parked in backoff');
  L.push('');
  const mem = r.memory;
  if (ok(mem).length === 0) {
    L.push(`Did not run: ${errors(mem)[0] ?? 'not selected'}.`);
  } else {
    L.push(
      `${P.memRuns.toLocaleString('en-US')} runs started by one Runtime (SQLite store, default \`killPollMs\` 200), each parked in backoff after the fake answered 429 with \`retry-after: 3600\`, with \`unloadBackoffMs: 10000\` (the workers' default): each run waits in the store's wake-up schedule, its lease released, nothing of it held in the process (\`bench/memory.ts\` without \`--unload-ms\` measures runs held in memory). ` +
        'RSS and V8 heap are read after all runs parked, idle keep-alive sockets closed (5 s) and two forced GCs, minus the same reading after a 200-run warm-up. ' +
        '*Heap used* is what the parked runs keep alive; *heap reserved* is the heap V8 keeps after the burst of parking them (it does not shrink it back), which is most of the RSS. ' +
        `${ok(mem).length} repetition(s)${ok(mem).length < P.reps ? ` (not ${P.reps}: one takes about a minute, because the parked runs’ kill-flag polling slows the parking of the next ones)` : ''}.`,
    );
    L.push('');
    L.push(
      '| RSS per parked run (KiB) | V8 heap used per parked run (KiB) | V8 heap reserved per parked run (KiB) | RSS before → after (MiB) | CPU of the process while the runs wait | load |',
    );
    L.push('|---|---|---|---|---|---|');
    L.push(
      `| **${fmtSpread(s(mem, 'rssPerRunKiB'), 1)}** | ${fmtSpread(s(mem, 'heapPerRunKiB'), 1)} | ${fmtSpread(s(mem, 'heapTotalPerRunKiB'), 1)} | ${fmtSpread(s(mem, 'rssBeforeMiB'), 0)} → ${fmtSpread(s(mem, 'rssAfterMiB'), 0)} | ` +
        `${fmtSpread(s(mem, 'idleCpuPct'), 0)} % of a core | ${loads(mem)} |`,
    );
  }
  L.push('');
  L.push('Target: ≤ 20 KiB per parked run.');
  L.push('');

  // Figure 7.
  const cli = ok(r.cli)[0];
  const cliRows = (cli?.rows ?? []) as Array<{
    command: string;
    wallP50: number;
    wallP90: number;
    cpuP50: number;
    cpuP90: number;
  }>;
  L.push('## 7. CLI start');
  L.push('');
  if (cli === undefined) {
    L.push(`Did not run: ${errors(r.cli)[0] ?? 'not selected'}.`);
  } else {
    L.push(
      `\`bench/cliStart.ts\`: \`plumbline demo\` fills a SQLite store and a JetStream store (its own nats-server), then each command is spawned ${String(cli.spawns)} times, the commands taking turns: ` +
        '`node bin/plumbline.mjs <verb>` over the built package (`dist/bundle/`), as users run it. Wall = spawn to exit (the answer printed); CPU = the child’s own user + system time at exit. ' +
        '`node -e 0` in the same loop is what Node alone costs to start here.',
    );
    L.push('');
    L.push('| command | wall p50 / p90 (ms) | CPU p50 / p90 (ms) |');
    L.push('|---|---|---|');
    for (const x of cliRows)
      L.push(
        `| \`${x.command}\` | **${fmt(x.wallP50, 0)}** / ${fmt(x.wallP90, 0)} | ${fmt(x.cpuP50, 0)} / ${fmt(x.cpuP90, 0)} |`,
      );
    L.push('');
    L.push(`Load during the loop: ${loads([cli])}.`);
  }
  L.push('');
  L.push('Target: a CLI verb starts in ≤ 150 ms.');
  L.push('');

  // Targets.
  L.push('## Targets and measured values');
  L.push('');
  L.push('| target | measured (median) | met? |');
  L.push('|---|---|---|');
  const yes = (b: boolean | null): string => (b === null ? 'n/a' : b ? 'yes' : '**no**');
  for (const k of ['sqlite-full', 'sqlite']) {
    const vb = vsBestPeer(r, k);
    if (vb.n === 0) continue;
    L.push(
      `| step throughput ≥ 3× the best peer’s | ${fmt(vb.median, 2)}× (SQLite ${k === 'sqlite' ? 'NORMAL' : 'FULL'}) | ${yes(vb.median >= 3)} |`,
    );
  }
  for (const k of ['sqlite-full', 'sqlite', 'jetstream']) {
    const c = s(tp[k], 'plumbline.cpuPerRunMs');
    if (c.n === 0) continue;
    const f = s(tp[k], 'floor.cpuPerRunMs');
    L.push(
      `| engine CPU per 3-step run ≤ 1.5 ms (${k}) | ${fmt(c.median, 2)} ms${f.n > 0 ? ` (no-durability floor ${fmt(f.median, 2)} ms)` : ''} | ${yes(c.median <= 1.5)} |`,
    );
  }
  const b = s(tp['sqlite-full'] ?? tp.sqlite, 'bytes');
  const ev = s(tp['sqlite-full'] ?? tp.sqlite, 'events');
  if (b.n > 0 && ev.n > 0) {
    const perRun = (b.median / ev.median) * (ev.median / P.runs);
    L.push(`| bytes per run ≤ 2.5 KB | ${fmt(perRun, 0)} B | ${yes(perRun <= 2500)} |`);
  }
  for (const k of ['sqlite', 'jetstream']) {
    const o = s(tp[k], 'overhead');
    L.push(
      `| overhead ≤ 1.3× raw appends (${k}) | ${fmt(o.median, 2)}× | ${yes(o.n > 0 ? o.median <= 1.3 : null)} |`,
    );
  }
  for (const [k, rows] of Object.entries(r.replay)) {
    const v = s(rows, 'bigSnap.eventsPerSec');
    const v0 = s(rows, 'big.eventsPerSec');
    L.push(
      `| ${P.big.toLocaleString('en-US')}-event rebuild ≥ 100k events/s (${k}) | ${fmt(v.median, 0)} with a snapshot, ${fmt(v0.median, 0)} without | ${yes(v.n > 0 ? v.median >= 100_000 : null)} |`,
    );
  }
  for (const x of ok(r.recovery))
    L.push(
      `| recovery p99 ≤ 2 s (ack wait ${String(x.ackWait)}) | ${fmt(at(x, 'runP99'), 0)} ms | ${yes(at(x, 'runP99') <= 2000)} |`,
    );
  const mm = s(mem, 'rssPerRunKiB');
  L.push(
    `| ≤ 20 KiB per parked run | ${fmt(mm.median, 1)} KiB RSS | ${yes(mm.n > 0 ? mm.median <= 20 : null)} |`,
  );
  for (const store of ['sqlite', 'jetstream']) {
    const verbs = cliRows.filter((x) => x.command.endsWith(`(${store})`));
    if (verbs.length === 0) continue;
    const worst = Math.max(...verbs.map((x) => x.wallP50));
    L.push(
      `| a CLI verb starts in ≤ 150 ms (\`runs\`, \`cost\`, ${store}) | slowest p50 ${fmt(worst, 0)} ms wall | ${yes(worst <= 150)} |`,
    );
  }
  L.push('');
  L.push(notes.trim());
  L.push('');
  return L.join('\n');
}
