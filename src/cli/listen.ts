/**
 * Servers the CLI starts (viz, worker metrics, fake-claude): a port that cannot be bound is a
 * usage error naming the port and the flag to change, not "unexpected Error: listen EADDRINUSE".
 */
import { UsageError } from '../errors.js';

/**
 * Runs `start` (which listens on `host:port`); a port in use or not allowed becomes a
 * UsageError that names the port and `flag`.
 * @example await listening('--port', 7777, '127.0.0.1', () => startVizServer({ port: 7777 }));
 */
export async function listening<T>(
  flag: string,
  port: number,
  host: string,
  start: () => Promise<T>,
): Promise<T> {
  try {
    return await start();
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const where = `${host}:${port}`;
    if (code === 'EADDRINUSE')
      throw new UsageError(
        `port ${port} is already in use (${where}): stop what holds it, or pass another ${flag} (${flag} 0 picks a free one)`,
        { cause: e },
      );
    if (code === 'EACCES')
      throw new UsageError(
        `not allowed to listen on port ${port} (${where}): pass a port above 1023 with ${flag}`,
        { cause: e },
      );
    if (code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND')
      throw new UsageError(
        `cannot listen on ${where}: no such local address; pass an address of this machine (e.g. 127.0.0.1)`,
        { cause: e },
      );
    throw e;
  }
}
