// The step view: one box per step with its kind, calls and cost at the scrubbed seq; a step
// opened below the chart shows its guard states, the transitions folded into it, and what its
// kind has to say (an agent's turns, a wait's approve form, a map's children).
import { $, api, el, fmtCost, fmtDate, fmtDuration, postJson, svg } from './dom.js';

const FOLDED = ['failed', 'parked', 'killed'];
let ui = null;
let hooks = { showStates: () => {} };
let opened = null; // the opened step's name
let formKey = null; // what the wait form was drawn for (kept while it still applies)
let sent = null; // the last signal sent from the page: { runId, step, ok, text }

/** Gives the module the page's state and the hook that switches to the full chart. */
export function initStepView(state, h) {
  ui = state;
  hooks = h;
  $('#step-detail-close').addEventListener('click', closeStep);
  $('#step-detail-states').addEventListener('click', () => hooks.showStates());
}

const stepsOf = (view) => view?.data?.steps?.steps ?? [];
const byId = (view) => new Map(stepsOf(view).map((s) => [s.id, s]));

/** Adds the second line (and the click) to a drawn step box; regions open their step. */
export function stepNodeExtras(g, n, view) {
  const steps = byId(view);
  const info = steps.get(n.id);
  const owner = info ?? (n.depth === 2 ? steps.get(n.parent) : undefined);
  if (owner === undefined) return;
  g.classList.add(info ? 'step' : 'region', `kind-${owner.kind}`);
  g.dataset.step = owner.name;
  g.addEventListener('click', () => openStep(owner.name));
  if (!info || n.compound) return;
  const label = g.querySelector('.label');
  label.setAttribute('y', String(n.y + 22));
  const sub = svg('text', {
    x: n.x + n.width / 2,
    y: n.y + 40,
    class: 'sub',
    'text-anchor': 'middle',
    'data-sub-for': n.id,
  });
  sub.textContent = owner.kind;
  g.append(sub);
}

/** What the log says of each step up to `seq`. */
function stepFacts(envelopes, seq) {
  const facts = new Map();
  const of = (name) => {
    if (!facts.has(name))
      facts.set(name, { calls: 0, cost: 0, turns: 0, tools: 0, branches: new Map(), events: [] });
    return facts.get(name);
  };
  for (const env of envelopes) {
    if (env.seq > seq) break;
    const ev = env.event;
    if (!ev.step) continue;
    const f = of(ev.step);
    f.events.push(env);
    switch (ev.type) {
      case 'MODEL_RESPONSE':
      case 'MODEL_ERROR':
        f.calls += 1;
        f.cost += ev.costUsd ?? 0;
        break;
      case 'AGENT_TURN':
        f.calls += 1;
        f.turns += 1;
        f.cost += ev.costUsd ?? 0;
        break;
      case 'TOOL_RESULT':
        f.tools += 1;
        break;
      case 'SKIP':
        f.skipped = ev.reason;
        break;
      case 'ROUTE':
        f.branch = ev.branch;
        break;
      case 'BRANCH_DONE':
        f.branches.set(ev.branch, ev.ok);
        f.cost += ev.costUsd ?? 0;
        break;
      case 'CHILDREN_STARTED':
        f.children = ev.count;
        break;
      case 'CHILDREN_DONE':
        f.cost += ev.costUsd ?? 0;
        f.childErrors = ev.errors?.length ?? 0;
        break;
      case 'WAIT_STARTED':
      case 'SLEEP_STARTED':
        f.wait = ev;
        break;
      case 'SIGNAL':
        f.signal = ev;
        break;
      case 'WAIT_TIMEOUT':
        f.timedOut = true;
        break;
      default:
    }
  }
  return facts;
}

function countsText(c) {
  if (!c) return null;
  const b = c.byStatus ?? {};
  const done = b.completed ?? 0;
  const running = (b.running ?? 0) + (b.waiting ?? 0);
  const failed = (b.failed ?? 0) + (b.killed ?? 0);
  const parts = [`${done} done`, `${running} running`, `${failed} failed`];
  if (b.parked) parts.push(`${b.parked} parked`);
  return `${parts.join(' · ')}${c.truncated ? ' (first 20,000)' : ''}`;
}

