/**
 * Writing files safely from effects: write to a temporary name in the same directory, then
 * rename, so a crash never leaves a half-written file and a repeat writes the same file.
 */
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join, basename } from 'node:path';

/** Writes `data` to `path` atomically (temp file + rename in the same directory). */
export function writeFileAtomic(path: string, data: string | Uint8Array): void {
  const dir = dirname(path);
  mkdirSync(dir, { recursive: true });
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${Date.now()}.tmp`);
  writeFileSync(tmp, data);
  renameSync(tmp, path);
}
