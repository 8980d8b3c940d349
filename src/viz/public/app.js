// plumbline run visualizer: plain JS, no build step. Talks to /api/* of src/viz/server.ts.
import { routeOf } from './route.js';
import {
  $,
  api,
  el,
  fmtCost,
  fmtDate,
  fmtDuration,
  fmtOffset,
  fmtTime,
  shortJson,
  svg,
} from './dom.js';
import {
  closeStep,
  initStepView,
  paintSteps,
  renderStepDetail,
  stepNodeExtras,
} from './stepView.js';

const TERMINAL = new Set(['completed', 'failed', 'killed']);

const ui = {
  runs: [],
  view: null, // { kind: 'run', data, envelopes, steps } | { kind: 'pipeline', data }
  scrubSeq: 0,
  follow: true,
  zoom: null, // null: fit the whole chart
  // 'steps' (default): one box per step; 'states': every state and transition of the machine.
  mode: localStorage.getItem('plumbline.viz.view') === 'states' ? 'states' : 'steps',
  runStream: null,
  listStream: null,
  clockTimer: null,
};

function showError(msg) {
  const b = $('#error');
  b.hidden = msg === null;
  b.textContent = msg ?? '';
}

// ---------- run list ----------
function currentFilters() {
  return { status: $('#filter-status').value, pipeline: $('#filter-pipeline').value };
}
async function loadRuns() {
  const f = currentFilters();
  // Child runs are opened from their parent's step, not listed beside it.
  const q = new URLSearchParams({ top: '1' });
  if (f.status) q.set('status', f.status);
  if (f.pipeline) q.set('pipeline', f.pipeline);
  try {
    const { runs } = await api(`/api/runs?${q}`);
    ui.runs = runs;
    renderRuns();
  } catch (e) {
    showError(`Could not load runs: ${e.message}`);
  }
}
function renderRuns() {
  const body = $('#runs tbody');
  body.replaceChildren();
  const selected = ui.view?.kind === 'run' ? ui.view.data.run.runId : null;
  for (const r of ui.runs) {
    const tr = el(
      'tr',
      {
        'data-run-id': r.runId,
        'data-status': r.status,
        class: r.runId === selected ? 'selected' : '',
        onclick: () => (location.hash = `#/runs/${encodeURIComponent(r.runId)}`),
      },
      el('td', {}, el('span', { class: `pill status-${r.status}`, text: r.status })),
      el(
        'td',
        { class: 'run-cell' },
        el(
          'div',
          { class: 'pipeline-name', text: `${r.pipeline}` },
          el('span', { class: 'muted', text: ` v${r.version}` }),
        ),
        el('div', { class: 'run-id-small', text: r.runId, title: 'run id (select to copy)' }),
        el('div', {
          class: 'run-date',
          text: fmtDate(r.startedAt),
          title: new Date(r.startedAt).toISOString(),
        }),
      ),
      el('td', { class: 'num', text: fmtCost(r.costUsd) }),
      el(
        'td',
        { class: 'num nowrap' },
        el('div', {
          class: 'muted duration',
          'data-started': r.status === 'running' ? r.startedAt : null,
          text: fmtDuration(r.durationMs),
        }),
      ),
    );
    body.append(tr);
  }
  $('#runs-empty').hidden = ui.runs.length > 0;
}
async function loadPipelines() {
  try {
    const { pipelines } = await api('/api/pipelines');
    const sel = $('#filter-pipeline');
    const keep = sel.value;
    sel.replaceChildren(el('option', { value: '', text: 'all' }));
    for (const p of pipelines) sel.append(el('option', { value: p.name, text: p.name }));
    sel.value = keep;
    const loaded = pipelines.filter((p) => p.loaded);
    const sec = $('#pipelines');
    sec.hidden = loaded.length === 0;
    const ul = sec.querySelector('ul');
    ul.replaceChildren(
      ...loaded.map((p) =>
        el(
          'li',
          {},
          el('a', { href: `#/pipelines/${encodeURIComponent(p.name)}`, text: p.name }),
          el('span', {
            class: 'muted',
            text: ` v${p.version} · ${p.steps.length} steps · ${p.recentRuns} runs`,
          }),
        ),
      ),
    );
  } catch (e) {
    showError(`Could not load pipelines: ${e.message}`);
  }
}
function listenToAllRuns() {
  let timer = null;
  const es = new EventSource('/api/events');
  ui.listStream = es;
  es.onopen = () => setConn(true);
  es.onerror = () => setConn(false);
  es.addEventListener('envelope', () => {
    clearTimeout(timer);
    timer = setTimeout(() => void loadRuns(), 200);
  });
}
function setConn(ok) {
  const c = $('#conn');
  c.textContent = ok ? 'live' : 'reconnecting…';
  c.classList.toggle('ok', ok);
}

