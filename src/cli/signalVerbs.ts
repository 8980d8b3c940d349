/**
 * `plumbline signal <runId> <signal> --data '{…}'`: sends a signal to a run's wait step (the
 * payload checked against its schema first: a bad one is refused, nothing kept). A run already
 * waiting is driven on here (embedded store) or queued for a worker (NATS, or `--queue`); a run
 * not there yet takes it when it arrives.
 * (The implementation, imported by signal.ts only when the verb runs: issue 14.)
 */
import type { Command } from 'commander';
import { UsageError } from '../errors.js';
import { sendSignal } from '../runtime/signals.js';
import { cliClient } from './client.js';
import {
  globals,
  makeRuntime,
  openStore,
  out,
  outJson,
  requireModelFor,
  storeSpec,
} from './context.js';
import { pathOfSteps, resultLine, summaryOf } from './format.js';
import type { ExitBox } from './main.js';
import { exitCodeFor } from './main.js';
import { pipelineForRun, pipelinesFrom } from './pipelines.js';

function parseData(raw: string | undefined): unknown {
  if (raw === undefined) return {};
  try {
    return JSON.parse(raw) as unknown;
  } catch (e) {
    throw new UsageError(
      `--data is not valid JSON (${(e as Error).message}): pass the payload as a JSON value, e.g. --data '{"ok":true}'`,
    );
  }
}

/** The `signal` verb, imported only when it runs. */
export function signalAction(box: ExitBox) {
  return async (
    runId: string,
    name: string,
    o: { data?: string; by?: string; queue?: boolean; pipelines?: string[]; json?: boolean },
    cmd: Command,
  ) => {
    const g = globals(cmd);
    const payload = parseData(o.data);
    const store = await openStore(storeSpec(g));
    try {
      const prepared = await pipelineForRun(store, runId, await pipelinesFrom(o.pipelines));
      const sent = await sendSignal(store, prepared, runId, name, payload, {
        by: o.by ?? null,
        now: Date.now(),
      });
      if (sent.status !== 'waiting') {
        const line = `signal '${name}' kept for run ${runId} (${sent.status}): step '${sent.step}' takes it when the run gets there`;
        if (o.json) outJson({ ...sent, kept: true, note: line });
        else out(line);
        return;
      }
      if (o.queue === true || store.kind !== 'sqlite') {
        const client = await cliClient(g);
        try {
          await client.resume(runId);
        } finally {
          await client.close();
        }
        const line = `signal '${name}' kept for run ${runId}: queued for a worker to continue it`;
        if (o.json) outJson({ ...sent, kept: true, queued: true, note: line });
        else out(line);
        return;
      }
      requireModelFor(prepared);
      const r = await makeRuntime(store, g).drive(prepared, runId);
      if (o.json) outJson({ ...summaryOf(r), signal: name });
      else out(resultLine(r, pathOfSteps(await store.log.read(runId))));
      box.code = exitCodeFor(r.status);
    } finally {
      await store.close();
    }
  };
}
