/**
 * Loads pipeline modules: a `.ts` or `.js` file whose default export is a pipeline.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { extname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { UsageError } from '../errors.js';
import { childPipelines } from '../machines/constructs.js';
import { isPipeline } from '../machines/pipeline.js';
import { prepare, type Prepared } from './prepare.js';

const EXTENSIONS = new Set(['.ts', '.mts', '.js', '.mjs']);
const TYPESCRIPT = new Set(['.ts', '.mts', '.cts']);

let tsx: Promise<void> | undefined;

/**
 * Registers tsx once, the first time a TypeScript module is loaded: plumbline itself is
 * JavaScript, and Node 20 cannot import `.ts` (nor resolve `./x.js` to `./x.ts`) on its own.
 */
function loadTypeScript(file: string): Promise<void> {
  tsx ??= import('tsx/esm/api').then(
    ({ register }) => void register(),
    (e: unknown) => {
      tsx = undefined;
      throw new UsageError(
        `cannot load ${file}: TypeScript pipelines need tsx (npm install tsx), or compile the module to .js`,
        { cause: e },
      );
    },
  );
  return tsx;
}

/**
 * The pipeline named `name` among `root` and the pipelines it runs as children, compiled (a
 * child run's `run.started` names its own pipeline and its root's module), or undefined.
 */
export function findPipeline(root: Prepared, name: string): Prepared | undefined {
  if (root.pipeline.name === name) return root;
  const c = childPipelines(root.pipeline).find((p) => p.name === name);
  return c !== undefined ? prepare(c, root.module) : undefined;
}

/** Imports `file` and returns its default-exported pipeline, compiled. */
export async function loadPipeline(file: string): Promise<Prepared> {
  const path = resolve(file);
  if (!existsSync(path))
    throw new UsageError(`pipeline file not found: ${file}: pass the path of a .ts or .js module`);
  if (TYPESCRIPT.has(extname(path))) await loadTypeScript(file);
  let mod: Record<string, unknown>;
  try {
    mod = (await import(pathToFileURL(path).href)) as Record<string, unknown>;
  } catch (e) {
    throw new UsageError(`cannot load pipeline module ${file}: ${(e as Error).message}`, {
      cause: e,
    });
  }
  const value = mod.default;
  if (!isPipeline(value)) {
    // A builder chain without its final `.build()` is the likely slip with `pipeline(…)`.
    const unbuilt = typeof (value as { build?: unknown } | null)?.build === 'function';
    throw new UsageError(
      unbuilt
        ? `${file} default-exports an unfinished pipeline builder: end the chain with \`.build()\``
        : `${file} does not default-export a pipeline: add \`export default definePipeline({ ... })\` or \`export default pipeline({ ... }).llm({ ... }).build()\``,
    );
  }
  return prepare(value, path);
}

/** Loads every pipeline module in the files and directories given, by pipeline name. */
export async function loadPipelines(paths: readonly string[]): Promise<Map<string, Prepared>> {
  const files: string[] = [];
  for (const p of paths) {
    const abs = resolve(p);
    if (!existsSync(abs)) throw new UsageError(`--pipelines: ${p} does not exist`);
    if (statSync(abs).isDirectory()) {
      for (const f of readdirSync(abs).sort()) {
        if (EXTENSIONS.has(extname(f)) && !f.endsWith('.d.ts') && !f.includes('.test.'))
          files.push(join(abs, f));
      }
    } else files.push(abs);
  }
  const out = new Map<string, Prepared>();
  for (const f of files) {
    const prepared = await loadPipeline(f);
    const name = prepared.pipeline.name;
    if (out.has(name))
      throw new UsageError(
        `two modules define pipeline '${name}': ${out.get(name)?.module} and ${f}`,
      );
    out.set(name, prepared);
  }
  // The pipelines their steps run as child runs (parallel branches, map items, calls), so a
  // worker can drive a child by its pipeline's name.
  for (const root of [...out.values()])
    for (const c of childPipelines(root.pipeline))
      if (!out.has(c.name)) out.set(c.name, prepare(c, root.module));
  return out;
}