// ---------- chart ----------
function roundedPath(points, r = 7) {
  if (points.length === 0) return '';
  let d = `M${points[0].x},${points[0].y}`;
  for (let i = 1; i < points.length - 1; i++) {
    const p = points[i];
    const a = points[i - 1];
    const b = points[i + 1];
    const la = Math.hypot(p.x - a.x, p.y - a.y);
    const lb = Math.hypot(b.x - p.x, b.y - p.y);
    const rr = Math.min(r, la / 2, lb / 2);
    const p1 = { x: p.x + ((a.x - p.x) / la) * rr, y: p.y + ((a.y - p.y) / la) * rr };
    const p2 = { x: p.x + ((b.x - p.x) / lb) * rr, y: p.y + ((b.y - p.y) / lb) * rr };
    d += ` L${p1.x},${p1.y} Q${p.x},${p.y} ${p2.x},${p2.y}`;
  }
  const last = points[points.length - 1];
  return `${d} L${last.x},${last.y}`;
}
/** The chart of the current view in the chosen mode (the full one when there is no step view). */
function chartOf(data) {
  return ui.mode === 'steps' && data?.steps ? data.steps.chart : (data?.chart ?? null);
}
function drawChart(chart) {
  const root = $('#chart');
  root.replaceChildren();
  const stepMode = ui.mode === 'steps' && Boolean(ui.view?.data?.steps);
  root.dataset.mode = stepMode ? 'steps' : 'states';
  $('#view-steps').classList.toggle('active', ui.mode === 'steps');
  $('#view-states').classList.toggle('active', ui.mode === 'states');
  $('#chart-wrap').scrollTo(0, 0);
  if (!chart) return;
  const pad = 14;
  root.setAttribute(
    'viewBox',
    `${-pad} ${-pad} ${chart.width + 2 * pad} ${chart.height + 2 * pad}`,
  );
  root.dataset.width = String(chart.width + 2 * pad);
  root.dataset.height = String(chart.height + 2 * pad);
  const defs = svg('defs');
  for (const [id, cls] of [
    ['arrow', 'arrow'],
    ['arrow-taken', 'arrow taken'],
  ]) {
    const size = id === 'arrow' ? 8 : 10;
    const m = svg('marker', {
      id,
      viewBox: '0 0 10 10',
      refX: 9,
      refY: 5,
      markerWidth: size,
      markerHeight: size,
      markerUnits: 'userSpaceOnUse',
      orient: 'auto-start-reverse',
    });
    m.append(svg('path', { d: 'M0,0 L10,5 L0,10 z', class: cls }));
    defs.append(m);
  }
  root.append(defs);
  const containers = svg('g', { class: 'layer-containers' });
  const edges = svg('g', { class: 'layer-edges' });
  const labels = svg('g', { class: 'layer-labels' });
  const leaves = svg('g', { class: 'layer-nodes' });
  root.append(containers, edges, leaves, labels);

  const nodes = [...chart.nodes].sort((a, b) => a.depth - b.depth);
  for (const n of nodes) {
    const g = svg('g', {
      'data-node-id': n.id,
      class: `node ${n.compound ? 'compound' : 'leaf'} type-${n.type} depth-${n.depth} key-${n.key}`,
    });
    const title = svg('title');
    title.textContent = `${n.id} (${n.type})`;
    g.append(title);
    g.append(
      svg('rect', {
        x: n.x,
        y: n.y,
        width: n.width,
        height: n.height,
        rx: n.compound ? 10 : 8,
        class: 'box',
      }),
    );
    if (n.type === 'final') {
      g.append(
        svg('rect', {
          x: n.x + 3,
          y: n.y + 3,
          width: n.width - 6,
          height: n.height - 6,
          rx: 6,
          class: 'inner',
        }),
      );
    }
    const t = svg('text', {
      x: n.compound ? n.x + 12 : n.x + n.width / 2,
      y: n.compound ? n.y + 21 : n.y + n.height / 2 + 4.5,
      class: n.compound ? 'label container-label' : 'label',
      'text-anchor': n.compound ? 'start' : 'middle',
    });
    t.textContent = n.label;
    g.append(t);
    if (n.depth > 0) {
      const bx = n.x + n.width - (n.compound ? 16 : 2);
      const by = n.y + (n.compound ? 16 : 2);
      const badge = svg('g', { class: 'badge', transform: `translate(${bx},${by})` });
      badge.append(svg('circle', { r: 9 }));
      const bt = svg('text', { 'text-anchor': 'middle', y: 3.8 });
      badge.append(bt);
      g.append(badge);
    }
    if (stepMode) stepNodeExtras(g, n, ui.view);
    (n.compound ? containers : leaves).append(g);
  }
  for (const e of chart.edges) {
    const d = e.routes.map((r) => roundedPath(r)).join(' ');
    const p = svg('path', {
      d,
      'data-edge-id': e.id,
      class: `edge ev-${e.event === 'always' ? 'always' : 'event'}`,
    });
    const title = svg('title');
    title.textContent = `${e.event}${e.guard ? ` [${e.guard}]` : ''}${e.actions?.length ? ` / ${e.actions.join(', ')}` : ''}\n${e.source} → ${e.targets.join(', ') || '(stays)'}`;
    p.append(title);
    edges.append(p);
    if (e.labelBox) {
      const b = e.labelBox;
      const g = svg('g', { class: 'edge-label', 'data-label-for': e.id });
      g.append(svg('rect', { x: b.x - 2, y: b.y, width: b.width + 4, height: b.height, rx: 4 }));
      const t = svg('text', {
        x: b.x + b.width / 2,
        y: b.y + b.height / 2 + 3.8,
        'text-anchor': 'middle',
      });
      const [ev, ...rest] = e.label.split(' [');
      const evSpan = svg('tspan', { class: 'lbl-event' });
      evSpan.textContent = ev;
      t.append(evSpan);
      if (rest.length) {
        const gSpan = svg('tspan', { class: 'lbl-guard' });
        gSpan.textContent = ` [${rest.join(' [')}`;
        t.append(gSpan);
      }
      const count = svg('tspan', { class: 'lbl-count' });
      t.append(count);
      g.append(t);
      const title2 = svg('title');
      title2.textContent = title.textContent;
      g.append(title2);
      labels.append(g);
    }
  }
  applyZoom();
}
function applyZoom() {
  const root = $('#chart');
  const w = Number(root.dataset.width || 0);
  const h = Number(root.dataset.height || 0);
  if (!w) return;
  const wrap = $('#chart-wrap');
  // Fit: the whole chart in both dimensions (zoom in to read a large statechart).
  const fit = Math.min(1.1, (wrap.clientWidth - 4) / w, (wrap.clientHeight - 4) / h);
  const z = ui.zoom ?? fit;
  root.dataset.zoom = z.toFixed(3);
  root.setAttribute('width', String(Math.round(w * z)));
  root.setAttribute('height', String(Math.round(h * z)));
}
function paintPath(steps, seq) {
  const visited = new Map();
  const taken = new Map();
  const maybe = new Map();
  let current = [];
  let status = 'running';
  for (const s of steps) {
    if (!s || s.seq > seq) break;
    for (const id of s.entered) visited.set(id, (visited.get(id) ?? 0) + 1);
    for (const id of s.taken) taken.set(id, (taken.get(id) ?? 0) + 1);
    for (const id of s.maybe ?? []) maybe.set(id, (maybe.get(id) ?? 0) + 1);
    current = s.current;
  }
  $('.key-maybe-wrap').hidden = maybe.size === 0;
  const env = ui.view?.envelopes?.find((e) => e.seq === seq);
  if (env) status = env.state.status;
  const cur = new Set(current);
  const root = $('#chart');
  root.setAttribute('class', `chart chart-${status}`);
  for (const g of root.querySelectorAll('[data-node-id]')) {
    const id = g.getAttribute('data-node-id');
    const n = visited.get(id) ?? 0;
    g.classList.toggle('visited', n > 0);
    g.classList.toggle('current', cur.has(id));
    g.dataset.count = String(n);
    const badge = g.querySelector(':scope > .badge');
    if (badge) {
      const stepBox = g.classList.contains('step') || g.classList.contains('region');
      badge.classList.toggle('shown', n > 1 || (!stepBox && n > 0 && g.classList.contains('leaf')));
      badge.querySelector('text').textContent = String(n);
    }
  }
  // In the step view an arrow stands for the transitions folded into it.
  const members = new Map((ui.view?.data?.steps?.edges ?? []).map((e) => [e.id, e.edges]));
  const sum = (counts, id) =>
    (members.get(id) ?? [id]).reduce((a, m) => a + (counts.get(m) ?? 0), 0);
  for (const p of root.querySelectorAll('path[data-edge-id]')) {
    const id = p.getAttribute('data-edge-id');
    const n = sum(taken, id);
    const m = n > 0 ? 0 : sum(maybe, id);
    p.classList.toggle('taken', n > 0);
    p.classList.toggle('maybe', m > 0);
    p.dataset.count = String(n);
    const label = root.querySelector(`[data-label-for="${CSS.escape(id)}"]`);
    if (label) {
      label.classList.toggle('taken', n > 0);
      label.classList.toggle('maybe', m > 0);
      label.querySelector('.lbl-count').textContent = n > 1 ? ` ×${n}` : m > 0 ? ' ?' : '';
    }
  }
  // Draw taken edges above the others.
  const layer = root.querySelector('.layer-edges');
  if (layer) for (const p of layer.querySelectorAll('path.maybe, path.taken')) layer.append(p);
  if (root.dataset.mode === 'steps') paintSteps(ui.view, seq);
  else if (ui.view) renderStepDetail(ui.view, seq);
  revealCurrent();
}
/** Scrolls the chart so the current leaf state is in view (centred when it was not). */
function revealCurrent() {
  const root = $('#chart');
  const box =
    root.querySelector('.node.leaf.current > .box') ?? root.querySelector('.node.current > .box');
  if (!box) return;
  const wrap = $('#chart-wrap');
  const vb = root.viewBox.baseVal;
  const z = Number(root.getAttribute('width')) / vb.width;
  const x = (Number(box.getAttribute('x')) - vb.x) * z;
  const y = (Number(box.getAttribute('y')) - vb.y) * z;
  const w = Number(box.getAttribute('width')) * z;
  const h = Number(box.getAttribute('height')) * z;
  const margin = 40;
  if (x < wrap.scrollLeft + margin || x + w > wrap.scrollLeft + wrap.clientWidth - margin) {
    wrap.scrollLeft = Math.max(0, x + w / 2 - wrap.clientWidth / 2);
  }
  if (y < wrap.scrollTop + margin || y + h > wrap.scrollTop + wrap.clientHeight - margin) {
    wrap.scrollTop = Math.max(0, y + h / 2 - wrap.clientHeight / 2);
  }
}
function enablePan(wrap) {
  let drag = null;
  wrap.addEventListener('mousedown', (e) => {
    if (e.button !== 0) return;
    drag = { x: e.clientX, y: e.clientY, left: wrap.scrollLeft, top: wrap.scrollTop };
    wrap.classList.add('panning');
  });
  window.addEventListener('mousemove', (e) => {
    if (!drag) return;
    wrap.scrollLeft = drag.left - (e.clientX - drag.x);
    wrap.scrollTop = drag.top - (e.clientY - drag.y);
  });
  window.addEventListener('mouseup', () => {
    drag = null;
    wrap.classList.remove('panning');
  });
}