function subText(info, f, view) {
  const kids = view.data.children?.[info.name];
  if (f?.skipped) return `${info.kind} · skipped`;
  switch (info.kind) {
    case 'llm':
      return f?.calls
        ? `llm · ${f.calls} call${f.calls > 1 ? 's' : ''} · ${fmtCost(f.cost)}`
        : 'llm';
    case 'agent':
      return f?.turns
        ? `agent · ${f.turns} turns · ${f.tools} tools · ${fmtCost(f.cost)}`
        : 'agent';
    case 'route':
      return f?.branch ? `route → ${f.branch}` : 'route';
    case 'map':
      return kids?.total ? countsText(kids) : 'map';
    case 'call':
      return kids?.total
        ? `call · ${
            countsText(kids)
              .split(' · ')
              .find((p) => !p.startsWith('0')) ?? ''
          }`
        : 'call';
    case 'parallel':
      return `parallel · ${info.regions.length} branches${f?.cost ? ` · ${fmtCost(f.cost)}` : ''}`;
    case 'wait':
      if (f?.signal) return `wait · ${f.signal.signal} from ${f.signal.by ?? 'someone'}`;
      if (f?.timedOut) return 'wait · timed out';
      return f?.wait ? `wait · for '${f.wait.signal}'` : 'wait';
    case 'sleep':
      return f?.wait ? `sleep · until ${fmtDate(f.wait.until).slice(11)}` : 'sleep';
    default:
      return info.kind;
  }
}

/** Paints the step view at `seq` (the path classes are set by the caller). */
export function paintSteps(view, seq) {
  const facts = stepFacts(view.envelopes ?? [], seq);
  const env = [...(view.envelopes ?? [])].reverse().find((e) => e.seq <= seq);
  const status = env?.state.status;
  const ended = status && status !== 'running' && status !== 'completed' ? env.state.step : null;
  for (const info of stepsOf(view)) {
    const g = document.querySelector(`[data-node-id="${CSS.escape(info.id)}"]`);
    if (!g) continue;
    const f = facts.get(info.name);
    const sub = g.querySelector(':scope > .sub');
    if (sub) sub.textContent = subText(info, f, view);
    g.classList.toggle('skipped', Boolean(f?.skipped));
    for (const s of ['failed', 'parked', 'killed', 'waiting'])
      g.classList.toggle(`ended-${s}`, ended === info.name && status === s);
    for (const r of info.regions) {
      const rg = document.querySelector(
        `[data-node-id="${CSS.escape(`${info.id}.branches.${r}`)}"]`,
      );
      rg?.classList.toggle('branch-failed', f?.branches.get(r) === false);
      rg?.classList.toggle('branch-done', f?.branches.get(r) === true);
    }
    g.classList.toggle('opened', opened === info.name);
  }
  renderStepDetail(view, seq, facts);
}

/** Opens a step's detail below the chart. */
export function openStep(name) {
  opened = name;
  formKey = null;
  for (const g of document.querySelectorAll('#chart .step'))
    g.classList.toggle('opened', g.dataset.step === name);
  if (ui?.view) renderStepDetail(ui.view, ui.scrubSeq || Number.MAX_SAFE_INTEGER);
}

/** Closes the step detail. */
export function closeStep() {
  opened = null;
  formKey = null;
  $('#step-detail').hidden = true;
  for (const g of document.querySelectorAll('#chart .step.opened')) g.classList.remove('opened');
}

function section(title, ...kids) {
  return el('section', { class: 'sd-section' }, el('h4', { text: title }), ...kids);
}

