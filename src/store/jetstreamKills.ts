/**
 * Kill flags of many runs at once on JetStream, for the runtime's kill watcher
 * (`ControlStore.getKills`, `killAsOf`): without them the watcher reads one KV key per watched
 * run whenever its answer is older than a poll, and one per run new to it.
 *
 * A flag is one message in the kills bucket's stream and is never cleared. A scan asks the
 * stream's last sequence (one `STREAM.INFO`) and reads the messages written since the previous
 * scan by sequence (kills are rare: usually none), remembering their subjects. The first scan,
 * or one that finds too many new messages, takes a new baseline: while the stream holds at most
 * `LIST_MAX` subjects, their list (one `STREAM.INFO` with a subject filter) makes the set of
 * flagged subjects complete, and a run whose subject is not in it has no flag as of that scan —
 * no read by key. Past `LIST_MAX`, a run is read by key once after each baseline instead, and
 * the scans see the flags set later. Scans run one at a time; a caller joins the next scan to
 * begin, never one already asking, so a scan it waited for saw every flag set before its call.
 * No watch: a stalled subscription could miss a kill without an error; a request that fails
 * fails the call, and the kill watcher asks again on its next tick.
 */
import type { JetStreamManager } from '@nats-io/jetstream';
import type { KillFlag } from './types.js';
import type { NatsLink } from './natsConnect.js';

/** More new messages than this in the kills stream since the last scan: a new baseline. */
const SCAN_MAX = 64;
/** Up to this many flagged runs, a baseline lists every flagged subject (one request). */
const LIST_MAX = 10_000;
/** Runs not asked about for this many scans are forgotten (read by key when asked again). */
const FORGET_AFTER = 50;

/** The kill-flag reads of {@link kvKillScan}. */
export interface KillScan {
  getKill(runId: string): Promise<KillFlag | undefined>;
  getKills(runIds: readonly string[]): Promise<KillFlag[]>;
  killAsOf(
    runId: string,
    since: number,
  ): Promise<{ flag: KillFlag | undefined; at: number } | undefined>;
}

/**
 * `getKill`, `getKills` and `killAsOf` over the kills bucket `bucket` (its stream is
 * `KV_<bucket>`). Every `getKills` call returns the flag of each asked run whose flag message is
 * in the stream when the call began, whoever asked before.
 */
export function kvKillScan(
  link: NatsLink,
  jsm: JetStreamManager,
  bucket: string,
  keyOf: (runId: string) => string,
  readKill: (runId: string) => Promise<KillFlag | undefined>,
  /** Tests: list at most this many flagged subjects at a baseline (default 10,000). */
  listMax = LIST_MAX,
): KillScan {
  const stream = `KV_${bucket}`;
  const subjectOf = (runId: string): string => `$KV.${bucket}.${keyOf(runId)}`;
  /** Up to where the stream was scanned; undefined until the first scan (the baseline). */
  let cursor: number | undefined;
  /** True while `flagged` holds every flagged subject up to `cursor` (a listed baseline). */
  let complete = false;
  /** When the last scan that left `flagged` complete began (`performance.now()`). */
  let completeAt = Number.NEGATIVE_INFINITY;
  /** Bumped at each new baseline: a read that began before it does not count as a check. */
  let epoch = 0;
  /** Subjects known to hold a flag (listed, scanned, or read by key): flags are never cleared. */
  let flagged = new Set<string>();
  /** Without a complete list: runs read by key since the baseline, with the scan that last asked. */
  const checked = new Map<string, number>();
  let scans = 0;

  /** One scan: brings `cursor` and `flagged` up to the stream's last message. */
  const once = async (): Promise<void> => {
    const began = performance.now();
    scans += 1;
    const state = (await link.retry(() => jsm.streams.info(stream))).state;
    const last = state.last_seq;
    if (cursor === undefined || last < cursor || last - cursor > SCAN_MAX) {
      epoch += 1;
      checked.clear();
      complete = false;
      // The server leaves `num_subjects` out when it is 0.
      if ((state.num_subjects ?? 0) <= listMax) {
        // Every message up to `last` was stored before this list was made: it names them all.
        const listed = await link.retry(() =>
          jsm.streams.info(stream, { subjects_filter: `$KV.${bucket}.>` }),
        );
        flagged = new Set(Object.keys(listed.state.subjects ?? {}));
        complete = true;
      }
    } else {
      for (let seq = cursor + 1; seq <= last; seq++) {
        const m = await link.retry(() => jsm.streams.getMessage(stream, { seq }));
        if (m !== null) flagged.add(m.subject);
      }
    }
    cursor = last;
    if (complete) completeAt = began;
  };

  let inFlight: Promise<void> | undefined;
  let queued: Promise<void> | undefined;
  const start = (): Promise<void> => {
    const p: Promise<void> = once().finally(() => {
      if (inFlight === p) inFlight = undefined;
    });
    inFlight = p;
    return p;
  };
  /** A scan that begins after this call: the next one, shared by every caller until it starts. */
  const scan = (): Promise<void> => {
    if (queued !== undefined) return queued;
    if (inFlight === undefined) return start();
    const q = inFlight
      .catch(() => undefined)
      .then(() => {
        queued = undefined;
        return start();
      });
    queued = q;
    return q;
  };

  /**
   * A read by key. Begun once the stream was scanned up to `cursor`, it saw every flag at or
   * below it, and the scans see the later ones: the run need not be read again by `getKills`.
   */
  const getKill = async (runId: string): Promise<KillFlag | undefined> => {
    const from = cursor === undefined ? undefined : epoch;
    const flag = await readKill(runId);
    if (flag !== undefined) flagged.add(subjectOf(runId));
    if (from !== undefined && from === epoch && !checked.has(runId)) checked.set(runId, scans);
    return flag;
  };

  const getKills = async (runIds: readonly string[]): Promise<KillFlag[]> => {
    await scan();
    const at = scans;
    const from = epoch;
    const need = runIds.filter(
      (id) => flagged.has(subjectOf(id)) || (!complete && !checked.has(id)),
    );
    const flags = (await Promise.all(need.map((id) => readKill(id)))).filter(
      (f): f is KillFlag => f !== undefined,
    );
    for (const f of flags) flagged.add(subjectOf(f.runId));
    // Reads begun before another call's new baseline do not count as checks after it.
    if (!complete && from === epoch) {
      for (const id of runIds) checked.set(id, at);
      if (checked.size > 2 * runIds.length + 1_000)
        for (const [id, n] of checked) if (at - n > FORGET_AFTER) checked.delete(id);
    }
    return flags;
  };

  /**
   * The run's flag as of the last scan that began at or after `since` (`performance.now()`),
   * when scans list every flag: none is read unless the run is flagged. An older last scan has the
   * caller join the next one (shared by every caller meanwhile). Undefined when the flags are too
   * many to list: the caller reads the run's flag itself.
   */
  const killAsOf = async (
    runId: string,
    since: number,
  ): Promise<{ flag: KillFlag | undefined; at: number } | undefined> => {
    if (cursor !== undefined && !complete) return undefined;
    if (completeAt < since) await scan();
    if (!complete) return undefined;
    const at = completeAt;
    if (!flagged.has(subjectOf(runId))) return { flag: undefined, at };
    const now = performance.now();
    return { flag: await getKill(runId), at: now };
  };

  return { getKill, getKills, killAsOf };
}