// ---------- timeline ----------
function detailOf(ev) {
  switch (ev.type) {
    case 'run.started':
      return [`${ev.pipeline} v${ev.version}`, `input ${shortJson(ev.input, 64)}`];
    case 'ATTEMPT':
      return [
        `${ev.model}`,
        `estimate ${fmtCost(ev.estimate?.usd)}`,
        ev.breaker !== 'closed' ? `breaker ${ev.breaker}` : null,
      ];
    case 'MODEL_RESPONSE': {
      const parts = [
        { text: ev.verdict, cls: `verdict verdict-${ev.verdict}` },
        `${ev.usage?.inputTokens ?? 0} in / ${ev.usage?.outputTokens ?? 0} out`,
        `call ${fmtCost(ev.costUsd)}`,
        ev.durationMs ? fmtDuration(ev.durationMs) : null,
      ];
      if (ev.verdict !== 'valid' && ev.issues?.length) parts.push({ list: ev.issues });
      return parts;
    }
    case 'MODEL_ERROR':
      return [
        { text: `${ev.status ?? 'no status'} ${ev.kind}`, cls: 'err' },
        ev.retryable
          ? { text: `retry in ${fmtDuration(ev.delayMs)}`, cls: 'delay' }
          : { text: 'not retryable', cls: 'err' },
        ev.message ? shortJson(ev.message, 80).replace(/^"|"$/g, '') : null,
      ];
    case 'TIMER':
      return ['backoff elapsed'];
    case 'SKIP':
      return [`skipped: ${ev.reason}`];
    case 'EFFECT_STARTED':
      return [`key ${ev.key}`];
    case 'EFFECT_DONE':
      return [
        `key ${ev.key}`,
        ev.replayed ? { text: 'replayed from ledger', cls: 'delay' } : null,
        shortJson(ev.result, 80),
      ];
    case 'EFFECT_FAILED':
      return [
        { text: ev.message, cls: 'err' },
        ev.retryable ? { text: `retry in ${fmtDuration(ev.delayMs)}`, cls: 'delay' } : null,
      ];
    case 'STEP_DONE':
      return [shortJson(ev.output, 100)];
    case 'STEP_FAILED':
      return [{ text: ev.message, cls: 'err' }];
    case 'KILL':
      return [{ text: `killed: ${ev.reason}`, cls: 'err' }];
    case 'ROUTE':
      return [`branch ${ev.branch}`];
    case 'WAIT_STARTED':
      return [`waits for '${ev.signal}'`, ev.until ? `until ${fmtDate(ev.until)}` : null];
    case 'SIGNAL':
      return [`'${ev.signal}' from ${ev.by ?? 'someone'}`, shortJson(ev.payload, 80)];
    case 'AGENT_TURN':
      return [
        {
          text: ev.verdict,
          cls: `verdict verdict-${ev.verdict === 'tool_use' ? 'valid' : ev.verdict}`,
        },
        `turn ${ev.turn}`,
        `${ev.usage?.inputTokens ?? 0} in / ${ev.usage?.outputTokens ?? 0} out`,
        `call ${fmtCost(ev.costUsd)}`,
      ];
    case 'TOOL_RESULT':
      return [
        ev.ok ? ev.name : { text: `${ev.name}: ${ev.error ?? 'failed'}`, cls: 'err' },
        ev.ok ? shortJson(ev.result, 80) : null,
      ];
    case 'RESUME':
      return [
        `resume${ev.budgetUsd !== null ? ` budget ${fmtCost(ev.budgetUsd)}` : ''}${ev.maxIterations !== null ? ` max ${ev.maxIterations} calls` : ''}`,
      ];
    default:
      return [shortJson(ev, 100)];
  }
}
function timelineRow(env, t0) {
  const ev = env.event;
  const details = el('td', { class: 'details' });
  for (const p of detailOf(ev)) {
    if (p === null || p === undefined) continue;
    if (typeof p === 'string') details.append(el('span', { class: 'part', text: p }));
    else if (p.list)
      details.append(el('ul', { class: 'issues' }, ...p.list.map((i) => el('li', { text: i }))));
    else details.append(el('span', { class: `part ${p.cls ?? ''}`, text: p.text }));
  }
  return el(
    'tr',
    { 'data-seq': env.seq, 'data-type': ev.type, onclick: () => scrubTo(env.seq, true) },
    el('td', { class: 'num seq', text: env.seq }),
    el('td', {
      class: 'num nowrap muted',
      text: env.seq === 1 ? fmtTime(env.at) : fmtOffset(env.at - t0),
      title: new Date(env.at).toISOString(),
    }),
    el(
      'td',
      {},
      el('span', {
        class: `ev-type ev-${ev.type.replace(/\W/g, '_')}${ev.verdict && ev.verdict !== 'valid' ? ' ev-rejected' : ''}`,
        text: ev.type,
      }),
    ),
    el('td', { text: ev.step ?? env.state.step ?? '' }),
    el('td', { class: 'num', text: ev.attempt ?? '' }),
    el('td', { class: 'num', text: fmtCost(env.state.costUsd) }),
    details,
  );
}
function renderTimeline() {
  const body = $('#timeline tbody');
  body.replaceChildren();
  const envs = ui.view.envelopes;
  const t0 = envs[0]?.at ?? 0;
  for (const env of envs) body.append(timelineRow(env, t0));
}
function renderStepCosts() {
  const rows = new Map();
  const order = [];
  for (const env of ui.view.envelopes) {
    const ev = env.event;
    if (!ev.step) continue;
    if (!rows.has(ev.step)) {
      rows.set(ev.step, { calls: 0, inTok: 0, outTok: 0, cost: 0 });
      order.push(ev.step);
    }
    const r = rows.get(ev.step);
    if (ev.type === 'MODEL_RESPONSE' || ev.type === 'MODEL_ERROR' || ev.type === 'AGENT_TURN') {
      r.calls += 1;
      r.cost += ev.costUsd ?? 0;
      r.inTok += ev.usage?.inputTokens ?? 0;
      r.outTok += ev.usage?.outputTokens ?? 0;
    }
  }
  const sum = [...rows.values()].reduce(
    (a, r) => ({
      calls: a.calls + r.calls,
      cost: a.cost + r.cost,
      inTok: a.inTok + r.inTok,
      outTok: a.outTok + r.outTok,
    }),
    { calls: 0, cost: 0, inTok: 0, outTok: 0 },
  );
  const total = sum.cost || 1;
  $('#step-costs tfoot').replaceChildren(
    el(
      'tr',
      {},
      el('td', { text: 'Total' }),
      el('td', { class: 'num', text: sum.calls || '–' }),
      el('td', { class: 'num nowrap', text: sum.calls ? `${sum.inTok} / ${sum.outTok}` : '–' }),
      el('td', { class: 'num', text: fmtCost(sum.cost) }),
    ),
  );
  const body = $('#step-costs tbody');
  body.replaceChildren(
    ...order.map((name) => {
      const r = rows.get(name);
      return el(
        'tr',
        { 'data-step': name },
        el(
          'td',
          {},
          el('div', { text: name }),
          r.cost > 0
            ? el('div', {
                class: 'bar',
                style: `width:${Math.max(1, Math.round((r.cost / total) * 100))}%`,
              })
            : null,
        ),
        el('td', { class: 'num', text: r.calls || '–' }),
        el('td', { class: 'num nowrap', text: r.calls ? `${r.inTok} / ${r.outTok}` : '–' }),
        el('td', { class: 'num', text: r.calls ? fmtCost(r.cost) : '–' }),
      );
    }),
  );
}
function renderHead() {
  const v = ui.view;
  const run = v.data.run;
  const last = v.envelopes[v.envelopes.length - 1];
  const status = last?.state.status ?? run.status;
  const pill = $('#run-status');
  pill.className = `pill big status-${status}`;
  pill.textContent = status;
  $('#run-name').textContent = `${run.pipeline}`;
  $('#run-name').append(el('span', { class: 'muted version', text: ` v${run.version}` }));
  $('#run-id').textContent = run.runId;
  $('#run-cost').textContent = fmtCost(last?.state.costUsd ?? run.costUsd);
  $('#run-started').textContent = fmtDate(run.startedAt);
  $('#run-started').title = new Date(run.startedAt).toISOString();
  const end = TERMINAL.has(status)
    ? (last?.at ?? run.updatedAt)
    : status === 'running'
      ? Date.now()
      : (last?.at ?? run.updatedAt);
  $('#run-duration').textContent = fmtDuration(Math.max(0, end - run.startedAt));
  $('#run-events').textContent = String(v.envelopes.length);
  $('#run-step').textContent = last?.state.step ?? '–';
}

