/**
 * CPU per model call through plumbline's model boundary (`createAnthropicClient`, the real SDK)
 * against the fake Claude in its own process (its CPU is not counted): the request the 3-step
 * workload sends, W warm-up calls, then N measured calls, C in flight.
 * Usage: node --import tsx bench/sdkCall.ts [--calls N] [--warmup W] [--inflight C]
 *        [--impl PATH] [--vs PATH] [--block B] [--raw]
 *   --impl: the module exporting `createAnthropicClient` (default ../src/model/anthropic.ts; pass
 *           another worktree's dist/model/anthropic.js for an A/B);
 *   --vs:   a second such module, measured in the same process in alternating blocks of B calls
 *           (default 250), so that load from other processes falls on both alike;
 *   --raw:  a bare `fetch` of the same HTTP request instead (the floor under any client).
 * Prints one `RESULT {json}` line: CPU µs per call (user + system of this process), wall µs.
 */
import { pathToFileURL } from 'node:url';
import { resolve } from 'node:path';
import type { ModelClient, ModelRequest } from '../src/model/types.js';
import { toJsonSchema } from '../src/model/structured.js';
import { startFakeProcess } from './lib/fake.js';
import { arg, emitResult, load1, numArg } from './lib/proc.js';
import { Classification, MODEL, classifyPrompt, ticket } from './workload.js';

const CALLS = numArg('calls', 3000);
const WARMUP = numArg('warmup', 1000);
const INFLIGHT = numArg('inflight', 1);
const BLOCK = numArg('block', 250);
const RAW = process.argv.includes('--raw');

type Create = (opts: { apiKey: string; baseURL: string }) => ModelClient;
const moduleOf = (path: string | undefined): string =>
  path !== undefined ? pathToFileURL(resolve(path)).href : '../src/model/anthropic.js';
const impls = [moduleOf(arg('impl')), ...(arg('vs') !== undefined ? [moduleOf(arg('vs'))] : [])];

await using fake = await startFakeProcess('valid');
const base: Omit<ModelRequest, 'messages'> = {
  model: MODEL,
  maxTokens: 1024,
  schema: toJsonSchema(Classification),
  schemaName: 'classify',
  mode: 'native',
};

/** The same bytes the SDK sends, by hand (only for `--raw`). */
async function rawCall(i: number): Promise<void> {
  const res = await fetch(`${fake.url}/v1/messages`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      'x-api-key': 'bench',
      'anthropic-version': '2023-06-01',
    },
    body: JSON.stringify({
      model: MODEL,
      max_tokens: 1024,
      messages: [{ role: 'user', content: classifyPrompt(ticket(i)) }],
      output_config: { format: { type: 'json_schema', schema: base.schema } },
    }),
    signal: new AbortController().signal,
  });
  if (!res.ok) throw new Error(`raw call failed with ${res.status}`);
  await res.json();
}

/** One call through a client made by one implementation. */
function sdkCaller(client: ModelClient): (i: number) => Promise<void> {
  return async (i) => {
    const out = await client.call(
      { ...base, messages: [{ role: 'user', content: classifyPrompt(ticket(i)) }] },
      new AbortController().signal,
    );
    if (!out.ok) throw new Error(`call failed: ${out.error.kind} ${out.error.message}`);
  };
}

interface Subject {
  name: string;
  one: (i: number) => Promise<void>;
  cpuUs: number;
  userUs: number;
  wallMs: number;
}
const subjects: Subject[] = RAW
  ? [{ name: 'raw-fetch', one: rawCall, cpuUs: 0, userUs: 0, wallMs: 0 }]
  : await Promise.all(
      impls.map(async (impl) => {
        const { createAnthropicClient } = (await import(impl)) as {
          createAnthropicClient: Create;
        };
        const client = createAnthropicClient({ apiKey: 'bench', baseURL: fake.url });
        return { name: impl, one: sdkCaller(client), cpuUs: 0, userUs: 0, wallMs: 0 };
      }),
    );

/** Runs `n` calls of `one`, `c` in flight. */
async function calls(one: (i: number) => Promise<void>, n: number, c: number): Promise<void> {
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < n) await one(next++);
  };
  await Promise.all(Array.from({ length: c }, lane));
}

for (const s of subjects) await calls(s.one, WARMUP, INFLIGHT);
const load = load1();
// Alternating blocks (one block per subject when there is one subject).
const block = subjects.length > 1 ? BLOCK : CALLS;
for (let done = 0; done < CALLS; done += block) {
  for (const s of (done / block) % 2 === 0 ? subjects : [...subjects].reverse()) {
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    await calls(s.one, Math.min(block, CALLS - done), INFLIGHT);
    s.wallMs += performance.now() - t0;
    const cpu = process.cpuUsage(cpu0);
    s.cpuUs += cpu.user + cpu.system;
    s.userUs += cpu.user;
  }
}
const per = (us: number): number => Math.round((us / CALLS) * 10) / 10;
emitResult({
  calls: CALLS,
  inflight: INFLIGHT,
  load,
  results: subjects.map((s) => ({
    impl: s.name,
    cpuUsPerCall: per(s.cpuUs),
    userUsPerCall: per(s.userUs),
    wallUsPerCall: per(s.wallMs * 1000),
  })),
});
