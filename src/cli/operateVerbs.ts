/**
 * Operator verbs: fork, verify, watch, and stranded-run detection.
 * (The implementation, imported by operate.ts only when the verb runs: issue 14.)
 */
import type { Command } from 'commander';
import { UsageError } from '../errors.js';
import { forkRun } from '../runtime/fork.js';
import {
  makeRuntime,
  openStore,
  out,
  outJson,
  parseInput,
  requireModelFor,
  storeSpec,
  globals,
  cliLogger,
  type GlobalOptions,
} from './context.js';
import { cliClient } from './client.js';
import { pathOfSteps, resultLine, runRow } from './format.js';
import { exitCodeFor, type ExitBox } from './main.js';
import { pipelineForRun, pipelinesFrom } from './pipelines.js';
import { listening } from './listen.js';
import { failureTable, verifyMany } from './verify.js';
import { watch } from './watch.js';
import { strandedRuns } from './stranded.js';

/** `verify` on a TTY: a progress line on stderr every this many runs. */
const VERIFY_PROGRESS_EVERY = 50;
/** `verify --all` not on a TTY (a CI log): a progress line on stderr every this many runs. */
const VERIFY_PROGRESS_LOG_EVERY = 10_000;

/** Flags of `viz`. */
interface VizFlags {
  port?: number;
  host: string;
  pipelines?: string[];
  allowedHost?: string[];
}

/** Lists stranded runs (shared by `stranded` and `runs --stranded`). */
export async function listStranded(
  g: GlobalOptions,
  olderThanMs = 30_000,
  json: boolean,
): Promise<number> {
  const store = await openStore(storeSpec(g));
  try {
    const runs = await strandedRuns(store, olderThanMs);
    if (json)
      runs.forEach(({ run: r, holder }) =>
        outJson({ ...r, idleMs: Date.now() - r.updatedAt, lease: holder ?? null }),
      );
    else {
      runs.forEach(({ run: r, holder }) =>
        out(
          `${runRow(r)}  idle ${Math.round((Date.now() - r.updatedAt) / 1000)}s, ${holder === undefined ? 'no lease' : `lease of ${holder.owner} lapsed`}`,
        ),
      );
      out(
        runs.length === 0
          ? 'no stranded runs'
          : `${runs.length} stranded: \`plumbline resume <runId>\` (or \`plumbline resume\` for all), or \`plumbline kill <runId>\``,
      );
    }
    return runs.length;
  } finally {
    await store.close();
  }
}

/** The `fork` verb, imported only when it runs. */
export function forkAction(box: ExitBox) {
  return async (
    sourceId: string,
    o: {
      at: number;
      runId?: string;
      input?: string;
      budgetUsd?: number;
      maxIterations?: number;
      pipelines?: string[];
      json?: boolean;
    },
    cmd: Command,
  ) => {
    const g = globals(cmd);
    const store = await openStore(storeSpec(g));
    try {
      const prepared = await pipelineForRun(store, sourceId, await pipelinesFrom(o.pipelines));
      requireModelFor(prepared);
      const rt = makeRuntime(store, g);
      const input = o.input !== undefined ? await parseInput(o.input) : undefined;
      const runId = await forkRun(rt, prepared, sourceId, {
        at: o.at,
        now: Date.now(),
        ...(o.runId !== undefined ? { runId: o.runId } : {}),
        ...(input !== undefined ? { input } : {}),
        limits: {
          ...(o.budgetUsd !== undefined ? { budgetUsd: o.budgetUsd } : {}),
          ...(o.maxIterations !== undefined ? { maxIterations: o.maxIterations } : {}),
        },
      });
      const r = await rt.drive(prepared, runId);
      if (o.json)
        outJson({
          runId,
          forkedFrom: { runId: sourceId, seq: o.at },
          status: r.status,
          costUsd: r.costUsd,
          outputs: r.outputs,
        });
      else
        out(
          `fork of ${sourceId}@${o.at}: ${resultLine(r, pathOfSteps(await store.log.read(runId)))}`,
        );
      box.code = exitCodeFor(r.status);
    } finally {
      await store.close();
    }
  };
}

