/**
 * The step-level view in Chromium (issues 11 and 12): the 4-step triage chart fits a 1280×720
 * screen, a clicked step shows its guard states, route / parallel / map / agent steps show what
 * they did, and the approve form resumes a waiting run. Real runs on SQLite through the Runtime,
 * the real SDK and the fake Claude; screenshots go to test-artifacts/.
 */
import { execSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import triage from '../../examples/triage.js';
import { agent, tool } from '../../src/machines/agent.js';
import { map, parallel, route } from '../../src/machines/constructs.js';
import { definePipeline, step } from '../../src/machines/pipeline.js';
import { prepare, type Prepared } from '../../src/runtime/prepare.js';
import type { FakeAction, FakeRequest } from '../../src/testing/index.js';
import { startVizServer, type VizServer } from '../../src/viz/server.js';
import approval from '../fixtures/pipelines/approval.js';
import { harness, type Harness } from '../helpers/harness.js';

function findChromium(): string | null {
  try {
    return execSync('command -v chromium', { shell: '/bin/sh', encoding: 'utf8' }).trim() || null;
  } catch {
    return null;
  }
}
const CHROMIUM = findChromium();
const ARTIFACTS = join(import.meta.dirname, '..', '..', 'test-artifacts');

const lookup = tool({
  description: 'Look up an order',
  input: z.object({ orderId: z.string() }),
  run: ({ orderId }) => ({ orderId, amount: 42 }),
});
/** route → parallel → map (one item fails, collected) → agent. */
const shapes = prepare(
  definePipeline({
    name: 'shapes',
    version: '1',
    input: z.object({ kind: z.string() }),
    steps: [
      route({
        name: 'pick',
        choose: (c) => (c.input as { kind: string }).kind,
        branches: {
          a: [step({ name: 'on-a', run: () => 'a' })],
          b: [step({ name: 'on-b', run: () => 'b' })],
        },
      }),
      parallel({
        name: 'both',
        branches: {
          x: [step({ name: 'px', run: () => 'x' })],
          y: [step({ name: 'py', run: () => 'y' })],
        },
      }),
      map({
        name: 'each',
        over: () => [1, 2, 3],
        onItemError: 'collect',
        steps: [
          step({
            name: 'check',
            run: (c) => {
              if (c.input === 2) throw new Error('item 2 is unreadable');
              return c.input;
            },
          }),
        ],
      }),
      agent({
        name: 'support',
        model: 'claude-sonnet-4-6',
        prompt: () => 'where is order A1?',
        tools: { lookup },
        output: z.object({ reply: z.string() }),
        maxTurns: 4,
      }),
    ],
  }),
);
const turnOf = (req: FakeRequest): number =>
  ((req.body.messages ?? []) as Array<{ role: string }>).filter((m) => m.role === 'assistant')
    .length;
const agentTurns: FakeAction[] = [
  { kind: 'tool_use', text: 'Let me look.', calls: [{ name: 'lookup', input: { orderId: 'A1' } }] },
  { kind: 'json', value: { reply: 'A1 costs $42' } },
];

const ticket = {
  id: 'T-1',
  from: 'ana@example.com',
  subject: 'Checkout is down',
  body: 'Every payment fails with a 500 since 9:00.',
};

describe('step view', () => {
  let h: Harness;
  let viz: VizServer;
  let triageP: Prepared;
  let approvalP: Prepared;
  const outboxBefore = process.env.PLUMBLINE_OUTBOX;
  const sink = () => join(h.dir, 'refunds.txt');

  beforeAll(async () => {
    h = await harness();
    process.env.PLUMBLINE_OUTBOX = join(h.dir, 'outbox');
    triageP = prepare(triage);
    approvalP = prepare(approval);
    h.fake.setScript([
      { kind: 'status', status: 529, headers: { 'retry-after-ms': '10' } },
      { kind: 'json', value: { category: 'outage', urgency: 9, summary: 'Checkout down' } },
      { kind: 'json', value: { category: 'outage', urgency: 5, summary: 'Checkout is down' } },
      { kind: 'json', value: { reply: 'We are on it.', escalate: true } },
    ]);
    const rt = h.runtime();
    expect((await rt.start(triageP, { input: ticket, runId: 'triage-1' })).status).toBe(
      'completed',
    );
    const waiting = await rt.start(approvalP, {
      input: { amount: 30, sink: sink() },
      runId: 'approval-1',
    });
    expect(waiting.status).toBe('waiting');
    h.fake.setScript((req) => agentTurns[turnOf(req)] ?? { kind: 'text', text: 'no more turns' });
    expect((await rt.start(shapes, { input: { kind: 'a' }, runId: 'shapes-1' })).status).toBe(
      'completed',
    );
    viz = await startVizServer({
      store: h.store,
      port: 0,
      pollMs: 50,
      pipelines: new Map([
        ['triage', triageP],
        ['approval', approvalP],
        ['shapes', shapes],
      ]),
      drive: (p, runId, signal) => h.runtime().drive(p, runId, signal),
    });
  });

  afterAll(async () => {
    await viz?.close();
    await h?.close();
    if (outboxBefore === undefined) delete process.env.PLUMBLINE_OUTBOX;
    else process.env.PLUMBLINE_OUTBOX = outboxBefore;
  });

  const get = async (path: string): Promise<{ status: number; body: any }> => {
    const res = await fetch(new URL(path, viz.url));
    return { status: res.status, body: await res.json() };
  };
  const post = (path: string, body: string, headers: Record<string, string> = {}) =>
    fetch(new URL(path, viz.url), {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body,
    });

  describe('API', () => {
    it('folds a run to its steps: kinds, arrows, and the transitions each arrow stands for', async () => {
      const { body } = await get('/api/runs/triage-1');
      expect(body.steps.steps.map((s: any) => [s.name, s.kind])).toEqual([
        ['classify', 'llm'],
        ['draft', 'llm'],
        ['escalate', 'effect'],
        ['route', 'step'],
      ]);
      expect(body.steps.edges.map((e: any) => `${e.source}>${e.target}`)).toEqual([
        'run.classify>run.draft',
        'run.draft>run.escalate',
        'run.escalate>run.route',
        'run.route>run.completed',
      ]);
      // Guard sub-states and the parked/failed/killed states are not boxes of the step chart.
      expect(body.steps.chart.nodes.map((n: any) => n.id).sort()).toEqual(
        ['run', 'run.classify', 'run.draft', 'run.escalate', 'run.route', 'run.completed'].sort(),
      );
      const shaped = (await get('/api/runs/shapes-1')).body;
      expect(shaped.steps.steps.map((s: any) => [s.name, s.kind])).toEqual([
        ['pick', 'route'],
        ['on-a', 'step'],
        ['on-b', 'step'],
        ['both', 'parallel'],
        ['each', 'map'],
        ['support', 'agent'],
      ]);
      expect(
        shaped.steps.edges.filter((e: any) => e.branch !== null).map((e: any) => e.branch),
      ).toEqual(['a', 'b']);
      expect(shaped.children.each).toEqual({
        total: 3,
        byStatus: { completed: 2, failed: 1 },
        truncated: false,
      });
      expect(shaped.children.both.total).toBe(2);
      const kids = await get('/api/runs/shapes-1/children?step=each');
      expect(kids.body.children.map((c: any) => [c.runId, c.part, c.status])).toEqual([
        ['shapes-1-each-0', 0, 'completed'],
        ['shapes-1-each-1', 1, 'failed'],
        ['shapes-1-each-2', 2, 'completed'],
      ]);
      expect((await get('/api/runs?top=1')).body.runs.map((r: any) => r.runId).sort()).toEqual([
        'approval-1',
        'shapes-1',
        'triage-1',
      ]);
      const wait = (await get('/api/runs/approval-1')).body.waits.approve;
      expect(wait).toMatchObject({ signal: 'approve', timeoutMs: null });
      expect(Object.keys(wait.schema.properties)).toEqual(['ok', 'by']);
    });

    it('refuses a bad signal with the reason, and guards the POST like the rest', async () => {
      const bad = await post('/api/runs/approval-1/signals/approve', '{"payload":{"ok":"yes"}}');
      expect(bad.status).toBe(400);
      expect((await bad.json()).error.message).toMatch(/does not match step 'approve' schema: ok/);
      const unknown = await post('/api/runs/approval-1/signals/nope', '{"payload":{}}');
      expect(unknown.status).toBe(400);
      expect((await unknown.json()).error.message).toMatch(/no wait step for signal 'nope'/);
      expect(
        (
          await post('/api/runs/approval-1/signals/approve', 'ok=1', {
            'content-type': 'application/x-www-form-urlencoded',
          })
        ).status,
      ).toBe(415);
      expect(
        (
          await post(
            '/api/runs/approval-1/signals/approve',
            JSON.stringify({ payload: 'x'.repeat(70_000) }),
          )
        ).status,
      ).toBe(413);
      expect(
        (
          await post('/api/runs/approval-1/signals/approve', '{"payload":{"ok":true,"by":"x"}}', {
            origin: 'http://evil.example',
          })
        ).status,
      ).toBe(403);
      expect((await get('/api/runs/approval-1/signals/approve')).status).toBe(405);
      expect((await get('/api/runs/approval-1')).body.run.status).toBe('waiting');
      expect(existsSync(sink())).toBe(false);
    });
  });

  describe.skipIf(CHROMIUM === null)(
    `in Chromium${CHROMIUM === null ? ' (SKIPPED: no chromium on PATH — apt-get install -y chromium)' : ''}`,
    () => {
      let browser: Browser;
      let page: Page;
      const errors: string[] = [];

      beforeAll(async () => {
        mkdirSync(ARTIFACTS, { recursive: true });
        browser = await chromium.launch({
          executablePath: CHROMIUM as string,
          args: [
            '--headless',
            '--no-sandbox',
            '--disable-gpu',
            '--disable-background-networking',
            '--no-first-run',
            '--disable-component-update',
            '--disable-sync',
          ],
        });
        page = await browser.newPage({ viewport: { width: 1280, height: 720 } });
        page.on('pageerror', (e) => errors.push(e.message));
      });
      afterAll(async () => {
        await browser?.close();
      });

      const ids = (selector: string, attr: string): Promise<string[]> =>
        page.$$eval(selector, (els, a) => els.map((e) => e.getAttribute(a) ?? ''), attr);

      it('draws the 4-step triage run as its steps, fitting 1280×720 without sideways scrolling', async () => {
        await page.goto(`${viz.url}#/runs/triage-1`);
        await page.waitForSelector('#chart[data-mode="steps"] [data-node-id="run.classify"]');
        expect((await ids('#chart [data-node-id]', 'data-node-id')).sort()).toEqual(
          ['run', 'run.classify', 'run.draft', 'run.escalate', 'run.route', 'run.completed'].sort(),
        );
        expect((await ids('path[data-edge-id].taken', 'data-edge-id')).length).toBe(4);
        expect(await ids('#chart [data-node-id].current', 'data-node-id')).toEqual([
          'run.completed',
        ]);
        expect(await page.textContent('[data-sub-for="run.classify"]')).toMatch(
          /^llm · 3 calls · \$/,
        );
        const fit = await page.evaluate(() => {
          const wrap = document.querySelector('#chart-wrap') as HTMLElement;
          const chart = document.querySelector('#chart') as SVGSVGElement;
          const r = chart.getBoundingClientRect();
          const w = wrap.getBoundingClientRect();
          return {
            pageScroll: document.documentElement.scrollWidth - window.innerWidth,
            wrapScroll: wrap.scrollWidth - wrap.clientWidth,
            inside: r.left >= w.left - 1 && r.right <= w.right + 1 && r.bottom <= w.bottom + 1,
            zoom: Number(chart.dataset.zoom),
          };
        });
        expect(fit.pageScroll).toBeLessThanOrEqual(0);
        expect(fit.wrapScroll).toBeLessThanOrEqual(0);
        expect(fit.inside).toBe(true);
        // Still legible: drawn at no less than 70 % of its size.
        expect(fit.zoom).toBeGreaterThanOrEqual(0.7);
        // The run id whole, with the date.
        expect(await page.textContent('#run-id')).toBe('triage-1');
        expect(await page.textContent('#run-started')).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/);
        await page.screenshot({ path: join(ARTIFACTS, 'viz-steps-triage.png') });
      });

      it('opens a step: its guard states with visits, and the folded parked/failed transitions', async () => {
        await page.click('[data-node-id="run.classify"] > .box');
        await page.waitForSelector('#step-detail:not([hidden])');
        expect(await page.textContent('#step-detail-title')).toBe('classify');
        expect(await ids('[data-guard-state]', 'data-guard-state')).toEqual([
          'run.classify.ready',
          'run.classify.limits',
          'run.classify.calling',
          'run.classify.validate',
          'run.classify.retry',
          'run.classify.backoff',
        ]);
        expect(await page.textContent('[data-guard-state="run.classify.calling"] .count')).toBe(
          '×3',
        );
        expect(
          await page.getAttribute('[data-guard-state="run.classify.backoff"]', 'class'),
        ).toContain('visited');
        const folded = await ids('[data-folded-edge]', 'data-folded-edge');
        expect(folded).toContain('run.classify.limits:always:3'); // → parked [overBudget]
        expect(folded.some((id) => id.startsWith('run.parked:RESUME'))).toBe(true);
        expect(await page.locator('[data-folded-edge].taken').count()).toBe(0);
        await page.screenshot({ path: join(ARTIFACTS, 'viz-steps-opened.png') });
        // "All states" shows the whole machine, with the step's sub-states.
        await page.click('#step-detail-states');
        await page.waitForSelector(
          '#chart[data-mode="states"] [data-node-id="run.classify.calling"]',
        );
        expect(await page.locator('#chart [data-node-id]').count()).toBe(
          triageP.graph.nodes.length,
        );
        await page.click('#view-steps');
        await page.waitForSelector('#chart[data-mode="steps"]');
      });

      it('shows the route taken, parallel regions, map counts and children, and an agent’s turns', async () => {
        await page.goto(`${viz.url}#/runs/shapes-1`);
        await page.waitForSelector('#chart[data-mode="steps"] [data-node-id="run.pick"]');
        expect(
          await page.getAttribute('path[data-edge-id="steps:run.pick->run.on-a"]', 'class'),
        ).toContain('taken');
        expect(
          await page.getAttribute('path[data-edge-id="steps:run.pick->run.on-b"]', 'class'),
        ).not.toContain('taken');
        expect(await page.getAttribute('[data-node-id="run.on-b"]', 'class')).not.toContain(
          'visited',
        );
        for (const r of ['x', 'y'])
          expect(
            await page.getAttribute(`[data-node-id="run.both.branches.${r}"]`, 'class'),
          ).toContain('branch-done');
        expect(await page.textContent('[data-sub-for="run.each"]')).toBe(
          '2 done · 0 running · 1 failed',
        );
        await page.click('[data-node-id="run.each"] > .box');
        await page.waitForSelector('#step-detail [data-child]');
        expect(await ids('#step-detail [data-child]', 'data-child')).toEqual([
          'shapes-1-each-0',
          'shapes-1-each-1',
          'shapes-1-each-2',
        ]);
        await page.click('[data-node-id="run.support"] > .box');
        await page.waitForSelector('#step-detail[data-step="support"] tr.turn');
        expect(await page.locator('#step-detail tr.turn').count()).toBe(2);
        const call = page.locator('#step-detail tr.tool-call');
        expect(await call.count()).toBe(1);
        expect(await call.textContent()).toContain('lookup');
        expect(await call.textContent()).toContain('"orderId": "A1"');
        expect(await call.textContent()).toContain('"amount": 42');
        await page.screenshot({ path: join(ARTIFACTS, 'viz-steps-shapes.png') });
      });

      it('approves a waiting run from the page: the run goes on and completes', async () => {
        await page.goto(`${viz.url}#/runs/approval-1`);
        await page.waitForSelector('#chart [data-node-id="run.approve"].ended-waiting');
        await page.click('[data-node-id="run.approve"] > .box');
        await page.waitForSelector('form.approve-form');
        expect(await page.textContent('#step-detail')).toContain("Waits for signal 'approve'");
        await page.check('form.approve-form [name="ok"]');
        await page.fill('form.approve-form [name="by"]', 'ana');
        await page.fill('form.approve-form [name="__by"]', 'ana@example.com');
        await page.screenshot({ path: join(ARTIFACTS, 'viz-steps-approve.png') });
        await page.click('form.approve-form button[type="submit"]');
        await page.waitForSelector('.sd-result[data-result="ok"]');
        await expect
          .poll(async () => (await h.store.log.getRun('approval-1'))?.status, { timeout: 20_000 })
          .toBe('completed');
        expect(readFileSync(sink(), 'utf8')).toBe('approval-1 30 ana\n');
        // The page follows the run live: completed, with the signal in the wait step's detail.
        await page.waitForSelector('#run-status.status-completed', { timeout: 20_000 });
        expect(await page.textContent('#step-detail')).toContain(
          "Signal 'approve' sent by ana@example.com",
        );
        await page.screenshot({ path: join(ARTIFACTS, 'viz-steps-approved.png') });
        expect(errors).toEqual([]);
      });
    },
  );
});
