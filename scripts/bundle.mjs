// The package's JavaScript, bundled (run by `npm run build`, after tsc).
//
// tsc writes one file per module under dist/; loading ~50 of them is most of what a CLI verb spends
// after Node starts (Node's ESM loader costs ~0.3 ms a module here: BENCHMARKS.md, figure 7).
// esbuild bundles the package's entry points together — `plumbline`, `plumbline/testing`, the CLI
// and the example pipelines `plumbline demo` runs — into dist/bundle/, with the code they share in
// common chunks: every module exists once, so a pipeline that imports `plumbline` and the CLI that
// runs it share the same classes and state. Modules loaded on demand (`import()`) stay separate
// chunks, loaded on demand, but for the read path: the light modules (importing no package) that
// `runs` and `cost` load are kept in two chunks (scripts/bundleGroups.mjs), so such a verb loads ~8
// files of dist/bundle/ where it loaded 26 (~10 ms of CPU: BENCHMARKS notes, "CLI start").
// Dependencies stay external (resolved from node_modules as before), but for the NATS client: its
// packages (@nats-io/*, CommonJS, 69 files) are bundled into one CommonJS file,
// dist/bundle/vendor/nats.cjs, which `require` loads in ~27 ms of CPU where the 69 files took ~48
// (BENCHMARKS notes, "CLI start"). In the bundle, dist/store/natsLib.js (which requires the
// packages from node_modules) is replaced by a module that requires that file. plumbline's NATS
// objects (connections, clients, errors) are then of that copy; the public API hands none of them
// out (`openStoreFromUrl` returns the `Store` port). dist/bundle/meta.json maps each output file to
// the modules in it (test/cli.lazyStart.int.test.ts reads it).
//
// commander (CommonJS, 7 files, which Node's ESM loader would also run its export lexer over) is
// bundled the same way into dist/bundle/vendor/commander.cjs, required by the chunk that imports
// it. In nats.cjs, the nkeys package's tweetnacl (only used for nkey and credentials auth) is
// initialised on first use instead of at load: @nats-io/nkeys/lib/nacl.js's `default` export
// becomes a getter (its users read `nacl_1.default.x` when they sign). Together ~4 ms of CPU off
// every verb (BENCHMARKS notes, "CLI start"). The build checks what each of these relies on and
// fails if a package no longer has the shape it rewrites.
import { Buffer } from 'node:buffer';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath, URL } from 'node:url';
import { build } from 'esbuild';
import { readPathGroups } from './bundleGroups.mjs';

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

const require = createRequire(import.meta.url);

/**
 * `commander` in the bundle: the same names, from the CommonJS file built below. Its importer
 * lands one folder under dist/bundle/ (checked after the build), beside vendor/.
 */
const COMMANDER_NAMES = Object.keys(require('commander'));
const COMMANDER = `
import { createRequire } from 'node:module';
const commander = createRequire(import.meta.url)('../vendor/commander.cjs');
export const { ${COMMANDER_NAMES.join(', ')} } = commander;
`;
const commanderVendor = {
  name: 'commander-vendor',
  setup(b) {
    b.onResolve({ filter: /^commander$/ }, () => ({ path: 'commander', namespace: 'vendor' }));
    b.onLoad({ filter: /^commander$/, namespace: 'vendor' }, () => ({
      contents: COMMANDER,
      loader: 'js',
      resolveDir: ROOT,
    }));
  },
};

const OPTIONS = {
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
  plugins: [natsInline, commanderVendor],
  chunkNames: 'chunks/[name]-[hash]',
  // Function and class names as written (error names, stack traces, logs).
  keepNames: true,
  sourcemap: true,
  metafile: true,
  logLevel: 'warning',
  absWorkingDir: ROOT,
};
const groups = await readPathGroups(build, OPTIONS);

// Chunks are named by content hash: clear out the last build's.
rmSync(join(DIST, 'bundle'), { recursive: true, force: true });
const result = await build({ ...OPTIONS, plugins: [...OPTIONS.plugins, groups.plugin] });
writeFileSync(join(DIST, 'bundle', 'meta.json'), JSON.stringify(result.metafile));
await groups.check(result.metafile);
const natsAt = Object.entries(result.metafile.outputs).find(([, o]) =>
  Object.keys(o.inputs).some((i) => /dist[\\/]store[\\/]natsLib\.js$/.test(i)),
)?.[0];
if (natsAt === undefined || !/dist\/bundle\/chunks\/[^/]+$/.test(natsAt))
  throw new Error(`natsLib.js is in ${natsAt}, not in dist/bundle/chunks/: fix its vendor path`);