// ---------- scrubber ----------
/** Scrolls the timeline (only it, not the page) so `tr` is visible below the sticky header. */
function revealRow(tr) {
  if (!tr) return;
  const wrap = tr.closest('.timeline-wrap');
  const w = wrap.getBoundingClientRect();
  const r = tr.getBoundingClientRect();
  const head = wrap.querySelector('thead')?.getBoundingClientRect().height ?? 0;
  if (r.top < w.top + head) wrap.scrollTop -= w.top + head - r.top;
  else if (r.bottom > w.bottom) wrap.scrollTop += r.bottom - w.bottom;
}
function scrubTo(seq, user) {
  const v = ui.view;
  if (!v || v.kind !== 'run') return;
  const max = v.envelopes[v.envelopes.length - 1]?.seq ?? 1;
  seq = Math.max(1, Math.min(max, seq));
  ui.scrubSeq = seq;
  if (user) ui.follow = seq === max;
  const input = $('#scrubber');
  input.max = String(max);
  input.value = String(seq);
  $('#scrub-seq').textContent = String(seq);
  $('#scrub-max').textContent = String(max);
  const env = v.envelopes.find((e) => e.seq === seq);
  $('#scrub-state').textContent = env ? JSON.stringify(env.state.value) : '';
  $('#scrub-type').textContent = env ? env.event.type : '';
  $('#scrub-type').className = `ev-type ev-${(env?.event.type ?? '').replace(/\W/g, '_')}`;
  $('#scrub-live').classList.toggle('active', seq === max);
  if (v.steps) paintPath(v.steps, seq);
  for (const tr of document.querySelectorAll('#timeline tbody tr')) {
    const s = Number(tr.dataset.seq);
    tr.classList.toggle('at', s === seq);
    tr.classList.toggle('future', s > seq);
  }
  if (user) revealRow(document.querySelector(`#timeline tr[data-seq="${seq}"]`));
}

