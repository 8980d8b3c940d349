/**
 * Standard output closed early (`plumbline runs --json | head -1`): the reader has all it
 * wanted, so the process ends at once, quietly, with the shell's code for a broken pipe.
 */

/** Exit code of a process ended by a broken pipe: 128 + SIGPIPE (13), as a shell reports it. */
export const BROKEN_PIPE_EXIT = 141;

let installed = false;

/**
 * Makes an EPIPE on stdout end the process with {@link BROKEN_PIPE_EXIT} and no stack trace
 * (Node would otherwise throw it as an unhandled 'error' event). Other stdout errors are
 * rethrown as before. Idempotent.
 */
export function exitQuietlyOnBrokenPipe(stream: NodeJS.WriteStream = process.stdout): void {
  if (installed) return;
  installed = true;
  stream.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(BROKEN_PIPE_EXIT);
    throw e;
  });
}
