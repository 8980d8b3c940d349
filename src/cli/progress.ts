/**
 * The live progress line of a run on a TTY: step, attempt, cost and a bar over the pipeline's
 * steps, redrawn in place as events arrive.
 */
import type { StoredEnvelope } from '../machines/events.js';
import type { MachineGraph } from '../machines/graph.js';
import { definitionOf, knownDefinition } from '../store/definitions.js';
import type { DefinitionStore } from '../store/types.js';
import { usd } from './format.js';

/** What the line shows for one run. */
export interface RunLine {
  runId: string;
  pipeline: string;
  steps: string[];
  step: string | null;
  attempt: number;
  costUsd: number;
  status: string;
  seq: number;
}

/** The step names of a recorded machine graph, in order. */
export function stepsOf(definition: unknown): string[] {
  const g = definition as MachineGraph | null;
  if (g === null || !Array.isArray(g.nodes)) return [];
  return g.nodes.filter((n) => n.parent === 'run' && n.type === 'compound').map((n) => n.key);
}

/**
 * Looks up the graph of a run that `e` starts, so that {@link updateLine} (synchronous) can show
 * its steps: a log written with `definition: null` keeps the graph in the store's definitions.
 * A failed lookup only leaves the bar without steps.
 */
export async function learnSteps(
  store: { definitions: DefinitionStore },
  e: StoredEnvelope,
): Promise<void> {
  if (e.event.type !== 'run.started') return;
  await definitionOf(store, e.event).catch(() => undefined);
}

/** Folds an envelope into a run line (steps from the graph known for its machine hash). */
export function updateLine(line: RunLine | undefined, e: StoredEnvelope): RunLine {
  const base: RunLine =
    line ??
    (e.event.type === 'run.started'
      ? {
          runId: e.runId,
          pipeline: e.event.pipeline,
          steps: stepsOf(knownDefinition(e.event) ?? null),
          step: null,
          attempt: 0,
          costUsd: 0,
          status: 'running',
          seq: 0,
        }
      : {
          runId: e.runId,
          pipeline: '?',
          steps: [],
          step: null,
          attempt: 0,
          costUsd: 0,
          status: 'running',
          seq: 0,
        });
  const attempt =
    'attempt' in e.event ? e.event.attempt : e.state.step !== base.step ? 0 : base.attempt;
  return {
    ...base,
    step: e.state.step,
    attempt,
    costUsd: e.state.costUsd,
    status: e.state.status,
    seq: e.seq,
  };
}

/** Renders a run line, e.g. `01J… triage [███░░] 3/4 draft #2 $0.004100 running`. */
export function renderLine(l: RunLine, width = 20): string {
  const total = Math.max(l.steps.length, 1);
  const idx = l.step === null ? 0 : Math.max(l.steps.indexOf(l.step), 0);
  const done = l.status === 'completed' ? total : idx;
  const filled = Math.round((done / total) * width);
  const bar = `${'█'.repeat(filled)}${'░'.repeat(width - filled)}`;
  const stepText =
    l.status === 'completed' ? 'done' : `${l.step ?? '-'}${l.attempt > 0 ? ` #${l.attempt}` : ''}`;
  return `${l.runId.slice(0, 26).padEnd(26)} ${l.pipeline.padEnd(12)} [${bar}] ${String(done).padStart(2)}/${total} ${stepText.padEnd(16)} ${usd(l.costUsd)} ${l.status} (seq ${l.seq})`;
}

/**
 * Cuts a line to the terminal's width (one column spare), so that `\r` and erase-line redraw
 * it in place instead of leaving wrapped remnants behind.
 */
export function fitLine(text: string, columns: number | undefined): string {
  if (columns === undefined || columns <= 1) return text;
  const chars = [...text];
  return chars.length < columns ? text : `${chars.slice(0, columns - 2).join('')}…`;
}
