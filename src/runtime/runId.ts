/**
 * The run-id rule, defined once: every verb that names a new run (start, run, fork, the queue)
 * and every reader that takes one from outside (the visualizer's URLs) checks it here.
 */
import { UsageError } from '../errors.js';

/** 1-128 letters, digits, '-' or '_': safe in a NATS subject, a URL path and a file name. */
export const RUN_ID_PATTERN = /^[A-Za-z0-9_-]{1,128}$/;

/** What a valid run id looks like, for error messages. */
export const RUN_ID_RULE = "use 1-128 letters, digits, '-' or '_'";

/** True when `id` follows the run-id rule. */
export function isRunId(id: string): boolean {
  return RUN_ID_PATTERN.test(id);
}

/**
 * Returns `id`, or throws a {@link UsageError} naming the rule when it is not a valid run id.
 * @example const runId = checkNewRunId(o.runId ?? ulid());
 */
export function checkNewRunId(id: string): string {
  if (!isRunId(id)) throw new UsageError(`run id '${id}' is invalid: ${RUN_ID_RULE}`);
  return id;
}
