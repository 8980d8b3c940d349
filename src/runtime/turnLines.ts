/**
 * The log's file destination: lines gathered while the process runs one turn (a callback and
 * the promise continuations it sets off) and written together, synchronously, before the process
 * goes back to the event loop: one write(2) per turn instead of one per line. The runtime logs
 * a line per event once the event is durable, and a group commit makes many runs' events
 * durable at once, so a turn carries many lines (issue 14: at 100 runs in flight, ≈ 12 lines per
 * write; one write(2) per line had cost ≈ 10 µs with SQLite's fsyncs beside it, bench/notes.md).
 *
 * What a line can count on:
 * - it is in the file before any I/O callback, timer or signal handler runs after its turn;
 * - at the process's exit (`process.exit`, an uncaught exception, the end of the loop) the
 *   turn's lines are written first;
 * - a SIGKILL in the middle of a turn loses that turn's lines, whose events are already in the
 *   store (a SIGKILL between a commit and its lines could always do that);
 * - a write that fails (a full disk, a closed descriptor) never throws into the run that logged
 *   nor kills the process: the lines are dropped and counted, and the next line that can be
 *   written is preceded by one saying how many were lost and why. A broken pipe stops the log.
 */
import { writeSync } from 'node:fs';

/** Writes bytes to a descriptor, as `fs.writeSync` (tests inject failures and short writes). */
export type WriteFn = (fd: number, data: Uint8Array) => number;

/** How long to wait before retrying a write to a full non-blocking pipe, and how many times. */
const AGAIN_WAIT_MS = 10;
const AGAIN_TRIES = 500;

/** Every destination holding lines not written yet (written at the process's exit). */
const holding = new Set<TurnLines>();
let exitHooked = false;
const napCell = new Int32Array(new SharedArrayBuffer(4));

/** A descriptor's log lines, written once per turn (see the module comment). */
export class TurnLines {
  private lines: string[] = [];
  private dropped = 0;
  private lastError = '';
  private broken = false;
  /** A failed write had put part of its text in the file: the next one ends that line first. */
  private torn = false;
  private readonly writeTurn = (): void => this.writeOut();

  constructor(
    readonly fd: number,
    private readonly writeFd: WriteFn = writeSync,
  ) {}

  /** pino's stream interface: queue a line (with its newline) for the end of the turn. */
  write(line: string): boolean {
    if (this.broken) return true;
    if (this.lines.push(line) === 1) {
      holding.add(this);
      if (!exitHooked) {
        exitHooked = true;
        process.once('exit', () => {
          for (const t of holding) t.writeOut();
        });
      }
      process.nextTick(this.writeTurn);
    }
    return true;
  }

  /** Writes the lines held now. */
  writeOut(): void {
    if (this.lines.length === 0) return;
    const lines = this.lines;
    this.lines = [];
    holding.delete(this);
    let text = lines.length === 1 ? (lines[0] as string) : lines.join('');
    if (this.dropped > 0) text = this.lossLine() + text;
    if (this.torn) text = `\n${text}`;
    try {
      this.writeAll(Buffer.from(text));
      this.dropped = 0;
      this.torn = false;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EPIPE') {
        this.broken = true;
        return;
      }
      this.dropped += lines.length;
      this.lastError = code ?? (e as Error).message;
    }
  }

  /** pino's `logger.flush()`. */
  flush(cb?: (err?: Error) => void): void {
    this.writeOut();
    cb?.();
  }

  flushSync(): void {
    this.writeOut();
  }

  private writeAll(buf: Uint8Array): void {
    let rest = buf;
    let tries = 0;
    while (rest.length > 0) {
      try {
        rest = rest.subarray(this.writeFd(this.fd, rest));
        if (rest.length < buf.length) this.torn = true;
      } catch (e) {
        // A non-blocking pipe whose reader is slow: wait for it, as pino's destination does.
        if ((e as NodeJS.ErrnoException).code !== 'EAGAIN' || ++tries > AGAIN_TRIES) throw e;
        Atomics.wait(napCell, 0, 0, AGAIN_WAIT_MS);
      }
    }
  }

  private lossLine(): string {
    return `${JSON.stringify({
      level: 40,
      time: Date.now(),
      pid: process.pid,
      msg: `${this.dropped} log line(s) could not be written (${this.lastError}) and were dropped`,
    })}\n`;
  }
}
