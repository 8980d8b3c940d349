/**
 * Errors of plumbline. Each has a stable `code` and says what to do about it.
 * Split by what the caller should do: usage errors (exit 2), version conflicts (stop
 * driving), replay mismatches (code changed under a recorded run).
 */

/** Base class: every plumbline error has a stable `code`. */
export class PlumblineError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'PlumblineError';
    this.code = code;
  }
}

/** Bad input or configuration from the user: a one-line message naming the fix (CLI exit 2). */
export class UsageError extends PlumblineError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('E_USAGE', message, options);
    this.name = 'UsageError';
  }
}

/** An append whose expected version no longer matches the log: another writer got there first. */
export class VersionConflictError extends PlumblineError {
  readonly runId: string;
  readonly expected: number | 'no_stream';
  readonly actual: number | 'unknown';
  constructor(
    runId: string,
    expected: number | 'no_stream',
    actual: number | 'unknown',
    options?: { cause?: unknown },
  ) {
    super(
      'E_VERSION_CONFLICT',
      `run ${runId}: expected the log at version ${String(expected)} but it is at ${String(actual)}; another process is driving this run`,
      options,
    );
    this.name = 'VersionConflictError';
    this.runId = runId;
    this.expected = expected;
    this.actual = actual;
  }
}

/** A recorded log that does not replay against today's pipeline code. */
export class ReplayMismatchError extends PlumblineError {
  readonly runId: string;
  readonly seq: number;
  constructor(runId: string, seq: number, message: string) {
    super('E_REPLAY_MISMATCH', `run ${runId} seq ${seq}: ${message}`);
    this.name = 'ReplayMismatchError';
    this.runId = runId;
    this.seq = seq;
  }
}

/** The recorded machine hash differs from the hash of the pipeline loaded now. */
export class MachineHashMismatchError extends PlumblineError {
  readonly runId: string;
  readonly recorded: string;
  readonly current: string;
  constructor(runId: string, recorded: string, current: string) {
    super(
      'E_MACHINE_HASH',
      `run ${runId} was recorded with machine ${recorded} but the pipeline now compiles to ${current}: ` +
        `replay it with the pipeline version that recorded it, or fork it into a new run`,
    );
    this.name = 'MachineHashMismatchError';
    this.runId = runId;
    this.recorded = recorded;
    this.current = current;
  }
}

/** A stored event that fails its schema (corrupt or written by an incompatible version). */
export class CorruptEventError extends PlumblineError {
  readonly runId: string;
  readonly seq: number;
  constructor(runId: string, seq: number, detail: string) {
    super('E_CORRUPT_EVENT', `run ${runId} seq ${seq}: stored event is invalid: ${detail}`);
    this.name = 'CorruptEventError';
    this.runId = runId;
    this.seq = seq;
  }
}

/** True when `e` is a plumbline error with the given code (or any plumbline error). */
export function isPlumblineError(e: unknown, code?: string): e is PlumblineError {
  return e instanceof PlumblineError && (code === undefined || e.code === code);
}

/** True when `e` is a {@link VersionConflictError}. */
export function isVersionConflict(e: unknown): e is VersionConflictError {
  return e instanceof VersionConflictError;
}

/** True when `e` is a {@link UsageError}. */
export function isUsageError(e: unknown): e is UsageError {
  return e instanceof UsageError;
}

/** Converts anything thrown into a plain, JSON-safe object (an Error serialises to `{}`). */
export function serializeError(e: unknown): { name: string; message: string; code?: string } {
  if (e instanceof Error) {
    const code = (e as { code?: unknown }).code;
    return { name: e.name, message: e.message, ...(typeof code === 'string' ? { code } : {}) };
  }
  return { name: 'Error', message: typeof e === 'string' ? e : JSON.stringify(e) };
}
