// The package's JavaScript, bundled (run by `npm run build`, after tsc).
//
// tsc writes one file per module under dist/; loading ~50 of them is most of what a CLI verb
// spends after Node starts (Node's ESM loader costs ~0.3 ms a module here: BENCHMARKS.md,
// figure 7). esbuild bundles the package's entry points together — `plumbline`,
// `plumbline/testing`, the CLI and the example pipelines `plumbline demo` runs — into
// dist/bundle/, with the code they share in common chunks: every module exists once, so a
// pipeline that imports `plumbline` and the CLI that runs it share the same classes and state.
// Modules loaded on demand (`import()`) stay separate chunks, loaded on demand. Dependencies
// stay external (resolved from node_modules as before), but for the NATS client: its packages
// (@nats-io/*, CommonJS, 69 files) are bundled into one CommonJS file,
// dist/bundle/vendor/nats.cjs, which `require` loads in ~27 ms of CPU where the 69 files took
// ~48 (BENCHMARKS notes, "CLI start"). In the bundle, dist/store/natsLib.js (which requires
// the packages from node_modules) is replaced by a module that requires that file. plumbline's
// NATS objects (connections, clients, errors) are then of that copy; the public API hands none
// of them out (`openStoreFromUrl` returns the `Store` port). dist/bundle/meta.json maps each
// output file to the modules in it (test/cli.lazyStart.int.test.ts reads it).
import { readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath, URL } from 'node:url';
import { build } from 'esbuild';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const DIST = join(ROOT, 'dist');
const examples = readdirSync(join(DIST, 'examples'))
  .filter((f) => f.endsWith('.js'))
  .map((f) => join(DIST, 'examples', f));

/** natsLib.js in the bundle (it always lands in chunks/: only loaded by `import()`). */
const NATS_LIB = `
import { createRequire } from 'node:module';
const nats = createRequire(import.meta.url)('../vendor/nats.cjs');
export const natsCore = nats.core;
export const natsJetStream = nats.jetstream;
export const natsKv = nats.kv;
export const natsObj = async () => nats.obj();
`;
const natsInline = {
  name: 'nats-vendor',
  setup(b) {
    b.onLoad({ filter: /[\\/]dist[\\/]store[\\/]natsLib\.js$/ }, () => ({
      contents: NATS_LIB,
      loader: 'js',
    }));
  },
};

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
  plugins: [natsInline],
  chunkNames: 'chunks/[name]-[hash]',
  // Function and class names as written (error names, stack traces, logs).
  keepNames: true,
  sourcemap: true,
  metafile: true,
  logLevel: 'warning',
});
writeFileSync(join(DIST, 'bundle', 'meta.json'), JSON.stringify(result.metafile));
const natsAt = Object.entries(result.metafile.outputs).find(([, o]) =>
  Object.keys(o.inputs).some((i) => /dist[\\/]store[\\/]natsLib\.js$/.test(i)),
)?.[0];
if (natsAt === undefined || !/dist\/bundle\/chunks\/[^/]+$/.test(natsAt))
  throw new Error(`natsLib.js is in ${natsAt}, not in dist/bundle/chunks/: fix its vendor path`);

// The NATS client in one CommonJS file (the object store client initialised on first use).
await build({
  stdin: {
    contents: `module.exports = {
  core: require('@nats-io/transport-node'),
  jetstream: require('@nats-io/jetstream'),
  kv: require('@nats-io/kv'),
  obj: () => require('@nats-io/obj'),
};`,
    resolveDir: ROOT,
    sourcefile: 'nats-vendor.cjs',
    loader: 'js',
  },
  outfile: join(DIST, 'bundle', 'vendor', 'nats.cjs'),
  bundle: true,
  format: 'cjs',
  platform: 'node',
  target: 'node20',
  keepNames: true,
  logLevel: 'warning',
});
// Loads, and is the NATS client the package pins.
const vendor = createRequire(import.meta.url)(join(DIST, 'bundle', 'vendor', 'nats.cjs'));
if (typeof vendor.core.connect !== 'function' || typeof vendor.jetstream.jetstream !== 'function')
  throw new Error('dist/bundle/vendor/nats.cjs does not export the NATS client');
