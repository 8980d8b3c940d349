/**
 * CPU per model call through plumbline's model boundary (`createAnthropicClient`, the real SDK)
 * against the fake Claude in its own process (its CPU is not counted): the request the 3-step
 * workload sends, W warm-up calls, then N measured calls, C in flight.
 * Usage: node --import tsx bench/sdkCall.ts [--calls N] [--warmup W] [--inflight C]
 *        [--impl PATH] [--raw]
 *   --impl: the module exporting `createAnthropicClient` (default ../src/model/anthropic.ts; pass
 *           another worktree's dist/model/anthropic.js for an A/B);
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
const RAW = process.argv.includes('--raw');
const implArg = arg('impl');
const impl =
  implArg !== undefined ? pathToFileURL(resolve(implArg)).href : '../src/model/anthropic.js';

type Create = (opts: { apiKey: string; baseURL: string }) => ModelClient;
const { createAnthropicClient } = (await import(impl)) as { createAnthropicClient: Create };

await using fake = await startFakeProcess('valid');
const client = createAnthropicClient({ apiKey: 'bench', baseURL: fake.url });
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

async function sdkCall(i: number): Promise<void> {
  const out = await client.call(
    { ...base, messages: [{ role: 'user', content: classifyPrompt(ticket(i)) }] },
    new AbortController().signal,
  );
  if (!out.ok) throw new Error(`call failed: ${out.error.kind} ${out.error.message}`);
}

const one = RAW ? rawCall : sdkCall;

/** Runs `n` calls, `c` in flight. */
async function calls(n: number, c: number): Promise<void> {
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < n) await one(next++);
  };
  await Promise.all(Array.from({ length: c }, lane));
}

await calls(WARMUP, INFLIGHT);
const load = load1();
const cpu0 = process.cpuUsage();
const t0 = performance.now();
await calls(CALLS, INFLIGHT);
const wallMs = performance.now() - t0;
const cpu = process.cpuUsage(cpu0);
emitResult({
  mode: RAW ? 'raw-fetch' : 'sdk',
  impl: RAW ? null : impl,
  calls: CALLS,
  inflight: INFLIGHT,
  load,
  cpuUsPerCall: Math.round(((cpu.user + cpu.system) / CALLS) * 10) / 10,
  userUsPerCall: Math.round((cpu.user / CALLS) * 10) / 10,
  wallUsPerCall: Math.round(((wallMs * 1000) / CALLS) * 10) / 10,
});
