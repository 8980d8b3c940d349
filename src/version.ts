/**
 * plumbline's own version and package directory, found from this module's place: the nearest
 * folder above it whose package.json is plumbline's. That is one level above `src/` and `dist/`,
 * and three above the bundle's chunks (`dist/bundle/chunks/`, see scripts/bundle.mjs).
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** plumbline's package.json, read. */
function findPackage(): { dir: string; version: string } {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const file = join(dir, 'package.json');
    if (existsSync(file)) {
      const pkg = JSON.parse(readFileSync(file, 'utf8')) as { name?: string; version: string };
      if (pkg.name === 'plumbline') return { dir, version: pkg.version };
    }
    const up = dirname(dir);
    if (up === dir) throw new Error(`plumbline's package.json is not above ${import.meta.url}`);
    dir = up;
  }
}

const found = findPackage();

/** The version in plumbline's package.json, for `plumbline --version`. */
export const VERSION: string = found.version;

/** The directory holding plumbline's package.json (the repository, or the installed package). */
export const PACKAGE_DIR: string = found.dir;
