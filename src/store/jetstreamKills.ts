/**
 * Kill flags of many runs in one request on JetStream (`ControlStore.getKills`), for the
 * runtime's kill watcher: without it the watcher reads one KV key per watched run whenever its
 * answer is older than a poll (3–4 requests per 3-step run at 100 runs in flight).
 *
 * A flag is one message in the kills bucket's stream and is never cleared. Each call asks the
 * stream's last sequence (one `STREAM.INFO`); the messages written since the previous call are
 * read by sequence (kills are rare: usually none) and their subjects remembered. A run is read
 * by key, after the info, when it was not read since the baseline or its subject holds a flag:
 * a flag set before a run was first asked about is seen by that read, one set later by a scan.
 * No watch: a stalled subscription could miss a kill without an error; a request that fails
 * fails the call, and the kill watcher asks again on its next tick.
 */
import type { JetStreamManager } from '@nats-io/jetstream';
import type { KillFlag } from './types.js';
import type { NatsLink } from './natsConnect.js';

/** More new messages than this in the kills stream since the last call: read every run by key. */
const SCAN_MAX = 64;
/** Runs not asked about for this many calls are forgotten (read by key when asked again). */
const FORGET_AFTER = 50;

/**
 * `getKill` and `getKills` over the kills bucket `bucket` (its stream is `KV_<bucket>`). Every
 * `getKills` call returns the flag of each asked run whose flag message is at or below the
 * stream's last sequence when the call began, whoever asked before (calls run one at a time).
 */
export function kvKillScan(
  link: NatsLink,
  jsm: JetStreamManager,
  bucket: string,
  keyOf: (runId: string) => string,
  readKill: (runId: string) => Promise<KillFlag | undefined>,
): {
  getKill(runId: string): Promise<KillFlag | undefined>;
  getKills(runIds: readonly string[]): Promise<KillFlag[]>;
} {
  const stream = `KV_${bucket}`;
  const subjectOf = (runId: string): string => `$KV.${bucket}.${keyOf(runId)}`;
  /** Up to where the stream was scanned; undefined until the first call (the baseline). */
  let cursor: number | undefined;
  /** Bumped at each new baseline: a read that began before it does not count as a check. */
  let epoch = 0;
  /** Subjects known to hold a flag (scanned, or read by key): flags are never cleared. */
  const flagged = new Set<string>();
  /** Runs read by key since the baseline, with the call that last asked about them. */
  const checked = new Map<string, number>();
  let calls = 0;
  let queue: Promise<unknown> = Promise.resolve();

  /**
   * A read by key. Begun once the stream was scanned up to `cursor`, it saw every flag at or
   * below it, and the scans see the later ones: the run need not be read again by `getKills`.
   */
  const getKill = async (runId: string): Promise<KillFlag | undefined> => {
    const from = cursor === undefined ? undefined : epoch;
    const flag = await readKill(runId);
    if (flag !== undefined) flagged.add(subjectOf(runId));
    if (from !== undefined && from === epoch && !checked.has(runId)) checked.set(runId, calls);
    return flag;
  };

  const once = async (runIds: readonly string[]): Promise<KillFlag[]> => {
    calls += 1;
    const last = (await link.retry(() => jsm.streams.info(stream))).state.last_seq;
    if (cursor === undefined || last - cursor > SCAN_MAX) {
      // A new baseline: every run is read by key after the info above.
      epoch += 1;
      checked.clear();
    } else {
      for (let seq = cursor + 1; seq <= last; seq++) {
        const m = await link.retry(() => jsm.streams.getMessage(stream, { seq }));
        if (m !== null) flagged.add(m.subject);
      }
    }
    cursor = last;
    const need = runIds.filter((id) => !checked.has(id) || flagged.has(subjectOf(id)));
    const flags = (await Promise.all(need.map((id) => readKill(id)))).filter(
      (f): f is KillFlag => f !== undefined,
    );
    for (const f of flags) flagged.add(subjectOf(f.runId));
    for (const id of runIds) checked.set(id, calls);
    if (checked.size > 2 * runIds.length + 1_000)
      for (const [id, at] of checked) if (calls - at > FORGET_AFTER) checked.delete(id);
    return flags;
  };

  const getKills = (runIds: readonly string[]): Promise<KillFlag[]> => {
    const run = queue.then(
      () => once(runIds),
      () => once(runIds),
    );
    queue = run.catch(() => undefined);
    return run;
  };
  return { getKill, getKills };
}
