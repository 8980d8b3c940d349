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

/** Why a store cannot be used: the disk is full, the file is read-only, gone, or cannot be opened. */
export type StoreFault = 'full' | 'read-only' | 'gone' | 'cannot-open';

const STORE_FAULT_CODES: Record<StoreFault, string> = {
  full: 'E_STORE_FULL',
  'read-only': 'E_STORE_READ_ONLY',
  gone: 'E_STORE_GONE',
  'cannot-open': 'E_STORE_CANNOT_OPEN',
};

/** What to do about a store fault at `path` (one sentence, for messages and log lines). */
export function storeFaultFix(fault: StoreFault, path: string): string {
  switch (fault) {
    case 'full':
      return `free space on the disk holding ${path}`;
    case 'read-only':
      return `the store file ${path} is read-only: fix its permissions or pass --store`;
    case 'gone':
      return `the store file ${path} was deleted or replaced while plumbline was running: restore it or restart`;
    case 'cannot-open':
      return `cannot open the store file ${path}: check that its directory exists and is writable, or pass --store`;
  }
}

/**
 * The store cannot be read or written at all (not a problem of one run): the disk holding it is
 * full, the file is read-only, it was deleted or replaced under the process, or it cannot be
 * opened. Nothing was recorded by the failing call; a worker pauses and retries until it clears.
 * @example if (isStoreUnavailable(e)) logger.error({ store: e.path, fix: e.fix }, e.message);
 */
export class StoreUnavailableError extends PlumblineError {
  readonly path: string;
  readonly fault: StoreFault;
  /** The fix, as a sentence naming the path. */
  readonly fix: string;
  constructor(fault: StoreFault, path: string, detail: string, options?: { cause?: unknown }) {
    super(STORE_FAULT_CODES[fault], `${storeFaultFix(fault, path)} (${detail})`, options);
    this.name = 'StoreUnavailableError';
    this.path = path;
    this.fault = fault;
    this.fix = storeFaultFix(fault, path);
  }
}

/** True when `e` is a {@link StoreUnavailableError}. */
export function isStoreUnavailable(e: unknown): e is StoreUnavailableError {
  return e instanceof StoreUnavailableError;
}

/**
 * A store opened for reading that does not exist yet (nothing was ever written there), or lacks
 * a part a read needs (written by an older plumbline). Readers create nothing: the message names
 * the writer that would create or upgrade it.
 * @example if (isStoreNotFound(e)) console.error(e.message);
 */
export class StoreNotFoundError extends PlumblineError {
  /** Where the store was looked for (servers, and the prefix it goes by). */
  readonly store: string;
  constructor(store: string, message: string, options?: { cause?: unknown }) {
    super('E_STORE_NOT_FOUND', message, options);
    this.name = 'StoreNotFoundError';
    this.store = store;
  }
}

/** True when `e` is a {@link StoreNotFoundError}. */
export function isStoreNotFound(e: unknown): e is StoreNotFoundError {
  return e instanceof StoreNotFoundError;
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
