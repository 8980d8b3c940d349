/**
 * The CLI verbs.
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
  nonNegativeNumber,
  parseDuration,
  parseInput,
  positiveInteger,
  requireModelFor,
  storeSpec,
  globals,
} from './context.js';
import { pathOfSteps, replayLine, resultLine, summaryOf, usd } from './format.js';
import { exitCodeFor, type ExitBox } from './main.js';
import { pipelineForRun, pipelinesFrom } from './pipelines.js';
import { runDemo } from './demo.js';
import { isUnconfirmed, type CostBy } from './cost.js';
import { cliClient } from './client.js';
import { childLines } from './childLines.js';
import { runOutput } from './runOutput.js';
import { registerFakeClaudeCommand } from './fakeClaude.js';
import { registerOperatorCommands } from './operate.js';
import { registerRunsCommand } from './runs.js';
import { registerFleetCommands } from './fleet.js';
import { addLimitOptions } from './limitOptions.js';
import { registerForecastCommand } from './forecast.js';
import { registerSignalCommand } from './signal.js';
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

/** Registers every verb on `program`. */
export function registerCommands(program: Command, box: ExitBox): void {
  addLimitOptions(
    program
      .command('run')
      .description('drive one run of a pipeline to the end in this process')
      .argument('<pipeline-file>', 'a .ts or .js module whose default export is a pipeline')
      .option('--input <json>', 'the run input: JSON, or @file.json')
      .option('--run-id <id>', 'the run id (default: a new ULID)')
      .option('--json', 'print events and a summary as NDJSON (nothing else on stdout)')
      .option('--verbose', 'log lines to stderr (default on a terminal: a file under the store)')
      .addHelpText(
        'after',
        '\nOn a terminal: one live progress line, a short summary, log lines in <store dir>/logs/<date>.log.\n\nExample:\n  plumbline run examples/triage.ts --input \'{"id":"T-1","from":"a@b.c","subject":"down","body":"prod is down"}\'',
      ),
  ).action(
    async (
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
    },
  );

  program
    .command('resume')
    .description(
      'resume one unfinished run (raising its limits if parked), or every unfinished run',
    )
    .argument('[runId]', 'the run to resume (default: every run still running)')
    .option(
      '--pipelines <paths...>',
      'pipeline files or directories (default: the module recorded with the run)',
    )
    .option('--include-parked', 'without a run id: also resume parked runs')
    .option('--budget-usd <n>', 'new budget cap in USD', nonNegativeNumber('--budget-usd'))
    .option('--max-iterations <n>', 'new cap on model calls', positiveInteger('--max-iterations'))
    .option('--deadline <duration>', 'new wall-clock limit from now', parseDuration)
    .option(
      '--max-input-tokens <n>',
      'new cap on input tokens',
      positiveInteger('--max-input-tokens'),
    )
    .option(
      '--max-output-tokens <n>',
      'new cap on output tokens',
      positiveInteger('--max-output-tokens'),
    )
    .option('--json', 'print one summary line per run as JSON')
    .addHelpText('after', '\nExample:\n  plumbline resume 01J9Z... --budget-usd 0.05')
    .action(
      async (
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
      },
    );

  program
    .command('replay')
    .description(
      "fold a run's log without side effects, print every transition, check the recorded states; under each join, the child runs' outcomes",
    )
    .argument('<runId>')
    .option('--until <seq>', 'stop after this seq', positiveInteger('--until'))
    .option(
      '--pipelines <paths...>',
      'pipeline files or directories (default: the module recorded with the run)',
    )
    .option('--json', 'one JSON object per transition')
    .addHelpText('after', '\nExample:\n  plumbline replay 01J9Z... --until 12')
    .action(
      async (
        runId: string,
        o: { until?: number; pipelines?: string[]; json?: boolean },
        cmd: Command,
      ) => {
        const client = await cliClient(globals(cmd));
        try {
          const events = await client.replay(runId);
          const prepared = await pipelineForRun(
            client.store,
            runId,
            await pipelinesFrom(o.pipelines),
          );
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
      },
    );

  registerRunsCommand(program);

  program
    .command('cost')
    .description('spend from the log: totals by pipeline, model, day or top-level run')
    .option(
      '--by <key>',
      'pipeline | model | day | run (a top-level run with its child runs: folds every log)',
      'pipeline',
    )
    .option(
      '--from-log',
      'fold every log instead of reading the rollups (slow; names unreadable runs)',
    )
    .option('--json', 'one JSON object per row')
    .addHelpText(
      'after',
      "\nA call whose process died mid-call is counted at its reservation and shown as unconfirmed.\nA fork's copied calls count once, to the run that made them; a child run's calls\n(map items, parallel branches, calls) count once, to the child (its pipeline), never again in\nits parent's rolled-up cost; --by run sums each top-level run with all its children.\nTotals come from rollups kept as runs end, plus the events of unfinished runs; with --from-log,\nruns whose log cannot be read are left out and named on stderr (exit 1).\n\nExample:\n  plumbline cost --by model\n  plumbline cost --by run",
    )
    .action(async (o: { by?: string; json?: boolean; fromLog?: boolean }, cmd: Command) => {
      const by = o.by ?? 'pipeline';
      if (!['pipeline', 'model', 'day', 'run'].includes(by))
        throw new UsageError(`--by ${by}: use pipeline, model, day or run`);
      const client = await cliClient(globals(cmd));
      try {
        const { rows, skipped } = await client.cost(by as CostBy, {
          fromLog: o.fromLog === true,
        });
        for (const r of skipped)
          process.stderr.write(`plumbline: cost: skipped run ${r.runId}: ${r.reason}\n`);
        if (skipped.length > 0) {
          process.stderr.write(
            `plumbline: cost: ${skipped.length} unreadable run(s) left out of the totals; \`plumbline verify --all\` names them all\n`,
          );
          box.code = 1;
        }
        if (o.json) rows.forEach((r) => outJson(r));
        else {
          const w = Math.max(24, ...rows.map((r) => r.key.length));
          out(
            `${by.padEnd(w)} ${'calls'.padStart(6)} ${'input'.padStart(9)} ${'output'.padStart(9)} ${'cache r'.padStart(9)} ${'cache w'.padStart(9)} ${'cost'.padStart(12)} ${'unconfirmed'.padStart(12)}`,
          );
          for (const r of rows)
            out(
              `${r.key.padEnd(w)} ${String(r.calls).padStart(6)} ${String(r.inputTokens).padStart(9)} ${String(r.outputTokens).padStart(9)} ${String(r.cacheReadTokens).padStart(9)} ${String(r.cacheWriteTokens).padStart(9)} ${usd(r.costUsd).padStart(12)} ${(r.unconfirmedCalls > 0 ? usd(r.unconfirmedUsd) : '-').padStart(12)}`,
            );
          const unconfirmed = rows.reduce((a, r) => a + r.unconfirmedCalls, 0);
          if (unconfirmed > 0)
            out(
              `${unconfirmed} call(s) lost mid-flight are counted at their reservation (unconfirmed: the provider may have billed less, or nothing)`,
            );
        }
      } finally {
        await client.close();
      }
    });

  program
    .command('kill')
    .description(
      'set a durable kill flag: the run stops before its next call or effect, and never resumes',
    )
    .argument('[runId]')
    .option('--all', 'kill every unfinished run')
    .option('--pipeline <name>', 'with --all: only runs of this pipeline')
    .option('--reason <text>', 'why (recorded in the log)', 'killed by operator')
    .option(
      '--pipelines <paths...>',
      'pipeline files or directories (to record the kill in parked runs)',
    )
    .option('--json', 'one JSON object per run killed')
    .addHelpText(
      'after',
      '\nExample:\n  plumbline kill 01J9Z... --reason "runaway loop"\n  plumbline kill --all --pipeline triage',
    )
    .action(
      async (
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
            if (o.json)
              outJson({ runId: id, killed: status === 'killed', status, reason: o.reason });
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
      },
    );

  registerOperatorCommands(program, box);
  registerFleetCommands(program);
  registerForecastCommand(program);
  registerSignalCommand(program, box);
  registerFakeClaudeCommand(program);

  program
    .command('demo')
    .description(
      'run the examples end to end: ticket triage, a route and a map (fake Claude when ANTHROPIC_API_KEY is unset)',
    )
    .option(
      '--tickets <n>',
      'how many sample tickets to triage (default 5)',
      positiveInteger('--tickets'),
    )
    .addHelpText('after', '\nExample:\n  plumbline demo --store /tmp/demo.db')
    .action(async (o: { tickets?: number }, cmd: Command) => {
      box.code = await runDemo(globals(cmd), o.tickets ?? 5);
    });
}
