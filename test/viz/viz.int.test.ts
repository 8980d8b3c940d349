/**
 * The visualizer end to end: real triage runs on SQLite (through the Runtime, the real SDK and
 * the fake Claude), the viz server on a random port, and the page in Debian's Chromium.
 */
import { execSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import triage from '../../examples/triage.js';
import { compilePipeline } from '../../src/machines/compile.js';
import type { StoredEnvelope } from '../../src/machines/events.js';
import { describeMachine } from '../../src/machines/graph.js';
import { foldLog } from '../../src/machines/replay.js';
import { createAnthropicClient } from '../../src/model/anthropic.js';
import { Runtime } from '../../src/runtime/driver.js';
import { prepare, type Prepared } from '../../src/runtime/prepare.js';
import { openSqliteStore } from '../../src/store/sqlite.js';
import type { Store } from '../../src/store/types.js';
import { startFakeClaude, type FakeClaude } from '../../src/testing/fakeClaude.js';
import { pathOf, startVizServer } from '../../src/viz/index.js';
import type { VizServer } from '../../src/viz/server.js';

function findChromium(): string | null {
  try {
    return execSync('command -v chromium', { shell: '/bin/sh', encoding: 'utf8' }).trim() || null;
  } catch {
    return null;
  }
}

const CHROMIUM = findChromium();
const ARTIFACTS = join(import.meta.dirname, '..', '..', 'test-artifacts');
const ticket = (id: string) => ({
  id,
  from: 'ana@example.com',
  subject: 'Checkout is down',
  body: 'Every payment fails with a 500 since 9:00.',
});

describe('viz server', () => {
  let dir: string;
  let store: Store;
  let fake: FakeClaude;
  let runtime: Runtime;
  let prepared: Prepared;
  let viz: VizServer;
  let doneId: string;
  let doneEnvs: StoredEnvelope[];
  let liveId: string;
  const outboxBefore = process.env.PLUMBLINE_OUTBOX;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'plumbline-viz-'));
    process.env.PLUMBLINE_OUTBOX = join(dir, 'outbox');
    store = openSqliteStore(join(dir, 'runs.db'));
    fake = await startFakeClaude({
      script: [
        { kind: 'status', status: 529, headers: { 'retry-after-ms': '10' } },
        { kind: 'json', value: { category: 'outage', urgency: 9, summary: 'Checkout down' } },
        {
          kind: 'json',
          value: { category: 'outage', urgency: 5, summary: 'Checkout is down for every customer' },
        },
      ],
    });
    runtime = new Runtime({
      store,
      model: createAnthropicClient({ apiKey: 'test', baseURL: fake.url }),
    });
    prepared = prepare(triage);
    const done = await runtime.start(prepared, { input: ticket('T-1') });
    expect(done.status).toBe('completed');
    doneId = done.runId;
    doneEnvs = await store.log.read(doneId);
    liveId = await runtime.create(prepared, { input: ticket('T-2') });
    viz = await startVizServer({
      store,
      port: 0,
      pipelines: new Map([['triage', prepared]]),
      pollMs: 50,
    });
  });

  afterAll(async () => {
    await viz?.close();
    await fake?.close();
    await store?.close();
    if (outboxBefore === undefined) delete process.env.PLUMBLINE_OUTBOX;
    else process.env.PLUMBLINE_OUTBOX = outboxBefore;
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  const get = async (path: string): Promise<{ status: number; body: any }> => {
    const res = await fetch(new URL(path, viz.url));
    return { status: res.status, body: await res.json() };
  };

  describe('API', () => {
    it('lists runs with status, pipeline, cost, start and duration, filtered', async () => {
      const all = await get('/api/runs');
      expect(all.status).toBe(200);
      expect(all.body.runs.map((r: { runId: string }) => r.runId).sort()).toEqual(
        [doneId, liveId].sort(),
      );
      const running = await get('/api/runs?status=running&pipeline=triage');
      expect(running.body.runs).toHaveLength(1);
      expect(running.body.runs[0]).toMatchObject({
        runId: liveId,
        status: 'running',
        pipeline: 'triage',
        costUsd: 0,
      });
      const done = (await get('/api/runs?status=completed')).body.runs[0];
      expect(done.costUsd).toBeGreaterThan(0);
      expect(done.durationMs).toBeGreaterThanOrEqual(0);
      expect(typeof done.startedAt).toBe('number');
      expect((await get('/api/runs?pipeline=other')).body.runs).toEqual([]);
    });

    it('serves a run with its envelopes, chart from the recorded definition and derived path', async () => {
      const { status, body } = await get(`/api/runs/${doneId}`);
      expect(status).toBe(200);
      expect(body.chartSource).toBe('recorded');
      expect(body.path.source).toBe('machine'); // triage is loaded: edges read from XState
      expect(body.path.maybe).toEqual({});
      expect(body.envelopes).toHaveLength(doneEnvs.length);
      expect(body.chart.nodes).toHaveLength(prepared.graph.nodes.length);
      expect(body.chart.edges).toHaveLength(prepared.graph.edges.length);
      const path = pathOf(prepared.graph, doneEnvs);
      expect(body.path.visited).toEqual(Object.fromEntries(path.visited));
      expect(body.path.taken).toEqual(Object.fromEntries(path.taken));
      expect(body.path.current).toEqual(['run.completed']);
    });

    it('serves loaded pipelines and their charts', async () => {
      const list = await get('/api/pipelines');
      expect(list.body.pipelines).toEqual([
        expect.objectContaining({ name: 'triage', loaded: true, hash: prepared.hash }),
      ]);
      const chart = await get('/api/pipelines/triage/chart');
      expect(chart.body.chart.nodes).toHaveLength(prepared.graph.nodes.length);
    });

    it('serves the page and its assets from the package, nothing outside them', async () => {
      const page = await fetch(viz.url);
      expect(page.headers.get('content-type')).toMatch(/text\/html/);
      expect(await page.text()).toContain('id="scrubber"');
      const js = await fetch(new URL('/app.js', viz.url));
      expect(js.headers.get('content-type')).toMatch(/text\/javascript/);
      expect((await fetch(new URL('/app.css', viz.url))).status).toBe(200);
      expect((await fetch(new URL('/..%2f..%2fpackage.json', viz.url))).status).toBe(404);
      expect((await fetch(new URL('/api/runs', viz.url), { method: 'POST' })).status).toBe(405);
    });

    it('answers clear JSON errors', async () => {
      const bad = await get('/api/runs?status=done');
      expect(bad.status).toBe(400);
      expect(bad.body.error.message).toMatch(
        /unknown status 'done': use one of running, completed/,
      );
      const missing = await get('/api/runs/NOPE');
      expect(missing.status).toBe(404);
      expect(missing.body.error.message).toMatch(/unknown run id 'NOPE'/);
      expect((await get('/api/runs/bad%20id')).status).toBe(400);
      const pipe = await get('/api/pipelines/nope/chart');
      expect(pipe.status).toBe(404);
      expect(pipe.body.error.message).toMatch(/not loaded \(loaded: triage\)/);
      expect((await get('/api/events?runId=NOPE')).status).toBe(404);
      expect((await get('/api/events?from=-1')).status).toBe(400);
      expect((await get('/api/nothing')).status).toBe(404);
    });

    it('streams a run as Server-Sent Events with ids and path steps', async () => {
      const ac = new AbortController();
      const res = await fetch(
        new URL(`/api/events?runId=${doneId}&from=${doneEnvs.length - 2}`, viz.url),
        { signal: ac.signal },
      );
      expect(res.headers.get('content-type')).toMatch(/text\/event-stream/);
      const reader = (res.body as ReadableStream<Uint8Array>).getReader();
      let text = '';
      while ((text.match(/event: envelope/g) ?? []).length < 2)
        text += new TextDecoder().decode((await reader.read()).value);
      ac.abort();
      const datas = text
        .split('\n')
        .filter((l) => l.startsWith('data: '))
        .map((l) => JSON.parse(l.slice(6)));
      expect(datas.map((d) => d.envelope.seq)).toEqual([doneEnvs.length - 1, doneEnvs.length]);
      expect(datas[1].step.current).toEqual(['run.completed']);
    });
  });

  describe.skipIf(CHROMIUM === null)(
    `in Chromium${CHROMIUM === null ? ' (SKIPPED: no chromium on PATH — install it with `apt-get install -y chromium`)' : ''}`,
    () => {
      let browser: Browser;
      let page: Page;
      const graph = describeMachine(compilePipeline(triage));

      beforeAll(async () => {
        browser = await chromium.launch({
          executablePath: CHROMIUM as string,
          args: [
            '--headless',
            '--no-sandbox',
            '--disable-gpu',
            '--disable-background-networking',
            '--disable-quic',
            '--no-first-run',
            '--disable-component-update',
            '--disable-sync',
          ],
        });
        page = await browser.newPage({ viewport: { width: 1600, height: 1100 } });
        page.on('pageerror', (e) => {
          throw e;
        });
      });
      afterAll(async () => {
        await browser?.close();
      });

      const ids = (selector: string, attr: string): Promise<string[]> =>
        page.$$eval(selector, (els, a) => els.map((e) => e.getAttribute(a) ?? ''), attr);

      it('draws every state and transition of the machine, with the path and the current state', async () => {
        await page.goto(`${viz.url}#/runs/${doneId}`);
        // The step view is the default (test/viz/steps.int.test.ts); "All states" draws the
        // whole machine, and the browser remembers the choice for the tests below.
        await page.waitForSelector('#chart[data-mode="steps"] [data-node-id]');
        await page.click('#view-states');
        await page.waitForSelector(
          '#chart[data-mode="states"] [data-node-id="run.classify.calling"]',
        );
        expect((await ids('[data-node-id]', 'data-node-id')).sort()).toEqual(
          graph.nodes.map((n) => n.id).sort(),
        );
        expect((await ids('path[data-edge-id]', 'data-edge-id')).sort()).toEqual(
          graph.edges.map((e) => e.id).sort(),
        );
        const path = pathOf(graph, doneEnvs);
        expect((await ids('[data-node-id].visited', 'data-node-id')).sort()).toEqual(
          [...path.visited.keys()].sort(),
        );
        expect((await ids('path[data-edge-id].taken', 'data-edge-id')).sort()).toEqual(
          [...path.taken.keys()].sort(),
        );
        expect(await ids('[data-node-id].current', 'data-node-id')).toEqual(['run.completed']);
        expect(await page.getAttribute('[data-node-id="run.classify.calling"]', 'data-count')).toBe(
          '3',
        );
        expect(await page.locator('#timeline tbody tr').count()).toBe(doneEnvs.length);
        await expect
          .poll(() => page.locator(`#runs tr[data-run-id="${liveId}"] .pill`).textContent())
          .toBe('running');
      });

      it('time-travels: the scrubber shows the folded state at an earlier seq', async () => {
        const invalid = doneEnvs.find(
          (e) => e.event.type === 'MODEL_RESPONSE' && e.event.verdict === 'invalid',
        );
        const seq = invalid?.seq ?? 0;
        expect(seq).toBeGreaterThan(1);
        await page.$eval(
          '#scrubber',
          (el, v) => {
            const input = el as HTMLInputElement;
            input.value = String(v);
            input.dispatchEvent(new Event('input', { bubbles: true }));
            input.dispatchEvent(new Event('change', { bubbles: true }));
          },
          seq,
        );
        const folded = foldLog(prepared.machine, prepared.hash, doneId, doneEnvs, { until: seq })
          .snapshot.value;
        expect(folded).toEqual({ classify: 'ready' });
        expect(await page.textContent('#scrub-seq')).toBe(String(seq));
        expect(JSON.parse((await page.textContent('#scrub-state')) ?? 'null')).toEqual(folded);
        expect((await ids('[data-node-id].current', 'data-node-id')).sort()).toEqual([
          'run.classify',
          'run.classify.ready',
        ]);
        const upTo = pathOf(graph, doneEnvs, { untilSeq: seq });
        expect((await ids('[data-node-id].visited', 'data-node-id')).sort()).toEqual(
          [...upTo.visited.keys()].sort(),
        );
        expect((await ids('path[data-edge-id].taken', 'data-edge-id')).sort()).toEqual(
          [...upTo.taken.keys()].sort(),
        );
        expect(await page.getAttribute(`#timeline tr[data-seq="${seq}"]`, 'class')).toContain('at');
        await expect
          .poll(() => page.locator(`#timeline tr[data-seq="${seq}"] .issues li`).count())
          .toBeGreaterThan(0);
        mkdirSync(ARTIFACTS, { recursive: true });
        await page.screenshot({ path: join(ARTIFACTS, 'viz-run.png') });
      });

      it('survives a malformed hash: no page error, the run list and a hint instead', async () => {
        const fresh = await browser.newPage();
        const errors: string[] = [];
        fresh.on('pageerror', (e) => errors.push(e.message));
        try {
          await fresh.goto(`${viz.url}#/runs/%E0%A4%A`);
          await fresh.waitForSelector(`#runs tr[data-run-id="${doneId}"]`);
          await fresh.waitForSelector('#error:not([hidden])');
          expect(await fresh.textContent('#error')).toContain('percent-encoding');
          expect(await fresh.isVisible('#placeholder')).toBe(true);
          await fresh.evaluate(() => {
            location.hash = '#run=%E0%A4%A';
          });
          await fresh.evaluate(() => new Promise((r) => setTimeout(r, 100)));
          expect(await fresh.isVisible('#placeholder')).toBe(true);
          expect(errors).toEqual([]);
        } finally {
          await fresh.close();
        }
      });

      it('shows new events of an in-flight run live', async () => {
        await page.goto(`${viz.url}#/runs/${liveId}`);
        await page.waitForSelector('#run-view[data-live="open"]');
        expect(await page.locator('#timeline tbody tr').count()).toBe(1);
        expect(await ids('[data-node-id].current', 'data-node-id')).toContain('run.classify.ready');
        // The model answers after the test ends: the run stays in `calling`.
        fake.setScript([{ kind: 'delay', ms: 60_000, then: { kind: 'valid' } }]);
        const ac = new AbortController();
        const driving = runtime.drive(prepared, liveId, ac.signal);
        try {
          await page.waitForSelector('#timeline tr[data-seq="2"]', { timeout: 5_000 });
          expect(await page.textContent('#timeline tr[data-seq="2"]')).toContain('ATTEMPT');
          expect(await page.getAttribute('#scrubber', 'max')).toBe('2');
          expect(await page.textContent('#scrub-seq')).toBe('2');
          expect(await ids('[data-node-id].current', 'data-node-id')).toContain(
            'run.classify.calling',
          );
          expect(
            await page.getAttribute('path[data-edge-id="run.classify.ready:ATTEMPT:0"]', 'class'),
          ).toContain('taken');
          await page.screenshot({ path: join(ARTIFACTS, 'viz-live.png') });
        } finally {
          ac.abort();
          await driving;
        }
      });
    },
  );
});
