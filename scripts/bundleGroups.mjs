// The read path in two chunks (used by scripts/bundle.mjs).
//
// esbuild puts each module in the chunk of the set of entry points that load it, and every
// `import()` target is an entry point: the CLI's lazy verbs and stores cut the bundle into 68
// files, and `plumbline runs` on JetStream loaded 26 of them (~0.5 ms of CPU each in Node's ESM
// loader). This plugin makes esbuild keep a chosen set of modules together: each import of a
// member from outside its group, and each `import()` of a member, is resolved to a virtual module
// that re-exports every member (`export * from`), so all of a group's members are reached through
// it and land in one chunk (beside it, for an `import()`, a chunk of a few re-exports). Members
// import nothing but Node's builtins, esbuild's helpers, members of their group and of `core`, so
// a group's chunk loads no package, and groups form no import cycle. A member's top-level code
// now runs whenever any member is needed: keep it to declarations (it is today).
//
// The groups: the modules `runs` and `cost` load (from the CLI's entry, the verbs, and the
// stores' own modules) that are light, that is import no package, directly or through other
// modules, and are not natsLib.js (which requires the NATS client when it loads). `core` holds
// those the library's entry points load anyway; `cli` the others (the CLI's verbs registration,
// the read verbs, the JetStream index reader), loaded by every verb and by a JetStream store.
import { builtinModules } from 'node:module';
import { join, relative, resolve, sep } from 'node:path';

/** Where the read verbs start (tsc's output, relative to the package). */
const READ_ROOTS = [
  'dist/cli/main.js',
  'dist/cli/runsVerbs.js',
  'dist/cli/costVerb.js',
  'dist/store/natsUrl.js',
  'dist/store/jetstream.js',
  'dist/store/sqlite.js',
];
/** Loads the NATS client (vendor/nats.cjs) when it is evaluated: never in a group. */
const NATS_LIB = /^dist\/store\/natsLib\.js$/;

/** Modules reached from `roots` by static imports (`import`, `export … from`). */
function closure(graph, roots) {
  const seen = new Set();
  const todo = [...roots];
  while (todo.length > 0) {
    const p = todo.pop();
    if (seen.has(p)) continue;
    seen.add(p);
    todo.push(...staticImports(graph, p));
  }
  return seen;
}

function staticImports(graph, path) {
  return graph[path].imports
    .filter((x) => !x.external && x.kind === 'import-statement')
    .map((x) => x.path);
}

/**
 * The modules that load no package: their external imports are Node builtins (or esbuild's
 * `<runtime>` helpers), they are not natsLib.js, and so are the modules they import.
 */
function lightModules(graph) {
  const own = (path, i) =>
    path.startsWith('dist/') &&
    !NATS_LIB.test(path) &&
    i.imports.every(
      (x) =>
        !x.external ||
        x.path === '<runtime>' ||
        x.path.startsWith('node:') ||
        builtinModules.includes(x.path),
    );
  const light = new Set(
    Object.entries(graph)
      .filter(([p, i]) => own(p, i))
      .map(([p]) => p),
  );
  for (let changed = true; changed;) {
    changed = false;
    for (const p of light)
      if (staticImports(graph, p).some((x) => !light.has(x))) {
        light.delete(p);
        changed = true;
      }
  }
  return light;
}

/**
 * The read path's groups, for esbuild's build with `options`: a plugin to add to that build and
 * `check(metafile)`, which throws unless each group landed in one chunk (beside the chunk of
 * re-exports an `import()` of it gets) with every export of a member an `import()` reaches.
 */
export async function readPathGroups(build, options) {
  const root = options.absWorkingDir;
  const rel = (abs) => relative(root, abs).split(sep).join('/');
  const graph = (await build({ ...options, write: false, sourcemap: false })).metafile.inputs;
  for (const r of READ_ROOTS)
    if (graph[r] === undefined)
      throw new Error(`${r} is not in the bundle: update READ_ROOTS in scripts/bundleGroups.mjs`);
  const entries = options.entryPoints.map(rel);
  const light = lightModules(graph);
  const readPath = [...closure(graph, READ_ROOTS)].filter(
    (p) => light.has(p) && !entries.includes(p),
  );
  const library = closure(
    graph,
    entries.filter((e) => e !== 'dist/cli/main.js'),
  );
  const groupOf = new Map(readPath.map((p) => [p, library.has(p) ? 'core' : 'cli']));
  const members = (g) =>
    [...groupOf]
      .filter(([, x]) => x === g)
      .map(([p]) => p)
      .sort();

  /** Members an `import()` reaches, by group: their namespace is the group's. */
  const imported = new Set();

  const plugin = {
    name: 'read-path-groups',
    setup(b) {
      b.onResolve({ filter: /^\.\.?\// }, (args) => {
        if (args.namespace !== 'file') return undefined;
        const g = groupOf.get(rel(resolve(args.resolveDir, args.path)));
        if (g === undefined) return undefined;
        // Within a group, static imports keep their order of evaluation.
        if (args.kind === 'import-statement' && groupOf.get(rel(args.importer)) === g)
          return undefined;
        if (args.kind === 'dynamic-import') imported.add(rel(resolve(args.resolveDir, args.path)));
        return { path: `read-path-${g}`, namespace: 'group' };
      });
      b.onResolve({ filter: /^read-path-(core|cli)$/ }, (args) => ({
        path: args.path,
        namespace: 'group',
      }));
      b.onLoad({ filter: /.*/, namespace: 'group' }, (args) => ({
        contents: members(args.path.replace('read-path-', ''))
          .map((m) => `export * from ${JSON.stringify(join(root, m))};`)
          .join('\n'),
        resolveDir: root,
        loader: 'js',
      }));
    },
  };

  const check = async (metafile) => {
    for (const g of ['core', 'cli']) {
      const at = Object.entries(metafile.outputs)
        .filter(([, o]) => Object.keys(o.inputs).some((i) => groupOf.get(i) === g))
        .map(([out]) => out);
      if (members(g).length === 0 || at.length !== 1)
        throw new Error(
          `the read path's ${g} group (${members(g).length} modules) is in ${at.length} chunks, not one: ${at.join(', ')}`,
        );
    }
    // `export *` leaves out a name two members export (a static import of it is an esbuild
    // error; in an `import()`'s namespace it is undefined): each export of a member an
    // `import()` reaches is imported from its group once, by name.
    if (imported.size === 0) return;
    const own = await build({
      entryPoints: [...imported].map((p) => join(root, p)),
      absWorkingDir: root,
      outdir: join(root, 'dist', 'bundle'),
      bundle: true,
      splitting: true,
      format: 'esm',
      platform: 'node',
      packages: 'external',
      write: false,
      metafile: true,
      logLevel: 'warning',
    });
    const names = new Map();
    for (const o of Object.values(own.metafile.outputs))
      if (o.entryPoint !== undefined && imported.has(o.entryPoint)) {
        const g = groupOf.get(o.entryPoint);
        names.set(g, [...new Set([...(names.get(g) ?? []), ...o.exports])]);
      }
    for (const [g, ns] of names)
      try {
        await build({
          stdin: {
            contents: `export { ${ns.join(', ')} } from 'read-path-${g}';`,
            resolveDir: root,
          },
          absWorkingDir: root,
          bundle: true,
          format: 'esm',
          platform: 'node',
          packages: 'external',
          plugins: [plugin],
          write: false,
          logLevel: 'silent',
        });
      } catch (e) {
        throw new Error(
          `two members of the read path's ${g} group export the same name (an import() would get undefined): rename one. ${e.message}`,
          { cause: e },
        );
      }
  };
  return { plugin, check };
}
