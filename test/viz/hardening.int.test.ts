/**
 * The visualizer under hostile or careless clients, over real HTTP on 127.0.0.1: forged `Host`
 * and `Origin` headers (DNS rebinding), more live streams than the caps allow, and malformed
 * percent-encoding in paths.
 */
import { request, type IncomingMessage } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openSqliteStore } from '../../src/store/sqlite.js';
import type { Store } from '../../src/store/types.js';
import { startVizServer, type VizServer, type VizServerOptions } from '../../src/viz/server.js';
import { eventfulRun, foldEnvelopes } from './fixtures.js';

/** The runs' input, which a forged request must never see. */
const SECRET = 'card 4111-1111-1111-1111';

interface Answer {
  status: number;
  headers: IncomingMessage['headers'];
  body: string;
}

/** A GET with exactly these headers (node:http lets a test forge `Host`, fetch does not). */
function get(base: string, path: string, headers: Record<string, string> = {}): Promise<Answer> {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const req = request(
      { host: u.hostname, port: u.port, path, method: 'GET', headers, agent: false },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/** An SSE stream held open: its status once headers arrive, and a way to hang up. */
interface Stream {
  status: number;
  headers: IncomingMessage['headers'];
  body: () => string;
  close: () => void;
}

function openStream(base: string, path: string): Promise<Stream> {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const req = request(
      { host: u.hostname, port: u.port, path, method: 'GET', agent: false },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('error', () => undefined);
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: () => body,
          close: () => req.destroy(),
        });
      },
    );
    req.on('error', (e) => {
      if (!req.destroyed) reject(e);
    });
    req.end();
  });
}

/** Opens streams one by one (so which ones are over the cap is deterministic). */
async function openStreams(base: string, path: string, n: number): Promise<Stream[]> {
  const out: Stream[] = [];
  for (let i = 0; i < n; i++) out.push(await openStream(base, path));
  return out;
}

