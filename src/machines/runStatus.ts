/**
 * The statuses a run can have, as plain data: readers that only check a `--status` flag need
 * no schema library (the zod enum in events.ts is built from this list).
 */

/** Every run status, in the order messages list them. */
export const RUN_STATUSES = [
  'running',
  'completed',
  'failed',
  'killed',
  'parked',
  'waiting',
] as const;

/** True when `s` names a run status. */
export function isRunStatus(s: string): s is (typeof RUN_STATUSES)[number] {
  return (RUN_STATUSES as readonly string[]).includes(s);
}
