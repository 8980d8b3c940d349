import v8 from 'node:v8';
import { PerformanceObserver } from 'node:perf_hooks';
if (process.env.SEMI_FLAGS) v8.setFlagsFromString(process.env.SEMI_FLAGS);
const c = { minor: 0, major: 0, minorMs: 0, majorMs: 0 };
new PerformanceObserver((l) => { for (const e of l.getEntries()) { const k = e.detail.kind === 1 ? 'minor' : e.detail.kind === 4 ? 'major' : 'other'; c[k] = (c[k] ?? 0) + 1; c[k + 'Ms'] = (c[k + 'Ms'] ?? 0) + e.duration; } }).observe({ entryTypes: ['gc'] });
const exit = process.exit.bind(process);
process.exit = (code) => { const ns = v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space'); console.error(JSON.stringify({ flags: process.env.SEMI_FLAGS ?? process.execArgv.filter(a=>a.includes('semi')).join(' '), newSpaceMB: ns.space_size / 2**20, ...Object.fromEntries(Object.entries(c).map(([k,v])=>[k, Math.round(v)])) })); exit(code); };
await import('./bench/plumbline.ts');
