/**
 * plumbline's own version, read from its package.json (one level above both `src/` and `dist/`).
 */
import { readFileSync } from 'node:fs';

/** The version in plumbline's package.json, for `plumbline --version`. */
export const VERSION: string = (
  JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
    version: string;
  }
).version;
