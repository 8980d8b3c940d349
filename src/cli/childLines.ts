/**
 * The lines `plumbline replay` prints under a join of a parent's log (CHILDREN_DONE,
 * BRANCH_DONE): each child's id (to replay it), status, cost and error, failed ones first when
 * there are too many to show, then a count of the rest.
 */
import { pickShown, type ChildJoin } from '../client/children.js';
import { usd } from './format.js';

/** How many children replay shows under one join. */
const SHOWN = 20;

/** The first line of an error, cut to a width that keeps the row on one line. */
function short(error: string): string {
  const line = error.split('\n')[0] ?? '';
  return line.length > 120 ? `${line.slice(0, 119)}…` : line;
}

/** `4 completed, 1 failed`. */
function tally(statuses: readonly string[]): string {
  const n = new Map<string, number>();
  for (const s of statuses) n.set(s, (n.get(s) ?? 0) + 1);
  return [...n.entries()].map(([s, k]) => `${k} ${s}`).join(', ');
}

/** The lines for one join, indented under its event's replay line. */
export function childLines(join: ChildJoin, parentId: string): string[] {
  const kids = join.children;
  const lines: string[] = [];
  if (kids.length > 1) {
    const cost = kids.reduce((a, k) => a + k.costUsd, 0);
    lines.push(
      `    ${kids.length} child runs of ${join.kind} '${join.step}': ${tally(kids.map((k) => k.status))}, cost ${usd(cost)} (plumbline replay <child id>)`,
    );
  }
  const shown = pickShown(kids, SHOWN);
  const width = Math.max(...shown.map((k) => k.runId.length));
  for (const k of shown)
    lines.push(
      `    └ ${k.runId.padEnd(width)} ${k.status.padEnd(9)} ${usd(k.costUsd)}${k.error !== undefined ? `  ${short(k.error)}` : ''}`,
    );
  const rest = kids.filter((k) => !shown.includes(k));
  if (rest.length > 0)
    lines.push(
      `    … ${rest.length} more: ${tally(rest.map((k) => k.status))} (plumbline runs --parent ${parentId})`,
    );
  return lines;
}