/** The step's sub-states with their visits at `seq`, and the folded transitions out of it. */
function guardSection(view, info, seq) {
  const graph = view.data.graph;
  if (!graph) return null;
  const visited = new Map();
  const taken = new Map();
  let current = [];
  for (const s of view.steps ?? []) {
    if (!s || s.seq > seq) break;
    for (const id of s.entered) visited.set(id, (visited.get(id) ?? 0) + 1);
    for (const id of s.taken) taken.set(id, (taken.get(id) ?? 0) + 1);
    current = s.current;
  }
  const cur = new Set(current);
  const inside = (id) => id.startsWith(`${info.id}.`);
  const states = graph.nodes.filter((n) => inside(n.id));
  const depth = (id) => id.slice(info.id.length + 1).split('.').length - 1;
  const list = el(
    'ol',
    { class: 'guard-states' },
    ...states.map((n) => {
      const count = visited.get(n.id) ?? 0;
      return el(
        'li',
        {
          'data-guard-state': n.id,
          class: `${count ? 'visited' : ''} ${cur.has(n.id) ? 'current' : ''} depth-${depth(n.id)}`,
          title: `${n.id} (${n.type})`,
        },
        el('span', { text: n.key }),
        count ? el('span', { class: 'count', text: `×${count}` }) : null,
      );
    }),
  );
  const root = graph.nodes.find((n) => n.parent === null)?.id ?? 'run';
  const folded = graph.edges.filter(
    (e) =>
      (inside(e.source) || e.source === info.id) &&
      e.targets.some((t) => FOLDED.some((k) => t === `${root}.${k}`)),
  );
  const resumes = graph.edges.filter((e) => e.event === 'RESUME' && e.targets.includes(info.id));
  const edgeLi = (e) => {
    const n = taken.get(e.id) ?? 0;
    const from = inside(e.source) ? e.source.slice(info.id.length + 1) : e.source.split('.').pop();
    const to = e.targets.map((t) => t.split('.').pop()).join(', ');
    const guard = e.guard ? ` [${e.guard.replace(/\(.*\)$/s, '')}]` : '';
    return el(
      'li',
      { 'data-folded-edge': e.id, class: n ? 'taken' : '' },
      el('span', { text: `${from} → ${to}` }),
      el('span', { class: 'muted', text: ` ${e.event === 'always' ? '' : e.event}${guard}` }),
      n ? el('span', { class: 'count', text: ` ×${n}` }) : null,
    );
  };
  return section(
    'Guard states',
    list,
    folded.length + resumes.length > 0
      ? el('ul', { class: 'folded' }, ...folded.map(edgeLi), ...resumes.map(edgeLi))
      : null,
  );
}

function json(v) {
  return el('pre', { class: 'json', text: JSON.stringify(v, null, 2) ?? 'undefined' });
}

/** An agent's turns: each answer, and each tool call with its input and result. */
function agentSection(f) {
  const results = new Map();
  for (const env of f?.events ?? [])
    if (env.event.type === 'TOOL_RESULT') results.set(env.event.toolUseId, env.event);
  const rows = [];
  for (const env of f?.events ?? []) {
    const t = env.event;
    if (t.type !== 'AGENT_TURN') continue;
    rows.push(
      el(
        'tr',
        { class: 'turn', 'data-turn': t.turn },
        el('td', { text: `turn ${t.turn}` }),
        el('td', { text: t.verdict }),
        el('td', {
          class: 'num',
          text: `${t.usage?.inputTokens ?? 0} in / ${t.usage?.outputTokens ?? 0} out`,
        }),
        el('td', { class: 'num', text: fmtCost(t.costUsd) }),
        el(
          'td',
          {},
          ...(t.content ?? [])
            .filter((b) => b.type === 'text')
            .map((b) => el('div', { class: 'turn-text', text: b.text })),
          t.output !== undefined ? json(t.output) : null,
        ),
      ),
    );
    for (const b of (t.content ?? []).filter((x) => x.type === 'tool_use')) {
      const r = results.get(b.id);
      rows.push(
        el(
          'tr',
          { class: 'tool-call', 'data-tool-use': b.id },
          el('td', { class: 'muted', text: '↳ tool' }),
          el(
            'td',
            {},
            el('strong', { text: b.name }),
            r?.effect ? el('span', { class: 'muted', text: ' effect' }) : null,
          ),
          el('td', {}, json(b.input)),
          el('td', { class: 'num', text: r ? fmtDuration(r.durationMs) : '…' }),
          el(
            'td',
            { class: r && !r.ok ? 'err' : '' },
            r === undefined
              ? el('span', { class: 'muted', text: 'no result yet' })
              : r.ok
                ? json(r.result)
                : el('span', { text: r.error ?? 'failed' }),
            r?.replayed ? el('span', { class: 'muted', text: ' (from the ledger)' }) : null,
          ),
        ),
      );
    }
  }
  return section(
    'Turns',
    rows.length
      ? el('table', { class: 'turns' }, el('tbody', {}, ...rows))
      : el('p', { class: 'muted', text: 'No turn yet.' }),
  );
}

