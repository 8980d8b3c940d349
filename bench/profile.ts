/**
 * `npm run bench -- --profile`: runs the SQLite throughput repetition under `node --cpu-prof`
 * and prints where the CPU went: self time by function, and by source (plumbline's own files,
 * each npm package, Node internals, GC). The .cpuprofile is kept for Chrome DevTools.
 * Also usable on any profile: node --import tsx bench/profile.ts <file.cpuprofile>
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

interface CpuNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface CpuProfile {
  nodes: CpuNode[];
  samples: number[];
  timeDeltas: number[];
}

/** Where a frame's code lives: `src/<file>`, an npm package, `node:` internals, or a V8 pseudo-frame. */
function sourceOf(url: string, name: string): string {
  if (url === '') return name.startsWith('(') ? name : '(native)';
  const nm = url.lastIndexOf('node_modules/');
  if (nm >= 0) {
    const rest = url.slice(nm + 13).split('/');
    return rest[0]?.startsWith('@') ? `${rest[0]}/${rest[1]}` : (rest[0] ?? url);
  }
  const src = url.indexOf('/src/');
  if (src >= 0 && !url.includes('/bench/')) return url.slice(src + 1);
  if (url.includes('/bench/')) return url.slice(url.indexOf('/bench/') + 1);
  if (url.startsWith('node:')) return 'node: internals';
  return url;
}

/** Microseconds sampled outside `(idle)`. */
function busyOf(profile: CpuProfile): number {
  const idle = new Set(
    profile.nodes.filter((n) => n.callFrame.functionName === '(idle)').map((n) => n.id),
  );
  return profile.samples.reduce(
    (a, id, i) => a + (idle.has(id) ? 0 : (profile.timeDeltas[i] ?? 0)),
    0,
  );
}

/** Self time by function and by source, as printable lines. */
export function summarize(profile: CpuProfile, top = 25): string {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  for (const [i, id] of profile.samples.entries())
    self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
  const total = [...self.values()].reduce((a, b) => a + b, 0);
  const idle = [...self.entries()]
    .filter(([id]) => byId.get(id)?.callFrame.functionName === '(idle)')
    .reduce((a, [, t]) => a + t, 0);
  const busy = total - idle;
  const fn = new Map<string, number>();
  const src = new Map<string, number>();
  for (const [id, t] of self) {
    const f = byId.get(id)?.callFrame;
    if (f === undefined || f.functionName === '(idle)') continue;
    const where = sourceOf(f.url, f.functionName);
    const key = `${f.functionName || '(anonymous)'}  ${where}${f.url !== '' ? `:${f.lineNumber + 1}` : ''}`;
    fn.set(key, (fn.get(key) ?? 0) + t);
    src.set(where, (src.get(where) ?? 0) + t);
  }
  const pct = (t: number): string => `${((t / busy) * 100).toFixed(1).padStart(5)} %`;
  const lines = [
    `busy ${(busy / 1e6).toFixed(2)} s of ${(total / 1e6).toFixed(2)} s sampled`,
    '',
    'self time by source:',
  ];
  for (const [k, t] of [...src].sort((a, b) => b[1] - a[1]).slice(0, top))
    lines.push(`${pct(t)}  ${k}`);
  lines.push('', 'self time by function:');
  for (const [k, t] of [...fn].sort((a, b) => b[1] - a[1]).slice(0, top))
    lines.push(`${pct(t)}  ${k}`);
  // Inclusive time of plumbline's own functions: each sample counted once per function on its stack.
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const incl = new Map<string, number>();
  for (const [i, id] of profile.samples.entries()) {
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const f = byId.get(cur)?.callFrame;
      if (f === undefined || !f.url.includes('/src/') || f.url.includes('node_modules')) continue;
      const key = `${f.functionName || '(anonymous)'}  ${sourceOf(f.url, f.functionName)}`;
      if (seen.has(key)) continue;
      seen.add(key);
      incl.set(key, (incl.get(key) ?? 0) + (profile.timeDeltas[i] ?? 0));
    }
  }
  lines.push('', "inclusive time of plumbline's functions (src/):");
  for (const [k, t] of [...incl].sort((a, b) => b[1] - a[1]).slice(0, top + 15))
    lines.push(`${pct(t)}  ${k}`);
  return lines.join('\n');
}

/** Profiles one SQLite throughput repetition and prints the summary. */
export async function profile(root: string, quick: boolean): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'plumbline-profile-'));
  const runs = quick ? '300' : '1000';
  const r = spawnSync(
    process.execPath,
    [
      '--cpu-prof',
      '--cpu-prof-dir',
      dir,
      '--import',
      'tsx',
      'bench/plumbline.ts',
      '--backend',
      'sqlite',
      '--runs',
      runs,
      '--profile',
    ],
    {
      cwd: root,
      stdio: ['ignore', 'inherit', 'inherit'],
    },
  );
  if (r.status !== 0) throw new Error(`the profiled run failed (${r.status})`);
  // The fake Claude child and tsx's loader thread write profiles too: take the busiest one.
  const files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'));
  const sized = files
    .map((f) => ({ f, p: JSON.parse(readFileSync(join(dir, f), 'utf8')) as CpuProfile }))
    .sort((a, b) => busyOf(b.p) - busyOf(a.p));
  const main = sized[0];
  if (main === undefined) throw new Error(`no profile written in ${dir}`);
  process.stdout.write(
    `${summarize(main.p)}\n\nprofile: ${join(dir, main.f)} (open in Chrome DevTools → Performance)\n`,
  );
}

if (process.argv[1] === fileURLToPath(import.meta.url) && process.argv[2] !== undefined) {
  process.stdout.write(
    `${summarize(JSON.parse(readFileSync(process.argv[2], 'utf8')) as CpuProfile)}\n`,
  );
}
