/**
 * The fetch the model boundary gives the SDK (src/model/sdkFetch.ts): every request goes out with
 * redirects as errors (so Node's fetch does not copy it), and a server that does redirect is still
 * followed, with the SDK's timeout and the caller's abort in force across the extra request.
 * Real SDK, real fetch, the fake Claude behind a real redirecting HTTP server.
 */
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { createAnthropicClient } from '../../src/model/anthropic.js';
import { fetchWithoutCopy } from '../../src/model/sdkFetch.js';
import type { ModelOutcome } from '../../src/model/types.js';
import { hiRequest } from './hiRequest.js';
import { startFakeClaude, type FakeAction } from '../../src/testing/index.js';

const request = hiRequest;

interface Seen {
  method: string;
  url: string;
  body: string;
}

/** A server answering every request with `status` and `Location: target + path`, recording each. */
async function redirector(status: number, target: string) {
  const seen: Seen[] = [];
  const server = createServer((req: IncomingMessage, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      seen.push({ method: req.method ?? '', url: req.url ?? '', body });
      res.writeHead(status, { location: `${target}${req.url ?? ''}` });
      res.end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    seen,
    [Symbol.asyncDispose]: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

async function throughRedirect(
  status: number,
  action: FakeAction,
  opts: { timeoutMs?: number; signal?: AbortSignal } = {},
) {
  const fake = await startFakeClaude({ script: [action] });
  await using hop = await redirector(status, fake.url);
  try {
    const claude = createAnthropicClient({
      apiKey: 'sk-test',
      baseURL: hop.url,
      ...(opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {}),
    });
    const outcome = await claude.call(request, opts.signal ?? new AbortController().signal);
    return { outcome, fakeRequests: [...fake.requests], hop: [...hop.seen] };
  } finally {
    await fake.close();
  }
}

function kindOf(o: ModelOutcome): string {
  return o.ok ? 'ok' : o.error.kind;
}

describe('fetchWithoutCopy', () => {
  it('sends with redirect: error and no window; leaves the caller its init', async () => {
    await using fake = await startFakeClaude();
    const inits: RequestInit[] = [];
    const spy: typeof fetch = (input, init) => {
      inits.push({ ...init });
      return fetch(input, init);
    };
    const given: RequestInit = { method: 'POST', body: '{}' };
    const res = await fetchWithoutCopy(spy)(`${fake.url}/v1/models`, given);
    await res.body?.cancel();
    expect(inits).toHaveLength(1);
    expect(inits[0]).toMatchObject({ method: 'POST', redirect: 'error', window: null });
    expect(given).toEqual({ method: 'POST', body: '{}' });
  });

  it('a caller that chose manual redirects gets exactly its init', async () => {
    await using hop = await redirector(307, 'http://127.0.0.1:9');
    const inits: (RequestInit | undefined)[] = [];
    const spy: typeof fetch = (input, init) => {
      inits.push(init);
      return fetch(input, init);
    };
    const res = await fetchWithoutCopy(spy)(hop.url, { redirect: 'manual' });
    expect(res.status).toBe(307);
    expect(inits).toEqual([{ redirect: 'manual' }]);
  });
});

describe('the model boundary behind a redirect (real SDK)', () => {
  it.each([307, 308])(
    'a %i is followed: the answer, the same body sent again, one call at the target',
    async (status) => {
      const { outcome, fakeRequests, hop } = await throughRedirect(status, { kind: 'valid' });
      expect(kindOf(outcome)).toBe('ok');
      if (outcome.ok) expect(outcome.requestId).toMatch(/^req_fake_\d+$/);
      // The refused redirect, then the request again with redirects followed.
      expect(hop.map((s) => `${s.method} ${s.url}`)).toEqual([
        'POST /v1/messages',
        'POST /v1/messages',
      ]);
      expect(hop[1]?.body).toBe(hop[0]?.body);
      expect(fakeRequests.map((r) => `${r.method} ${r.path}`)).toEqual(['POST /v1/messages']);
      expect(JSON.stringify(fakeRequests[0]?.body)).toBe(hop[0]?.body);
    },
  );

  it('a 303 turns into a GET as fetch always did: classified, not thrown', async () => {
    const { outcome, fakeRequests } = await throughRedirect(303, { kind: 'valid' });
    expect(fakeRequests.map((r) => r.method)).toEqual(['GET']);
    expect(outcome.ok).toBe(false);
    expect(kindOf(outcome)).toBe('not_found');
  });

  it('the timeout covers the request sent again', async () => {
    const { outcome, hop } = await throughRedirect(
      307,
      { kind: 'delay', ms: 10_000, then: { kind: 'valid' } },
      { timeoutMs: 300 },
    );
    expect(hop).toHaveLength(2);
    expect(outcome.ok).toBe(false);
    if (!outcome.ok) expect(outcome.error).toMatchObject({ kind: 'timeout', retryable: true });
  });

  it("the caller's abort stops the request sent again", async () => {
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 300);
    const { outcome, hop } = await throughRedirect(
      307,
      { kind: 'delay', ms: 10_000, then: { kind: 'valid' } },
      { signal: controller.signal },
    );
    expect(hop).toHaveLength(2);
    expect(outcome.ok).toBe(false);
    if (!outcome.ok) expect(outcome.error).toMatchObject({ kind: 'aborted', retryable: false });
  });

  it('a dropped connection is not sent again', async () => {
    await using fake = await startFakeClaude({ script: [{ kind: 'drop' }] });
    const claude = createAnthropicClient({ apiKey: 'sk-test', baseURL: fake.url });
    const outcome = await claude.call(request, new AbortController().signal);
    expect(kindOf(outcome)).toBe('connection');
    expect(fake.count).toBe(1);
  });
});