function fieldInput(name, prop, required) {
  const id = `sig-${name}`;
  let input;
  if (prop?.type === 'boolean') input = el('input', { type: 'checkbox', id, name });
  else if (prop?.type === 'number' || prop?.type === 'integer')
    input = el('input', { type: 'number', id, name, step: prop.type === 'integer' ? 1 : 'any' });
  else if (Array.isArray(prop?.enum))
    input = el(
      'select',
      { id, name },
      ...prop.enum.map((v) => el('option', { value: v, text: String(v) })),
    );
  else if (prop?.type === 'string') input = el('input', { type: 'text', id, name });
  else input = el('textarea', { id, name, rows: 2, placeholder: 'JSON', 'data-json': true });
  input.dataset.kind = prop?.type ?? 'json';
  return el(
    'label',
    { class: 'field' },
    el('span', { text: `${name}${required ? '' : ' (optional)'}` }),
    input,
  );
}

function readForm(form, schema) {
  if (!schema?.properties)
    return JSON.parse(form.querySelector('[name="__payload"]').value || '{}');
  const out = {};
  const required = new Set(schema.required ?? []);
  for (const [name] of Object.entries(schema.properties)) {
    const input = form.querySelector(`[name="${CSS.escape(name)}"]`);
    if (!input) continue;
    const kind = input.dataset.kind;
    if (kind === 'boolean') out[name] = input.checked;
    else if (input.value === '' && !required.has(name)) continue;
    else if (kind === 'number' || kind === 'integer') out[name] = Number(input.value);
    else if (kind === 'json') out[name] = JSON.parse(input.value);
    else out[name] = input.value;
  }
  return out;
}

/** What a wait step waits for, and (while the run waits there) the form that sends it. */
function waitSection(view, info, f) {
  const form = view.data.waits?.[info.name];
  const lines = [];
  if (f?.wait)
    lines.push(
      el('p', {
        text: `Waits for signal '${f.wait.signal ?? form?.signal}' since ${fmtDate(f.wait.at)}${f.wait.until ? `, until ${fmtDate(f.wait.until)}` : ''}.`,
      }),
    );
  else if (form) lines.push(el('p', { text: `Takes signal '${form.signal}'.` }));
  if (f?.signal)
    lines.push(
      el('p', {
        text: `Signal '${f.signal.signal}' sent by ${f.signal.by ?? 'someone'} at ${fmtDate(f.signal.at)}:`,
      }),
      json(f.signal.payload),
    );
  if (f?.timedOut)
    lines.push(el('p', { class: 'err', text: 'The timeout passed before the signal.' }));
  if (sent && sent.runId === view.data.run?.runId && sent.step === info.name)
    lines.push(
      el('div', {
        class: `sd-result ${sent.ok ? 'ok' : 'err'}`,
        'data-result': sent.ok ? 'ok' : 'error',
        text: sent.text,
      }),
    );
  return section(info.kind === 'sleep' ? 'Sleep' : 'Wait', ...lines);
}

function approveForm(view, info) {
  const form = view.data.waits?.[info.name];
  const runId = view.data.run.runId;
  if (!form)
    return el('p', {
      class: 'muted',
      text: 'Start the viz with --pipelines <file> to send this signal here (its schema comes from the pipeline), or use `plumbline signal`.',
    });
  const schema = form.schema;
  const props = schema?.properties ?? null;
  const required = new Set(schema?.required ?? []);
  const result = el('div', { class: 'sd-result', 'aria-live': 'polite' });
  const done = (ok, text) => {
    sent = { runId, step: info.name, ok, text };
    result.textContent = '';
    if (ui?.view) renderStepDetail(ui.view, ui.scrubSeq || Number.MAX_SAFE_INTEGER);
  };
  const f = el(
    'form',
    { class: 'approve-form', 'data-signal': form.signal },
    ...(props
      ? Object.entries(props).map(([name, prop]) => fieldInput(name, prop, required.has(name)))
      : [
          el(
            'label',
            { class: 'field' },
            el('span', { text: 'payload (JSON)' }),
            el('textarea', { name: '__payload', rows: 3, text: '{}' }),
          ),
        ]),
    el(
      'label',
      { class: 'field' },
      el('span', { text: 'sent by (recorded in the log)' }),
      el('input', { type: 'text', name: '__by' }),
    ),
    el('button', { type: 'submit', class: 'primary', text: `Send '${form.signal}'` }),
    result,
  );
  f.addEventListener('submit', async (e) => {
    e.preventDefault();
    result.className = 'sd-result';
    result.textContent = 'sending…';
    try {
      const payload = readForm(f, schema);
      const by = f.querySelector('[name="__by"]').value;
      const out = await postJson(
        `/api/runs/${encodeURIComponent(runId)}/signals/${encodeURIComponent(form.signal)}`,
        { payload, ...(by ? { by } : {}) },
      );
      done(true, out.note);
    } catch (err) {
      done(false, err.message);
    }
  });
  return section(`Send '${form.signal}'`, f);
}