// ---------- views ----------
function closeRunStream() {
  ui.runStream?.close();
  ui.runStream = null;
  delete $('#run-view').dataset.live;
}
async function openRun(runId) {
  closeRunStream();
  showError(null);
  let data;
  try {
    data = await api(`/api/runs/${encodeURIComponent(runId)}`);
  } catch (e) {
    $('#run-view').hidden = true;
    $('#placeholder').hidden = false;
    showError(e.message);
    return;
  }
  ui.view = { kind: 'run', data, envelopes: data.envelopes, steps: data.path?.steps ?? null };
  ui.follow = true;
  $('.facts').hidden = false;
  $('#placeholder').hidden = true;
  $('#run-view').hidden = false;
  $('#scrub-bar').hidden = false;
  $('.lower').hidden = false;
  $('#run-warning').hidden = !data.warning;
  $('#run-warning').textContent = data.warning ?? '';
  $('#path-source').textContent =
    data.path?.source === 'machine'
      ? 'exact path: replayed through the loaded pipeline'
      : data.path
        ? 'path inferred from the log'
        : '';
  renderHead();
  closeStep();
  drawChart(chartOf(data));
  renderTimeline();
  renderStepCosts();
  renderRuns();
  const last = data.envelopes[data.envelopes.length - 1]?.seq ?? 1;
  scrubTo(last, false);
  if (!TERMINAL.has(data.run.status)) followRun(runId, last);
}
function followRun(runId, fromSeq) {
  const es = new EventSource(`/api/events?runId=${encodeURIComponent(runId)}&from=${fromSeq}`);
  ui.runStream = es;
  es.onopen = () => ($('#run-view').dataset.live = 'open');
  // EventSource reconnects by itself; the attribute drives the "live" tag in the header.
  es.onerror = () => ($('#run-view').dataset.live = 'reconnecting');
  es.addEventListener('envelope', (m) => {
    const { envelope, step } = JSON.parse(m.data);
    const v = ui.view;
    if (!v || v.kind !== 'run' || v.data.run.runId !== runId) return;
    const lastSeq = v.envelopes[v.envelopes.length - 1]?.seq ?? 0;
    if (envelope.seq <= lastSeq) return; // already shown (a reconnect replays from `from`)
    const wasAtEnd = ui.follow;
    v.envelopes.push(envelope);
    if (v.steps && step) v.steps.push(step);
    $('#timeline tbody').append(timelineRow(envelope, v.envelopes[0]?.at ?? envelope.at));
    renderHead();
    renderStepCosts();
    scrubTo(wasAtEnd ? envelope.seq : ui.scrubSeq, false);
    if (wasAtEnd) revealRow($('#timeline tbody tr:last-child'));
    if (TERMINAL.has(envelope.state.status)) closeRunStream();
  });
}
async function openPipeline(name) {
  closeRunStream();
  showError(null);
  let data;
  try {
    data = await api(`/api/pipelines/${encodeURIComponent(name)}/chart`);
  } catch (e) {
    showError(e.message);
    return;
  }
  ui.view = { kind: 'pipeline', data, envelopes: [], steps: null };
  $('#placeholder').hidden = true;
  $('#run-view').hidden = false;
  const pill = $('#run-status');
  pill.className = 'pill big status-pipeline';
  pill.textContent = 'pipeline';
  $('#run-name').textContent = data.name;
  $('#run-name').append(el('span', { class: 'muted version', text: ` v${data.version}` }));
  $('#run-id').textContent = `machine ${data.hash}`;
  $('.facts').hidden = true;
  $('#run-warning').hidden = true;
  $('#scrub-bar').hidden = true;
  $('.lower').hidden = true;
  $('#path-source').textContent = '';
  $('.key-maybe-wrap').hidden = true;
  closeStep();
  drawChart(chartOf(data));
  $('#chart').setAttribute('class', 'chart');
  renderRuns();
}
function route() {
  const r = routeOf(location.hash);
  if (r.kind === 'run') void openRun(r.runId);
  else if (r.kind === 'pipeline') void openPipeline(r.name);
  else {
    closeRunStream();
    ui.view = null;
    $('#run-view').hidden = true;
    $('#placeholder').hidden = false;
    renderRuns();
    if (r.malformed) showError('the address after # is not valid percent-encoding: pick a run');
  }
}

