/**
 * `plumbline watch`: a live tail of run events from the store — one run or all of them — as
 * progress lines on a TTY, NDJSON with `--json`, plain lines otherwise.
 */
import type { StoredEnvelope } from '../machines/events.js';
import { isTerminal } from '../machines/fold.js';
import { sleep } from '../runtime/clock.js';
import type { Store } from '../store/types.js';
import { replayLine } from './format.js';
import { learnSteps, renderLine, updateLine, type RunLine } from './progress.js';

/** Options of {@link watch}. */
export interface WatchOptions {
  runId?: string;
  /** First seq (one run) or store position (all runs) to show; default: a run's whole log, or now for all. */
  from?: number;
  json: boolean;
  tty: boolean;
  pollMs?: number;
  signal: AbortSignal;
  write: (text: string) => void;
}

/** Tails events until the run ends (one run) or the signal aborts; returns the last status seen. */
export async function watch(store: Store, o: WatchOptions): Promise<string | null> {
  const lines = new Map<string, RunLine>();
  let drawn = 0;
  const show = (e: StoredEnvelope): void => {
    if (o.json) return o.write(`${JSON.stringify(e)}\n`);
    const prev = lines.get(e.runId);
    lines.set(e.runId, updateLine(prev, e));
    if (!o.tty) return o.write(`${e.runId} ${replayLine(e, null, e.state.value)}\n`);
    // Redraw the block of run lines in place.
    const block = [...lines.values()].slice(-20).map((l) => `\x1b[2K${renderLine(l)}`);
    o.write(`${drawn > 0 ? `\x1b[${drawn}A\r` : ''}${block.join('\n')}\n`);
    drawn = block.length;
  };
  const pollMs = o.pollMs ?? 200;
  if (o.runId !== undefined) {
    let next = o.from ?? 1;
    let status: string | null = null;
    while (!o.signal.aborted) {
      const batch = await store.log.read(o.runId, next);
      for (const e of batch) {
        if (!o.json) await learnSteps(store, e);
        show(e);
        next = e.seq + 1;
        status = e.state.status;
      }
      if (status !== null && (isTerminal(status as never) || status === 'parked')) return status;
      await sleep(pollMs, o.signal);
    }
    return status;
  }
  let pos = o.from;
  if (pos === undefined) {
    // Live from now: skip to the end of the store.
    pos = 0;
    for (;;) {
      const page = await store.log.readAll(pos, 10_000);
      if (page.length === 0) break;
      pos = page[page.length - 1]?.pos ?? pos;
    }
  }
  while (!o.signal.aborted) {
    const page = await store.log.readAll(pos, 1000);
    for (const e of page) {
      if (!o.json) await learnSteps(store, e);
      show(e);
      pos = e.pos;
    }
    if (page.length === 0) await sleep(pollMs, o.signal);
  }
  return null;
}
