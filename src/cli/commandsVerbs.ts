/**
 * The core verbs' implementation (run, resume, replay, cost, kill, demo), imported by
 * commands.ts only when one of them runs.
 */
import type { Command } from 'commander';
import { UsageError } from '../errors.js';
import type { StoredEnvelope } from '../machines/events.js';
import { roundUsd } from '../machines/context.js';
import { foldLog } from '../machines/replay.js';
import { isTerminal, statusOf } from '../machines/fold.js';
import type { LimitOverrides } from '../runtime/driver.js';
import { loadPipeline } from '../runtime/load.js';
import { parseRunInput } from '../runtime/prepare.js';
import {
  makeRuntime,
  openStore,
  out,
  outJson,
  parseInput,
  requireModelFor,
  storeSpec,
  globals,
} from './context.js';
import { pathOfSteps, replayLine, resultLine, summaryOf, usd } from './format.js';
import { exitCodeFor, type ExitBox } from './main.js';
import { pipelineForRun, pipelinesFrom } from './pipelines.js';
import { runDemo } from './demo.js';
import { isUnconfirmed } from './cost.js';
import { cliClient } from './client.js';
import { childLines } from './childLines.js';
import { runOutput } from './runOutput.js';
import { autoBudget } from '../runtime/forecastHistory.js';

function limitsOf(o: {
  budgetUsd?: number;
  maxIterations?: number;
  deadline?: number;
  maxInputTokens?: number;
  maxOutputTokens?: number;
}): LimitOverrides {
  return {
    ...(o.budgetUsd !== undefined ? { budgetUsd: o.budgetUsd } : {}),
    ...(o.maxIterations !== undefined ? { maxIterations: o.maxIterations } : {}),
    ...(o.deadline !== undefined ? { deadlineMs: o.deadline } : {}),
    ...(o.maxInputTokens !== undefined ? { maxInputTokens: o.maxInputTokens } : {}),
    ...(o.maxOutputTokens !== undefined ? { maxOutputTokens: o.maxOutputTokens } : {}),
  };
}

/** The `run` verb, imported only when it runs. */
export function runAction(box: ExitBox) {
  return async (
    file: string,
    o: {
      input?: string;
      runId?: string;
      json?: boolean;
      verbose?: boolean;
      budgetUsd?: number | 'auto';
      maxIterations?: number;
      deadline?: number;
      maxInputTokens?: number;
      maxOutputTokens?: number;
    },
    cmd: Command,
  ) => {
    const g = globals(cmd);
    const prepared = await loadPipeline(file);
    const input = await parseInput(o.input);
    // Checked here, before the run is written: the input first, then the model it needs.
    parseRunInput(prepared.pipeline, input);
    requireModelFor(prepared);
    const spec = storeSpec(g);
    const store = await openStore(spec);
    try {
      let budgetUsd = o.budgetUsd;
      if (budgetUsd === 'auto') {
        const auto = await autoBudget(store, {
          pipeline: prepared.pipeline.name,
          version: prepared.pipeline.version,
          input,
        });
        budgetUsd = auto.budgetUsd;
        process.stderr.write(`plumbline: ${auto.note}\n`);
      }
      const view = runOutput(g, spec, o);
      const rt = makeRuntime(store, g, { logger: view.logger, onEvent: (e) => view.onEvent(e) });
      const r = await rt.start(prepared, {
        input,
        ...(o.runId !== undefined ? { runId: o.runId } : {}),
        limits: limitsOf({ ...o, budgetUsd }),
      });
      await view.finish(r);
      box.code = exitCodeFor(r.status);
    } finally {
      await store.close();
    }
  };
}

/** The `resume` verb, imported only when it runs. */
export function resumeAction(box: ExitBox) {
  return async (
    runId: string | undefined,
    o: {
      pipelines?: string[];
      includeParked?: boolean;
      json?: boolean;
      budgetUsd?: number;
      maxIterations?: number;
      deadline?: number;
      maxInputTokens?: number;
      maxOutputTokens?: number;
    },
    cmd: Command,
  ) => {
    const g = globals(cmd);
    const store = await openStore(storeSpec(g));
    try {
      const given = await pipelinesFrom(o.pipelines);
      let ids: string[];
      if (runId !== undefined) {
        const run = await store.log.getRun(runId);
        if (run === undefined)
          throw new UsageError(`unknown run id '${runId}': list runs with \`plumbline runs\``);
        ids = [runId];
      } else {
        const runs = await store.log.listRuns({
          status: o.includeParked ? ['running', 'parked'] : ['running'],
        });
        ids = runs.map((r) => r.runId).reverse();
      }
      const rt = makeRuntime(store, g);
      let worst = 0;
      for (const id of ids) {
        const run = await store.log.getRun(id);
        if (run !== undefined && isTerminal(run.status)) {
          if (o.json)
            outJson({
              runId: id,
              status: run.status,
              costUsd: run.costUsd,
              note: 'already finished',
            });
          else out(`run ${id} is already ${run.status}: nothing to resume`);
          worst = Math.max(worst, exitCodeFor(run.status));
          continue;
        }
        const prepared = await pipelineForRun(store, id, given);
        requireModelFor(prepared);
        const r = await rt.resume(prepared, id, limitsOf(o));
        const events = await store.log.read(id);
        if (o.json) outJson(summaryOf(r));
        else out(resultLine(r, pathOfSteps(events)));
        worst = Math.max(worst, exitCodeFor(r.status));
      }
      if (ids.length === 0 && !o.json) out('no unfinished runs');
      box.code = worst;
    } finally {
      await store.close();
    }
  };
}

