/**
 * The child-run id rule on its own, so readers (`runs --tree`, the visualizer) that name
 * children do not load the runtime that starts them.
 */
import { createHash } from 'node:crypto';
import { RUN_ID_PATTERN } from './runId.js';

/**
 * A child's run id: `<parent>-<step>[-<part>]`, or a hash of it with the part when that would
 * break the run-id rule (128 characters), so nested children keep valid, stable ids.
 */
export function childRunId(parentId: string, step: string, part: number | string | null): string {
  const tail = part === null ? '' : `-${String(part)}`;
  const id = `${parentId}-${step}${tail}`;
  if (RUN_ID_PATTERN.test(id)) return id;
  return `c${createHash('sha256').update(id).digest('hex').slice(0, 40)}${tail}`.slice(0, 128);
}
