/**
 * `plumbline demo`: triage a handful of sample tickets with the embedded store (the first writes
 * the classify step's long system prompt to the prompt cache, the next read it), then route three
 * messages (one per branch), summarise a long document with a map (demoShapes.ts), and run the
 * support agent, approving its large refund itself (demoAgent.ts). Without
 * ANTHROPIC_API_KEY it starts the fake Claude and scripts plausible answers, and says so.
 */
import { dirname, extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createAnthropicClient } from '../model/anthropic.js';
import type { ModelClient } from '../model/types.js';
import { Runtime } from '../runtime/driver.js';
import { loadPipeline } from '../runtime/load.js';
import { startFakeClaude, type FakeClaude } from '../testing/fakeClaude.js';
import { cliLogger, openStore, out, storeSpec, type GlobalOptions } from './context.js';
import { pathOfSteps, resultLine, usd } from './format.js';
import { exitCodeFor } from './main.js';
import { demoScript, DEMO_TICKETS } from './demoData.js';
import { demoRouter, demoSummarise } from './demoShapes.js';
import { demoSupport } from './demoAgent.js';
import { cacheLine } from './demoCache.js';

const self = fileURLToPath(import.meta.url);
/**
 * An example pipeline beside this module: dist/bundle/examples/<name>.js in a build or an
 * installed package (no TypeScript loader needed; this code is in dist/bundle/chunks/ or
 * dist/bundle/cli/), src/examples/<name>.ts when run from source. Runs record this absolute
 * path, so `resume` and `replay` load the same file again.
 */
const example = (name: string): string =>
  fileURLToPath(new URL(`../examples/${name}${extname(self)}`, import.meta.url));
const TRIAGE = example('triage');

/** Runs the demo; returns the exit code (worst of the runs). */
export async function runDemo(g: GlobalOptions, n: number): Promise<number> {
  let fake: FakeClaude | undefined;
  let model: ModelClient;
  if (process.env.ANTHROPIC_API_KEY) {
    out('using Claude (ANTHROPIC_API_KEY is set)');
    model = createAnthropicClient({});
  } else {
    fake = await startFakeClaude({
      script: demoScript,
      usage: { input_tokens: 420, output_tokens: 85, cache_read_input_tokens: 0 },
    });
    out(
      `no ANTHROPIC_API_KEY: using the fake Claude at ${fake.url} (scripted answers, real SDK over HTTP)`,
    );
    model = createAnthropicClient({ apiKey: 'fake-key-for-the-demo', baseURL: fake.url });
  }
  process.env.PLUMBLINE_OUTBOX ??= join('.plumbline', 'outbox');
  process.env.PLUMBLINE_REFUNDS ??= join(dirname(process.env.PLUMBLINE_OUTBOX), 'refunds.jsonl');
  const spec = storeSpec(g);
  const store = await openStore(spec);
  let worst = 0;
  try {
    const prepared = await loadPipeline(TRIAGE);
    const rt = new Runtime({
      store,
      model,
      logger: cliLogger({ ...g, logLevel: g.logLevel ?? 'warn' }),
    });
    out(`store: ${spec}   outbox: ${process.env.PLUMBLINE_OUTBOX}`);
    let total = 0;
    for (const ticket of DEMO_TICKETS.slice(0, n)) {
      const r = await rt.start(prepared, {
        input: { ...ticket, id: `${ticket.id}-${Date.now().toString(36)}` },
      });
      const events = await store.log.read(r.runId);
      out(resultLine(r, pathOfSteps(events)));
      // classify caches its long system prompt: the first ticket writes it, the next read it.
      const cached = cacheLine(prepared, events);
      if (cached !== null) out(cached);
      total += r.costUsd;
      worst = Math.max(worst, exitCodeFor(r.status));
    }
    out(
      `total cost ${usd(total)}${fake !== undefined ? ` (priced as if real; the fake served ${fake.count} requests)` : ''}`,
    );
    const stamp = Date.now().toString(36);
    const router = await demoRouter(rt, store, await loadPipeline(example('router')), stamp);
    const doc = await demoSummarise(rt, store, await loadPipeline(example('summarise')), stamp);
    worst = Math.max(worst, router.code, doc.code);
    out('');
    out(
      `route and map cost ${usd(router.costUsd + doc.costUsd)}${fake !== undefined ? ` (answers scripted by the fake Claude, which served ${fake.count} requests in all)` : ''}`,
    );
    const support = await demoSupport(
      rt,
      store,
      await loadPipeline(example('supportAgent')),
      stamp,
      {
        refunds: process.env.PLUMBLINE_REFUNDS,
      },
    );
    worst = Math.max(worst, support.code);
    out(
      `support agent cost ${usd(support.costUsd)}${fake !== undefined ? ` (tool calls and answers scripted by the fake Claude, which served ${fake.count} requests in all)` : ''}`,
    );
    out('next: `plumbline runs`, `plumbline replay <run id>`, `plumbline cost --by model`');
  } finally {
    await store.close();
    await fake?.close();
  }
  return worst;
}
