/**
 * CPU per HTTP request of the transports the SDK could be given, without the SDK: the request
 * the 3-step workload sends, to the fake Claude in its own process, the JSON answer parsed.
 * Variants measured in alternating blocks of 250 in one process (W warm-up calls each first):
 *   fetch          Node's global fetch (redirect: 'error', as sdkFetch.ts sends);
 *   http           node:http with a keep-alive agent, body read whole, JSON.parse;
 *   http+Response  the same wrapped in a WHATWG Response (what returning a real one costs);
 *   httpFetch      plumbline's transport (src/model/httpFetch.ts) as the SDK calls it;
 *   undici-agent, undici-pool  undici's request() API, when the package can be imported.
 * Usage: node --import tsx bench/transportMicro.ts [--calls N] [--warmup W] [--only a,b]
 * Prints one `RESULT {json}` line: CPU µs per request (user + system of this process).
 */
import http from 'node:http';
import { toJsonSchema } from '../src/model/structured.js';
import { httpFetch } from '../src/model/httpFetch.js';
import { startFakeProcess } from './lib/fake.js';
import { arg, emitResult, load1, numArg } from './lib/proc.js';
import { Classification, MODEL, classifyPrompt, ticket } from './workload.js';

const N = numArg('calls', 3000);
const W = numArg('warmup', 1000);
const BLOCK = 250;

await using fake = await startFakeProcess('valid');
const url = `${fake.url}/v1/messages`;
const u = new URL(url);
const schema = toJsonSchema(Classification);
const body = (i: number): string =>
  JSON.stringify({
    model: MODEL,
    max_tokens: 1024,
    messages: [{ role: 'user', content: classifyPrompt(ticket(i)) }],
    output_config: { format: { type: 'json_schema', schema } },
  });
const headers = {
  'content-type': 'application/json',
  accept: 'application/json',
  'x-api-key': 'bench',
  'anthropic-version': '2023-06-01',
};
const init = (i: number): RequestInit => ({
  method: 'POST',
  headers: new Headers(headers),
  body: body(i),
  signal: new AbortController().signal,
});

const agent = new http.Agent({ keepAlive: true });
function viaHttp(i: number, wrap: boolean): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: u.hostname, port: u.port, path: u.pathname, method: 'POST', headers, agent },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const bytes = Buffer.concat(chunks);
          if (!wrap) return resolve(JSON.parse(bytes.toString('utf8')));
          const h = new Headers();
          for (let k = 0; k < res.rawHeaders.length; k += 2)
            h.append(res.rawHeaders[k] as string, res.rawHeaders[k + 1] as string);
          resolve(new Response(bytes, { status: res.statusCode ?? 0, headers: h }).json());
        });
      },
    );
    req.on('error', reject);
    req.end(body(i));
  });
}

const transport = httpFetch(fetch, fetch);
const variants: Record<string, (i: number) => Promise<unknown>> = {
  fetch: async (i) =>
    (await fetch(url, { ...init(i), redirect: 'error', window: null } as RequestInit)).json(),
  http: (i) => viaHttp(i, false),
  'http+Response': (i) => viaHttp(i, true),
  httpFetch: async (i) => (await transport(url, init(i))).json(),
};
/** The part of undici's API measured here (undici is not a dependency: no types to import). */
interface Undici {
  Agent: new () => { close(): Promise<void> };
  Pool: new (origin: string) => {
    request(opts: object): Promise<{ body: { json(): Promise<unknown> } }>;
    close(): Promise<void>;
  };
  request(url: string, opts: object): Promise<{ body: { json(): Promise<unknown> } }>;
}
const closers: (() => Promise<void>)[] = [];
try {
  // Not a dependency of plumbline: measured when it can be imported (npm install --no-save undici).
  const undici = (await import('undici' as string)) as Undici;
  const uAgent = new undici.Agent();
  const uPool = new undici.Pool(fake.url);
  closers.push(
    () => uAgent.close(),
    () => uPool.close(),
  );
  variants['undici-agent'] = async (i) =>
    (
      await undici.request(url, {
        method: 'POST',
        headers,
        body: body(i),
        dispatcher: uAgent,
        signal: new AbortController().signal,
      })
    ).body.json();
  variants['undici-pool'] = async (i) =>
    (
      await uPool.request({
        path: u.pathname,
        method: 'POST',
        headers,
        body: body(i),
        signal: new AbortController().signal,
      })
    ).body.json();
} catch {
  // undici not installed: its variants are skipped.
}

const names = arg('only')?.split(',') ?? Object.keys(variants);
const cpu = new Map(names.map((n) => [n, 0]));
for (const n of names) for (let i = 0; i < W; i++) await variants[n]?.(i);
const load = load1();
for (let done = 0; done < N; done += BLOCK) {
  for (const n of (done / BLOCK) % 2 === 0 ? names : [...names].reverse()) {
    const one = variants[n];
    if (one === undefined) continue;
    const c0 = process.cpuUsage();
    for (let i = 0; i < BLOCK; i++) await one(done + i);
    const c = process.cpuUsage(c0);
    cpu.set(n, (cpu.get(n) ?? 0) + c.user + c.system);
  }
}
emitResult({
  calls: N,
  load,
  cpuUsPerRequest: Object.fromEntries(names.map((n) => [n, Math.round((cpu.get(n) ?? 0) / N)])),
});
agent.destroy();
for (const close of closers) await close();