// ---------- wiring ----------
function tickDurations() {
  for (const d of document.querySelectorAll('#runs .duration[data-started]')) {
    d.textContent = fmtDuration(Math.max(0, Date.now() - Number(d.dataset.started)));
  }
  if (ui.view?.kind === 'run') {
    const last = ui.view.envelopes[ui.view.envelopes.length - 1];
    if (last?.state.status === 'running')
      $('#run-duration').textContent = fmtDuration(
        Math.max(0, Date.now() - ui.view.data.run.startedAt),
      );
  }
}
function init() {
  const params = new URLSearchParams(location.search);
  if (params.get('status')) $('#filter-status').value = params.get('status');
  $('#filter-status').addEventListener('change', () => void loadRuns());
  $('#filter-pipeline').addEventListener('change', () => void loadRuns());
  const scrubber = $('#scrubber');
  scrubber.addEventListener('input', () => scrubTo(Number(scrubber.value), true));
  scrubber.addEventListener('change', () => scrubTo(Number(scrubber.value), true));
  $('#scrub-live').addEventListener('click', () => scrubTo(Number.MAX_SAFE_INTEGER, true));
  $('#zoom-in').addEventListener('click', () => {
    ui.zoom = Math.min(3, (ui.zoom ?? currentZoom()) * 1.25);
    applyZoom();
  });
  $('#zoom-out').addEventListener('click', () => {
    ui.zoom = Math.max(0.15, (ui.zoom ?? currentZoom()) / 1.25);
    applyZoom();
  });
  $('#zoom-fit').addEventListener('click', () => {
    ui.zoom = null;
    applyZoom();
  });
  window.addEventListener('resize', () => applyZoom());
  for (const mode of ['steps', 'states'])
    $(`#view-${mode}`).addEventListener('click', () => setMode(mode));
  initStepView(ui, { showStates: () => setMode('states') });
  $('#copy-run-id').addEventListener('click', () => {
    const id = ui.view?.kind === 'run' ? ui.view.data.run.runId : null;
    if (id) void navigator.clipboard?.writeText(id).then(() => flash($('#copy-run-id')));
  });
  enablePan($('#chart-wrap'));
  window.addEventListener('hashchange', route);
  ui.clockTimer = setInterval(tickDurations, 1000);
  void Promise.all([loadPipelines(), loadRuns()]).then(route);
  listenToAllRuns();
}
/** Switches between the step view and the full statechart (remembered by the browser). */
function setMode(mode) {
  ui.mode = mode;
  localStorage.setItem('plumbline.viz.view', mode);
  ui.zoom = null;
  if (mode === 'states') closeStep();
  if (!ui.view) return;
  drawChart(chartOf(ui.view.data));
  if (ui.view.kind === 'run') scrubTo(ui.scrubSeq, false);
  else $('#chart').setAttribute('class', 'chart');
}
function flash(button) {
  button.classList.add('active');
  setTimeout(() => button.classList.remove('active'), 700);
}
function currentZoom() {
  const root = $('#chart');
  return Number(root.getAttribute('width') || 1) / Number(root.dataset.width || 1);
}

init();