const commanderAt = Object.entries(result.metafile.outputs).find(([, o]) =>
  Object.keys(o.inputs).includes('vendor:commander'),
)?.[0];
if (commanderAt === undefined || !/dist\/bundle\/[^/]+\/[^/]+$/.test(commanderAt))
  throw new Error(
    `commander is imported from ${commanderAt}, not one folder under dist/bundle/: fix its vendor path`,
  );

/**
 * @nats-io/nkeys/lib/nacl.js re-exports tweetnacl, which computes its tables when loaded: ~2 ms
 * at every start, for an nkey signature few stores use. The rewrite makes `default` a getter that
 * requires tweetnacl on first read, with the same value. It fails the build if the file changes.
 */
const NKEYS_NACL = /[\\/]@nats-io[\\/]nkeys[\\/]lib[\\/]nacl\.js$/;
let naclRewritten = 0;
const naclLazy = {
  name: 'nkeys-nacl-lazy',
  setup(b) {
    b.onLoad({ filter: NKEYS_NACL }, (args) => {
      const text = readFileSync(args.path, 'utf8');
      const lines = text.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('//#'));
      const expected = [
        '"use strict";',
        'var __importDefault = (this && this.__importDefault) || function (mod) {',
        '    return (mod && mod.__esModule) ? mod : { "default": mod };',
        '};',
        'Object.defineProperty(exports, "__esModule", { value: true });',
        'const tweetnacl_1 = __importDefault(require("tweetnacl"));',
        'exports.default = tweetnacl_1.default;',
      ];
      if (lines.join('\n') !== expected.join('\n'))
        throw new Error(
          `${args.path} is not the re-export of tweetnacl scripts/bundle.mjs makes lazy: check its uses of nacl_1.default and update the rewrite`,
        );
      naclRewritten += 1;
      return {
        contents: [
          ...expected.slice(0, 5),
          'Object.defineProperty(exports, "default", {',
          '  enumerable: true,',
          '  get: () => __importDefault(require("tweetnacl")).default,',
          '});',
        ].join('\n'),
        loader: 'js',
      };
    });
  },
};

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
  plugins: [naclLazy],
  logLevel: 'warning',
});
if (naclRewritten !== 1)
  throw new Error(
    `@nats-io/nkeys/lib/nacl.js was rewritten ${naclRewritten} times, not once: is nkeys still bundled?`,
  );
// Loads, and is the NATS client the package pins.
const vendor = require(join(DIST, 'bundle', 'vendor', 'nats.cjs'));
if (typeof vendor.core.connect !== 'function' || typeof vendor.jetstream.jetstream !== 'function')
  throw new Error('dist/bundle/vendor/nats.cjs does not export the NATS client');
// An nkey still signs and verifies through the lazy tweetnacl.
const nkey = vendor.core.nkeys.createUser();
if (!nkey.verify(Buffer.from('nonce'), nkey.sign(Buffer.from('nonce'))))
  throw new Error('dist/bundle/vendor/nats.cjs: an nkey does not verify its own signature');

// commander in one CommonJS file, for the import the plugin above rewrites.
await build({
  stdin: {
    contents: `module.exports = require('commander');`,
    resolveDir: ROOT,
    sourcefile: 'commander-vendor.cjs',
    loader: 'js',
  },
  outfile: join(DIST, 'bundle', 'vendor', 'commander.cjs'),
  bundle: true,
  format: 'cjs',
  platform: 'node',
  target: 'node20',
  keepNames: true,
  logLevel: 'warning',
});
const commander = require(join(DIST, 'bundle', 'vendor', 'commander.cjs'));
const missing = COMMANDER_NAMES.filter((n) => commander[n] === undefined);
if (missing.length > 0 || typeof commander.Command !== 'function')
  throw new Error(`dist/bundle/vendor/commander.cjs does not export ${missing.join(', ')}`);
