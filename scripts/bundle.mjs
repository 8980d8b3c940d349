// The package's JavaScript, bundled (run by `npm run build`, after tsc).
//
// tsc writes one file per module under dist/; loading ~50 of them is most of what a CLI verb
// spends after Node starts (Node's ESM loader costs ~0.3 ms a module here: BENCHMARKS.md,
// figure 7). esbuild bundles the package's entry points together — `plumbline`,
// `plumbline/testing`, the CLI and the example pipelines `plumbline demo` runs — into
// dist/bundle/, with the code they share in common chunks: every module exists once, so a
// pipeline that imports `plumbline` and the CLI that runs it share the same classes and state.
// Modules loaded on demand (`import()`) stay separate chunks, loaded on demand. Dependencies
// stay external (resolved from node_modules as before). dist/bundle/meta.json maps each output
// file to the modules in it (test/cli.lazyStart.int.test.ts reads it).
import { readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, URL } from 'node:url';
import { build } from 'esbuild';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const DIST = join(ROOT, 'dist');
const examples = readdirSync(join(DIST, 'examples'))
  .filter((f) => f.endsWith('.js'))
  .map((f) => join(DIST, 'examples', f));

// Chunks are named by content hash: clear out the last build's.
rmSync(join(DIST, 'bundle'), { recursive: true, force: true });
const result = await build({
  entryPoints: [
    join(DIST, 'index.js'),
    join(DIST, 'testing', 'index.js'),
    join(DIST, 'cli', 'main.js'),
    ...examples,
  ],
  outbase: DIST,
  outdir: join(DIST, 'bundle'),
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  packages: 'external',
  chunkNames: 'chunks/[name]-[hash]',
  // Function and class names as written (error names, stack traces, logs).
  keepNames: true,
  sourcemap: true,
  metafile: true,
  logLevel: 'warning',
});
writeFileSync(join(DIST, 'bundle', 'meta.json'), JSON.stringify(result.metafile));