/** A map, call or parallel step's child runs (listed from the store). */
function childrenSection(view, info) {
  const runId = view.data.run.runId;
  const counts = view.data.children?.[info.name];
  const list = el(
    'div',
    { class: 'children-list' },
    el('span', { class: 'muted', text: 'loading…' }),
  );
  void api(
    `/api/runs/${encodeURIComponent(runId)}/children?step=${encodeURIComponent(info.name)}&limit=500`,
  )
    .then(({ children, truncated }) => {
      list.replaceChildren(
        children.length === 0
          ? el('p', { class: 'muted', text: 'No child run yet.' })
          : el(
              'table',
              { class: 'children' },
              el(
                'tbody',
                {},
                ...children.map((c) =>
                  el(
                    'tr',
                    { 'data-child': c.runId },
                    el('td', { class: 'num', text: c.part ?? '' }),
                    el('td', {}, el('span', { class: `pill status-${c.status}`, text: c.status })),
                    el(
                      'td',
                      {},
                      el('a', {
                        href: `#/runs/${encodeURIComponent(c.runId)}`,
                        class: 'mono',
                        text: c.runId,
                      }),
                    ),
                    el('td', { class: 'num', text: fmtCost(c.costUsd) }),
                  ),
                ),
              ),
            ),
        truncated ? el('p', { class: 'muted', text: 'First 500 shown.' }) : null,
      );
    })
    .catch((e) => list.replaceChildren(el('p', { class: 'err', text: e.message })));
  return section(
    'Child runs',
    counts
      ? el('p', { class: 'child-counts', text: `${counts.total} children: ${countsText(counts)}` })
      : null,
    list,
  );
}

/** (Re)draws the opened step's detail at `seq`; the approve form is kept while it applies. */
export function renderStepDetail(view, seq, facts = stepFacts(view.envelopes ?? [], seq)) {
  const box = $('#step-detail');
  const info = stepsOf(view).find((s) => s.name === opened);
  if (!info) {
    box.hidden = true;
    return;
  }
  box.hidden = false;
  box.dataset.step = info.name;
  const f = facts.get(info.name);
  $('#step-detail-title').textContent = info.name;
  $('#step-detail-kind').textContent = info.kind;
  $('#step-detail-facts').textContent = [
    f?.calls ? `${f.calls} model call${f.calls > 1 ? 's' : ''}` : null,
    f?.cost ? fmtCost(f.cost) : null,
    f?.skipped ? `skipped: ${f.skipped}` : null,
  ]
    .filter(Boolean)
    .join(' · ');
  const body = $('#step-detail-body');
  const parts = [guardSection(view, info, seq)];
  if (info.kind === 'agent') parts.push(agentSection(f));
  if (info.kind === 'wait' || info.kind === 'sleep') parts.push(waitSection(view, info, f));
  const stable = body.querySelector(':scope > .sd-stable');
  const last = view.envelopes?.[view.envelopes.length - 1];
  const waitingHere =
    info.kind === 'wait' &&
    last?.state.status === 'waiting' &&
    last?.state.step === info.name &&
    !f?.signal;
  const key = `${view.data.run?.runId}:${info.name}:${waitingHere}:${['map', 'call', 'parallel'].includes(info.kind)}`;
  let keep = stable && formKey === key ? stable : null;
  if (!keep) {
    keep = el('div', { class: 'sd-stable' });
    if (waitingHere && view.data.run) keep.append(approveForm(view, info));
    if (['map', 'call', 'parallel'].includes(info.kind) && view.data.run)
      keep.append(childrenSection(view, info));
    formKey = key;
  }
  body.replaceChildren(...parts.filter(Boolean), keep);
}
