/**
 * The benchmark workload, shared by plumbline, the raw baselines and the peers: a 3-step run
 * (two schema-checked model calls, then one file append) and a 1-step run (one model call).
 * Every system makes the very same HTTP request to the same fake Claude through the same SDK
 * client, and validates the answer with the same zod schema.
 */
import { appendFile } from 'node:fs/promises';
import { z } from 'zod';
import { definePipeline, effect, llm } from '../src/index.js';
import { createAnthropicClient } from '../src/model/anthropic.js';
import { judgeOutput, toJsonSchema } from '../src/model/structured.js';
import type { ModelClient, ModelRequest } from '../src/model/types.js';

export const MODEL = 'claude-sonnet-4-6';

export const Classification = z.object({
  category: z.enum(['billing', 'outage', 'question', 'other']),
  urgency: z.number().int().min(0).max(10),
});
export const Summary = z.object({ summary: z.string(), tags: z.array(z.string()) });

export const Ticket = z.object({ id: z.string(), text: z.string() });
export type Ticket = z.infer<typeof Ticket>;

/** The input of run `i`. */
export function ticket(i: number): Ticket {
  return { id: `t${i}`, text: `ticket ${i}: the checkout page returns 502 since 09:00` };
}

export const classifyPrompt = (t: Ticket): string => `Classify this support ticket.\n\n${t.text}`;
export const summarizePrompt = (t: Ticket, c: unknown): string =>
  `Summarize the ticket for the on-call engineer. Classification: ${JSON.stringify(c)}\n\n${t.text}`;

/** The effect: one line appended to the sink file. */
export async function record(
  sink: string,
  runId: string,
  summary: unknown,
): Promise<{ bytes: number }> {
  const line = `${JSON.stringify({ runId, summary })}\n`;
  await appendFile(sink, line);
  return { bytes: line.length };
}

/** The 3-step plumbline pipeline writing to `sink`. */
export function threeStep(sink: string) {
  return definePipeline({
    name: 'bench3',
    version: '1',
    input: Ticket,
    steps: [
      llm({
        name: 'classify',
        model: MODEL,
        prompt: ({ input }) => classifyPrompt(input),
        output: Classification,
      }),
      llm({
        name: 'summarize',
        model: MODEL,
        prompt: ({ input, outputs }) => summarizePrompt(input, outputs.classify),
        output: Summary,
      }),
      effect({
        name: 'record',
        key: ({ runId }) => runId,
        run: ({ runId, outputs }) => record(sink, runId, outputs.summarize),
      }),
    ],
  });
}

/** The 1-step plumbline pipeline (latency). */
export function oneStep() {
  return definePipeline({
    name: 'bench1',
    version: '1',
    input: Ticket,
    steps: [
      llm({
        name: 'classify',
        model: MODEL,
        prompt: ({ input }) => classifyPrompt(input),
        output: Classification,
      }),
    ],
  });
}

/** The model client every system uses: the same SDK, one request per call. */
export function modelClient(url: string): ModelClient {
  return createAnthropicClient({ apiKey: 'bench', baseURL: url });
}

const requests = new Map<z.ZodType, Omit<ModelRequest, 'messages'>>();

/** A hand-written model step: the request plumbline would send, then JSON + zod validation. */
export async function callModel<S extends z.ZodType>(
  client: ModelClient,
  name: string,
  schema: S,
  prompt: string,
): Promise<z.infer<S>> {
  let base = requests.get(schema);
  if (base === undefined) {
    base = {
      model: MODEL,
      maxTokens: 1024,
      schema: toJsonSchema(schema),
      schemaName: name,
      mode: 'native',
    };
    requests.set(schema, base);
  }
  const out = await client.call(
    { ...base, messages: [{ role: 'user', content: prompt }] },
    new AbortController().signal,
  );
  if (!out.ok) throw new Error(`model call failed: ${out.error.kind} ${out.error.message}`);
  const judged = judgeOutput({ text: out.text, stopReason: out.stopReason }, schema);
  if (judged.verdict !== 'valid')
    throw new Error(`model answer invalid: ${judged.issues.join('; ')}`);
  return judged.output as z.infer<S>;
}

/**
 * Warm-up runs before any measured phase (`--warmup N`, default 1,000), the same for every
 * system: with 100 the JIT is still compiling the SDK and HTTP client's code when the first
 * phase is measured, and a later phase of the same process (the raw baselines) gets it hot.
 */
export function warmupRuns(fallback = 1000): number {
  const i = process.argv.indexOf('--warmup');
  const n = i >= 0 ? Number(process.argv[i + 1]) : fallback;
  if (!Number.isSafeInteger(n) || n < 0) throw new Error('--warmup wants a whole number of runs');
  return n;
}

/** Runs `n` jobs with at most `inFlight` at once; returns each job's latency (ms) and the wall time. */
export async function pool(
  n: number,
  inFlight: number,
  job: (i: number) => Promise<unknown>,
): Promise<{ wallMs: number; latencies: number[] }> {
  const latencies: number[] = new Array<number>(n);
  let next = 0;
  const t0 = performance.now();
  const lane = async (): Promise<void> => {
    for (;;) {
      const i = next++;
      if (i >= n) return;
      const s = performance.now();
      await job(i);
      latencies[i] = performance.now() - s;
    }
  };
  await Promise.all(Array.from({ length: Math.min(inFlight, n) }, lane));
  return { wallMs: performance.now() - t0, latencies };
}