/** Polls until `f` holds (generous deadline: the machine may be loaded). */
async function until(f: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!(await f())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('viz server hardening', () => {
  let dir: string;
  let store: Store;
  const runs = ['run-a', 'run-b'];
  const servers: VizServer[] = [];

  const start = async (opts: Partial<VizServerOptions> = {}): Promise<VizServer> => {
    const viz = await startVizServer({ store, port: 0, pollMs: 50, ...opts });
    servers.push(viz);
    return viz;
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'plumbline-viz-hard-'));
    store = openSqliteStore(join(dir, 'runs.db'));
    for (const id of runs) {
      const envs = foldEnvelopes(eventfulRun).map(({ v, at, event, state }) => ({
        v,
        at,
        event: event.type === 'run.started' ? { ...event, input: { text: SECRET } } : event,
        state,
      }));
      await store.log.append(id, envs, 'no_stream');
    }
  });

  afterAll(async () => {
    for (const s of servers) await s.close();
    await store?.close();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  describe('Host and Origin (DNS rebinding)', () => {
    let viz: VizServer;
    let port: string;
    beforeAll(async () => {
      viz = await start();
      port = new URL(viz.url).port;
    });

    it('refuses a forged Host with 403, a one-line hint naming the flag, and no run data', async () => {
      for (const path of ['/api/runs', '/api/runs/run-a', '/api/events?runId=run-a', '/']) {
        const res = await get(viz.url, path, { host: `attacker.example:${port}` });
        expect(res.status, path).toBe(403);
        expect(res.body).not.toContain('run-a');
        expect(res.body).not.toContain(SECRET);
        expect(res.body.trim().split('\n')).toHaveLength(1);
        expect(res.body).toContain('--allowed-host');
      }
      // The right name on another port is another site too.
      expect((await get(viz.url, '/api/runs', { host: '127.0.0.1:1' })).status).toBe(403);
    });

    it('answers the names of the loopback address it serves', async () => {
      for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`]) {
        const res = await get(viz.url, '/api/runs', { host });
        expect(res.status, host).toBe(200);
        expect(JSON.parse(res.body).runs).toHaveLength(2);
      }
      expect((await get(viz.url, '/api/runs/run-a', { host: `localhost:${port}` })).body).toContain(
        SECRET,
      );
    });

    it('refuses a cross-origin Origin on the API and the event stream, accepts its own', async () => {
      const host = `127.0.0.1:${port}`;
      for (const path of ['/api/runs', '/api/events?runId=run-a']) {
        const res = await get(viz.url, path, { host, origin: 'http://attacker.example' });
        expect(res.status, path).toBe(403);
        expect(res.body).not.toContain(SECRET);
      }
      const own = await get(viz.url, '/api/runs', { host, origin: `http://localhost:${port}` });
      expect(own.status).toBe(200);
    });

    it('accepts the hosts of the allow-list option, and only those', async () => {
      const viaProxy = await start({ allowedHosts: ['viz.internal', 'box.lan:8080'] });
      const p = new URL(viaProxy.url).port;
      const ok = async (headers: Record<string, string>): Promise<number> =>
        (await get(viaProxy.url, '/api/runs', headers)).status;
      expect(await ok({ host: 'viz.internal' })).toBe(200);
      expect(await ok({ host: `viz.internal:${p}` })).toBe(200);
      expect(await ok({ host: 'box.lan:8080' })).toBe(200);
      expect(await ok({ host: 'box.lan:8081' })).toBe(403);
      expect(await ok({ host: 'attacker.example' })).toBe(403);
      expect(await ok({ host: `127.0.0.1:${p}` })).toBe(200);
      expect(await ok({ host: 'viz.internal', origin: 'http://viz.internal' })).toBe(200);
      expect(await ok({ host: 'viz.internal', origin: 'http://attacker.example' })).toBe(403);
    });
  });

  describe('live stream caps', () => {
    it('caps streams per run with 503 + Retry-After, releases closed ones, keeps answering', async () => {
      const viz = await start({ maxStreamsPerRun: 3, maxStreams: 50 });
      const path = '/api/events?runId=run-a';
      const streams = await openStreams(viz.url, path, 5);
      expect(streams.map((s) => s.status)).toEqual([200, 200, 200, 503, 503]);
      const over = streams[3] as Stream;
      expect(over.headers['retry-after']).toMatch(/^\d+$/);
      await until(async () => over.body().length > 0, 'the 503 body');
      expect(over.body()).toMatch(/too many live streams for run 'run-a'/);
      // At the cap, the rest of the server still answers: the API and other runs' streams.
      expect((await get(viz.url, '/api/runs')).status).toBe(200);
      expect((await get(viz.url, '/api/runs/run-a')).status).toBe(200);
      const other = await openStream(viz.url, '/api/events?runId=run-b');
      expect(other.status).toBe(200);
      other.close();
      // Hanging up frees the slot.
      streams[0]?.close();
      streams[1]?.close();
      let again: Stream | undefined;
      await until(async () => {
        again?.close();
        again = await openStream(viz.url, path);
        return again.status === 200;
      }, 'a freed per-run slot');
      for (const s of streams) s.close();
      again?.close();
    });

    it('caps streams overall, and recovers once they close', async () => {
      const viz = await start({ maxStreamsPerRun: 10, maxStreams: 4 });
      const streams = [
        ...(await openStreams(viz.url, '/api/events?runId=run-a', 2)),
        ...(await openStreams(viz.url, '/api/events?runId=run-b', 1)),
        ...(await openStreams(viz.url, '/api/events', 1)),
      ];
      expect(streams.map((s) => s.status)).toEqual([200, 200, 200, 200]);
      const over = await openStream(viz.url, '/api/events');
      const overRun = await openStream(viz.url, '/api/events?runId=run-b');
      expect([over.status, overRun.status]).toEqual([503, 503]);
      expect(over.headers['retry-after']).toMatch(/^\d+$/);
      await until(async () => over.body().length > 0, 'the 503 body');
      expect(over.body()).toMatch(/too many live streams/);
      expect((await get(viz.url, '/api/runs')).status).toBe(200);
      for (const s of streams) s.close();
      const after: Stream[] = [];
      await until(async () => {
        const s = await openStream(viz.url, '/api/events');
        after.push(s);
        return s.status === 200 && after.filter((a) => a.status === 200).length >= 4;
      }, 'every overall slot freed');
      for (const s of after) s.close();
    });

    it('releases the slots of clients that hang up before their stream starts', async () => {
      // getRun waits at a gate: the clients hang up while the server is in the middle of it.
      let entered = 0;
      let openGate = (): void => undefined;
      const gate = new Promise<void>((r) => (openGate = r));
      const log = new Proxy(store.log, {
        get(target, key) {
          if (key === 'getRun')
            return async (id: string) => {
              entered++;
              await gate;
              return target.getRun(id);
            };
          const v: unknown = Reflect.get(target, key);
          return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
        },
      });
      const viz = await start({ store: log, maxStreamsPerRun: 3, maxStreams: 3 });
      const u = new URL(viz.url);
      const early = [0, 1, 2].map(() => {
        const req = request({
          host: u.hostname,
          port: u.port,
          path: '/api/events?runId=run-a',
          agent: false,
        });
        req.on('error', () => undefined);
        req.end();
        return req;
      });
      await until(async () => entered === 3, 'the three requests inside getRun');
      for (const req of early) req.destroy();
      await new Promise((r) => setTimeout(r, 200));
      openGate();
      // Every slot comes back: three streams open again, and the cap still refuses a fourth.
      const again: Stream[] = [];
      await until(async () => {
        const s = await openStream(viz.url, '/api/events?runId=run-a');
        if (s.status === 200) again.push(s);
        else s.close();
        return again.length === 3;
      }, 'the slots of early hang-ups released');
      const fourth = await openStream(viz.url, '/api/events?runId=run-a');
      expect(fourth.status).toBe(503);
      for (const s of [...again, fourth]) s.close();
    });
  });

  describe('malformed paths', () => {
    it('answers 400, not 500, to bad percent-encoding anywhere', async () => {
      const viz = await start();
      for (const path of [
        '/%E0%A4%A',
        '/%E0%A4%A.js',
        '/api/runs/%E0%A4%A',
        '/api/runs/%ZZ',
        '/api/pipelines/%E0%A4%A/chart',
        '/api/events?runId=%E0%A4%A',
      ]) {
        const res = await get(viz.url, path);
        expect(res.status, path).toBe(400);
        expect(JSON.parse(res.body).error.message, path).toMatch(/./);
      }
      expect((await get(viz.url, '/api/runs')).status).toBe(200);
    });
  });
});
