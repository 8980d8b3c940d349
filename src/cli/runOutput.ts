/**
 * What `plumbline run` shows. For a person (stdout or stderr a terminal): one live progress
 * line on a TTY stdout, then a short summary naming the log file, while log lines go to
 * that file (or to stderr with `--verbose`). For a pipe: the result line alone, or with
 * `--json` nothing but NDJSON (events, then the summary); logs stay on stderr.
 */
import type { StoredEnvelope } from '../machines/events.js';
import type { RunResult } from '../runtime/driver.js';
import type { Logger } from '../runtime/logger.js';
import { cliLogger, logFileFor, openLogFile, out, outJson, type GlobalOptions } from './context.js';
import { pathOfSteps, resultLine, summaryOf } from './format.js';
import { fitLine, renderLine, updateLine, type RunLine } from './progress.js';

/** The output of one `run`. */
export interface RunOutput {
  logger: Logger;
  onEvent(e: StoredEnvelope): void;
  /** Prints the summary and closes the log file. */
  finish(r: RunResult): Promise<void>;
}

/** Chooses the output of `run` from the flags and what stdout and stderr are. */
export function runOutput(
  g: GlobalOptions,
  spec: string,
  o: { json?: boolean; verbose?: boolean },
): RunOutput {
  const stdout = process.stdout;
  const person = stdout.isTTY === true || process.stderr.isTTY === true;
  const live = stdout.isTTY === true && o.json !== true && o.verbose !== true;
  const logPath = person && o.verbose !== true ? logFileFor(spec) : undefined;
  const file = logPath !== undefined ? openLogFile(logPath) : undefined;
  const logger = cliLogger(g, file);
  const events: StoredEnvelope[] = [];
  let line: RunLine | undefined;
  return {
    logger,
    onEvent(e) {
      events.push(e);
      if (o.json) outJson(e);
      else if (live) {
        line = updateLine(line, e);
        stdout.write(`\r\x1b[2K${fitLine(renderLine(line), stdout.columns)}`);
      }
    },
    async finish(r) {
      if (live && line !== undefined) stdout.write('\n');
      if (o.json) outJson({ summary: true, ...summaryOf(r) });
      else out(resultLine(r, pathOfSteps(events)));
      if (logPath !== undefined && o.json !== true) out(`log: ${logPath}`);
      if (file !== undefined) {
        logger.flush();
        await new Promise<void>((resolve) => file.end(resolve));
      }
    },
  };
}