/** The `replay` verb, imported only when it runs. */
export function replayAction() {
  return async (
    runId: string,
    o: { until?: number; pipelines?: string[]; json?: boolean },
    cmd: Command,
  ) => {
    const client = await cliClient(globals(cmd));
    try {
      const events = await client.replay(runId);
      const prepared = await pipelineForRun(client.store, runId, await pipelinesFrom(o.pipelines));
      const bySeq = new Map(events.map((e) => [e.seq, e]));
      // Each join's children (map items, branches, calls): ids, status, cost, error.
      const joins = new Map((await client.childOutcomes(runId, events)).map((j) => [j.seq, j]));
      const folded = foldLog(prepared.machine, prepared.hash, runId, events, {
        ...(o.until !== undefined ? { until: o.until } : {}),
        onStep: (s) => {
          const e = bySeq.get(s.seq) as StoredEnvelope;
          if (o.json)
            outJson({
              seq: s.seq,
              at: s.at,
              event: s.event,
              from: s.from,
              to: s.to,
              costUsd: e.state.costUsd,
              status: e.state.status,
              ...(joins.has(s.seq) ? { children: joins.get(s.seq)?.children } : {}),
            });
          else {
            out(replayLine(e, s.from, s.to));
            const join = joins.get(s.seq);
            if (join !== undefined) childLines(join, runId).forEach((l) => out(l));
          }
        },
      });
      const status = statusOf(folded.snapshot);
      const unconfirmedUsd = events
        .filter((e) => e.seq <= folded.seq && isUnconfirmed(e.event))
        .reduce((a, e) => a + (e.event as { costUsd: number }).costUsd, 0);
      if (!o.json)
        out(
          `replayed ${folded.seq} events: state ${JSON.stringify(folded.snapshot.value)}, cost ${usd(folded.snapshot.context.costUsd)}${unconfirmedUsd > 0 ? ` (${usd(unconfirmedUsd)} of it unconfirmed: calls lost mid-flight, at their reservation)` : ''}, every recorded state matched`,
        );
      else
        outJson({
          summary: true,
          runId,
          seq: folded.seq,
          state: folded.snapshot.value,
          status,
          costUsd: folded.snapshot.context.costUsd,
          unconfirmedUsd: roundUsd(unconfirmedUsd),
          verified: true,
        });
    } finally {
      await client.close();
    }
  };
}

export { costAction } from './costVerb.js';

/** The `kill` verb, imported only when it runs. */
export function killAction() {
  return async (
    runId: string | undefined,
    o: {
      all?: boolean;
      pipeline?: string;
      reason: string;
      pipelines?: string[];
      json?: boolean;
    },
    cmd: Command,
  ) => {
    if ((runId === undefined) === (o.all !== true))
      throw new UsageError('kill needs a run id or --all (not both)');
    const g = globals(cmd);
    const given = await pipelinesFrom(o.pipelines);
    const client = await cliClient(g, given.values());
    try {
      const ids =
        runId !== undefined
          ? [runId]
          : (
              await client.runs({
                status: ['running', 'parked'],
                ...(o.pipeline !== undefined ? { pipeline: o.pipeline } : {}),
              })
            ).map((r) => r.runId);
      for (const id of ids) {
        const status = await client.kill(id, o.reason);
        if (o.json) outJson({ runId: id, killed: status === 'killed', status, reason: o.reason });
        else
          out(
            status === 'killed'
              ? `run ${id} killed: ${o.reason}`
              : `kill flag set for run ${id} (${status}): ${status === 'running' ? 'it stops before its next call or effect' : 'it had already ended'}`,
          );
      }
    } finally {
      await client.close();
    }
  };
}

/** The `demo` verb, imported only when it runs. */
export function demoAction(box: ExitBox) {
  return async (o: { tickets?: number }, cmd: Command) => {
    box.code = await runDemo(globals(cmd), o.tickets ?? 5);
  };
}