/** The `verify` verb, imported only when it runs. */
export function verifyAction(box: ExitBox) {
  return async (
    ids: string[],
    o: { all?: boolean; pipelines?: string[]; json?: boolean },
    cmd: Command,
  ) => {
    if ((ids.length === 0) === (o.all !== true))
      throw new UsageError('verify needs run ids or --all (not both)');
    const store = await openStore(storeSpec(globals(cmd)));
    try {
      const given = await pipelinesFrom(o.pipelines);
      const tty = process.stderr.isTTY === true;
      let bad = 0;
      const { checked, failed } = await verifyMany(
        store,
        o.all ? null : ids,
        given,
        (v, done, total) => {
          if (!v.ok) bad += 1;
          if (!o.json && !o.all)
            out(`${v.ok ? 'ok  ' : 'FAIL'} ${v.runId} (${v.pipeline}): ${v.message}`);
          if (done === total) {
            if (tty)
              process.stderr.write(`\r\x1b[2Kverified ${done} of ${total} runs, ${bad} failed\n`);
          } else if (tty && done % VERIFY_PROGRESS_EVERY === 0)
            process.stderr.write(
              `\r\x1b[2Kverified ${done}${total !== undefined ? ` of ${total}` : ''} runs, ${bad} failed`,
            );
          else if (!tty && o.all && done % VERIFY_PROGRESS_LOG_EVERY === 0)
            process.stderr.write(`verify: ${done} runs checked so far, ${bad} failed\n`);
        },
      );
      if (o.json) failed.forEach((v) => outJson(v));
      else {
        out(`${checked - bad} of ${checked} runs verified${bad ? `, ${bad} failed:` : ''}`);
        failureTable(failed).forEach((l) => out(l));
      }
      box.code = bad > 0 ? 1 : 0;
    } finally {
      await store.close();
    }
  };
}

/** The `watch` verb, imported only when it runs. */
export function watchAction(box: ExitBox) {
  return async (
    runId: string | undefined,
    o: { all?: boolean; from?: number; json?: boolean },
    cmd: Command,
  ) => {
    if ((runId === undefined) === (o.all !== true))
      throw new UsageError('watch needs a run id or --all (not both)');
    const store = await openStore(storeSpec(globals(cmd)));
    const ac = new AbortController();
    const stop = (): void => ac.abort();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    try {
      if (runId !== undefined && (await store.log.getRun(runId)) === undefined)
        throw new UsageError(`unknown run id '${runId}': list runs with \`plumbline runs\``);
      const status = await watch(store, {
        ...(runId !== undefined ? { runId } : {}),
        ...(o.from !== undefined ? { from: o.from } : {}),
        json: o.json === true,
        tty: process.stdout.isTTY === true,
        signal: ac.signal,
        write: (t) => process.stdout.write(t),
      });
      box.code = status === null ? 0 : exitCodeFor(status as never);
    } finally {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      await store.close();
    }
  };
}

/** The `viz` verb, imported only when it runs. */
export function vizAction() {
  return async (o: VizFlags, cmd: Command) => {
    const g = globals(cmd);
    const { startVizServer } = await import('../viz/index.js');
    const store = await openStore(storeSpec(g));
    const port = o.port ?? 7777;
    const server = await listening('--port', port, o.host, async () =>
      startVizServer({
        store,
        port,
        host: o.host,
        allowedHosts: o.allowedHost ?? [],
        pipelines: await pipelinesFrom(o.pipelines),
        logger: cliLogger(g),
        // The approve form's signal wakes the run: driven here on SQLite, queued on NATS.
        drive: async (prepared, runId, signal) => {
          if (store.kind === 'sqlite') {
            requireModelFor(prepared);
            return makeRuntime(store, g).drive(prepared, runId, signal);
          }
          const client = await cliClient(g);
          try {
            await client.resume(runId);
          } finally {
            await client.close();
          }
        },
      }),
    ).catch(async (e: unknown) => {
      await store.close();
      throw e;
    });
    out(`plumbline viz on ${server.url} (Ctrl-C to stop)`);
    await new Promise<void>((resolve) => {
      process.once('SIGINT', resolve);
      process.once('SIGTERM', resolve);
    });
    await server.close();
    await store.close();
  };
}

/** The `stranded` verb, imported only when it runs. */
export function strandedAction() {
  return async (o: { olderThan?: number; json?: boolean }, cmd: Command) => {
    await listStranded(globals(cmd), o.olderThan, o.json === true);
  };
}
