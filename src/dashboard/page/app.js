// bgrun's dashboard page: the job list follows /api/v1/events (Server-Sent Events, no polling);
// actions go through /api/v1 and are answered once applied. Text from jobs is only ever set as
// text (never as HTML).
'use strict';

const MAX_LOG_LINES = 5000;
const $ = (id) => document.getElementById(id);

/** An element: h('td', {class: 'num', dataset: {cell: 'pid'}}, 'text', child…). */
function h(tag, attrs, ...children) {
  const svg = ['svg', 'g', 'rect', 'text', 'path', 'line', 'marker', 'defs', 'title'].includes(tag);
  const el = svg ? document.createElementNS('http://www.w3.org/2000/svg', tag) : document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
    else if (key === 'class' && !svg) el.className = value;
    else el.setAttribute(key, value === true ? '' : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

const state = { jobs: [], stats: {}, files: {}, collapsed: new Set(), shape: '', drawer: null };

async function api(method, path, body) {
  const init = { method, headers: {} };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const answer = await fetch('/api/v1' + path, init);
  const text = await answer.text();
  let data = text;
  try { data = JSON.parse(text); } catch (_) { /* not JSON: keep the text */ }
  if (!answer.ok) {
    const error = new Error((data && data.error) || answer.statusText);
    error.hint = data && data.hint;
    throw error;
  }
  return data;
}

function notify(message, isError) {
  const box = $('notice');
  box.textContent = message;
  box.classList.toggle('error', !!isError);
  box.hidden = false;
  clearTimeout(notify.timer);
  if (!isError) notify.timer = setTimeout(() => { box.hidden = true; }, 6000);
}

/** Runs an action, says how it went, and never leaves an error unseen. */
async function act(what, fn) {
  try {
    const result = await fn();
    if (what) notify(what);
    return result;
  } catch (e) {
    notify(`${e.message}${e.hint ? '\n' + e.hint : ''}`, true);
    return undefined;
  }
}

// ---- the job list ----------------------------------------------------------------------------

const enc = encodeURIComponent;
const jobName = (job) => job.name || job.id.slice(0, 8);
const alive = (job) => ['starting', 'running', 'ready'].includes(job.state);

function duration(secs) {
  if (secs === undefined || secs === null) return '';
  if (secs < 60) return `${secs}s`;
  if (secs < 3600) return `${Math.floor(secs / 60)}m${secs % 60 ? ` ${secs % 60}s` : ''}`;
  if (secs < 86400) return `${Math.floor(secs / 3600)}h ${Math.floor((secs % 3600) / 60)}m`;
  return `${Math.floor(secs / 86400)}d ${Math.floor((secs % 86400) / 3600)}h`;
}

function uptime(job) {
  const stats = state.stats[job.id];
  if (stats) return stats.uptime_secs;
  if (!alive(job) || !job.started_at) return null;
  return Math.max(0, Math.floor((Date.now() - Date.parse(job.started_at)) / 1000));
}

/** Jobs by project, or by working directory for plain `run` jobs, in a stable order. */
function groups() {
  const by = new Map();
  for (const job of state.jobs) {
    const key = job.project ? `project:${job.project}` : `dir:${job.cwd}`;
    if (!by.has(key)) by.set(key, { key, project: job.project, title: job.project || job.cwd, jobs: [] });
    by.get(key).jobs.push(job);
  }
  const list = [...by.values()].sort((a, b) => (!!b.project - !!a.project) || a.title.localeCompare(b.title));
  for (const g of list) g.jobs.sort((a, b) => jobName(a).localeCompare(jobName(b)));
  return list;
}

const COLUMNS = ['job', 'state', 'reason', 'pid', 'ports', 'cpu', 'memory', 'uptime', 'restarts', ''];

function row(job) {
  const cell = (name, cls) => h('td', { class: cls, dataset: { cell: name, label: name } });
  const tr = h('tr', { dataset: { job: jobName(job), id: job.id } },
    h('td', { class: 'name', dataset: { label: 'job' } }, jobName(job)),
    cell('state'), cell('reason', 'reason'), cell('pid', 'num'), cell('ports'), cell('cpu', 'num'),
    cell('memory', 'num'), cell('uptime', 'num'), cell('restarts', 'num'), h('td', { class: 'actions' }));
  fill(tr, job);
  return tr;
}

function set(tr, name, content) {
  const td = tr.querySelector(`[data-cell="${name}"]`);
  if (typeof content === 'string' || typeof content === 'number') {
    if (td.textContent !== String(content)) td.textContent = content;
  } else {
    td.replaceChildren(...content);
  }
}

/** Puts a job's current values in its row (the row is kept, so focus and scroll stay put). */
function fill(tr, job) {
  const stats = state.stats[job.id];
  tr.dataset.state = job.state;
  if (tr.querySelector('.state')?.textContent !== job.state) {
    set(tr, 'state', [h('span', { class: 'state', dataset: { state: job.state } }, job.state)]);
  }
  set(tr, 'reason', job.reason || '');
  set(tr, 'pid', job.pid ?? '');
  const ports = (job.ports || []).join(',');
  if (tr.dataset.ports !== ports) {
    tr.dataset.ports = ports;
    const host = location.hostname.includes(':') ? `[${location.hostname}]` : location.hostname;
    set(tr, 'ports', (job.ports || []).map((p) => h('a', { href: `http://${host}:${p}/`, target: '_blank', rel: 'noopener' }, p, ' ')));
  }
  set(tr, 'cpu', stats ? `${stats.cpu_pct.toFixed(1)}%` : '');
  set(tr, 'memory', stats ? `${stats.rss_mb} MB` : '');
  set(tr, 'uptime', duration(uptime(job)));
  set(tr, 'restarts', job.restart_count);
  const live = alive(job) ? 'live' : 'ended';
  const actions = tr.querySelector('.actions');
  if (actions.dataset.kind !== live) {
    actions.dataset.kind = live;
    const id = job.id;
    const name = jobName(job);
    actions.replaceChildren(
      h('button', { type: 'button', dataset: { action: 'logs' }, onclick: () => openJob(id, 'logs') }, 'Logs'),
      h('button', { type: 'button', dataset: { action: 'details' }, onclick: () => openJob(id, 'details') }, 'Details'),
      live === 'live'
        ? h('button', { type: 'button', dataset: { action: 'restart' }, onclick: () => act(`${name} restarted`, () => api('POST', `/jobs/${id}/restart`)) }, 'Restart')
        : h('button', { type: 'button', dataset: { action: 'start' }, onclick: () => act(`${name} started`, () => api('POST', `/jobs/${id}/restart`)) }, 'Start'),
      live === 'live'
        ? h('button', { type: 'button', class: 'danger', dataset: { action: 'stop' }, onclick: () => act(`${name} stopped`, () => api('POST', `/jobs/${id}/kill`)) }, 'Stop')
        : null,
      h('button', {
        type: 'button', class: 'danger', dataset: { action: 'delete' },
        onclick: () => confirm(`Stop and forget ${name}, its logs too?`) && act(`${name} deleted`, () => api('DELETE', `/jobs/${id}`)),
      }, 'Delete'));
  }
}

function projectTools(group) {
  const name = group.project;
  const file = h('input', { class: 'file', 'aria-label': `bgrun.toml of ${name}`, placeholder: '/path/to/bgrun.toml', value: state.files[name] || '' });
  const out = () => document.querySelector(`[data-group="${CSS.escape(group.key)}"] .project-out`);
  const body = () => ({ file: file.value.trim() });
  const plan = async () => {
    const result = await act(null, () => api('POST', '/projects/plan', body()));
    if (!result) return;
    const changes = result.changes.map((c) => h('li', {}, h('b', {}, c.job), ` ${c.action}`, c.fields.length ? ` (${c.fields.join(', ')})` : ''));
    out().replaceChildren(h('div', {}, `Plan for ${result.project}:`), h('ul', { class: 'changes' }, changes),
      h('button', { type: 'button', onclick: up }, 'Apply (up)'), ' ',
      h('button', { type: 'button', onclick: () => out().replaceChildren() }, 'Dismiss'));
  };
  const up = async () => {
    out().replaceChildren('Converging…');
    const result = await act(null, () => api('POST', '/projects/up', body()));
    if (!result) return out().replaceChildren();
    notify(`${result.project}: ${result.ok ? 'up' : 'some jobs failed'} in ${result.elapsed_ms} ms`, !result.ok);
    out().replaceChildren(h('ul', { class: 'changes' }, result.jobs.map((j) => h('li', {}, h('b', {}, j.job), ` ${j.action}: ${j.state}${j.ok ? '' : ' — ' + j.reason}`))));
  };
  const down = () => confirm(`Stop every job of ${name}?`) &&
    act(`${name} is down`, () => api('POST', '/projects/down', body()));
  return [file,
    h('button', { type: 'button', dataset: { action: 'plan' }, onclick: plan }, 'Plan'),
    h('button', { type: 'button', dataset: { action: 'up' }, onclick: up }, 'Up'),
    h('button', { type: 'button', class: 'danger', dataset: { action: 'down' }, onclick: down }, 'Down'),
    h('button', { type: 'button', dataset: { action: 'graph' }, onclick: () => openGraph(name) }, 'Graph')];
}

function groupElement(group) {
  const collapsed = state.collapsed.has(group.key);
  const toggle = h('button', {
    type: 'button', class: 'toggle', 'aria-expanded': String(!collapsed),
    onclick: () => {
      const el = toggle.closest('.group');
      const now = !state.collapsed.has(group.key);
      if (now) state.collapsed.add(group.key); else state.collapsed.delete(group.key);
      el.toggleAttribute('data-collapsed', now);
      toggle.setAttribute('aria-expanded', String(!now));
    },
  }, group.title);
  const head = h('div', { class: 'group-head' }, toggle, h('span', { class: 'count' }, `${group.jobs.length} job${group.jobs.length === 1 ? '' : 's'}`),
    group.project ? h('div', { class: 'tools' }, projectTools(group)) : null);
  const table = h('table', { class: 'jobs' },
    h('thead', {}, h('tr', {}, COLUMNS.map((c) => h('th', { scope: 'col' }, c)))),
    h('tbody', {}, group.jobs.map(row)));
  return h('section', { class: 'group', dataset: { group: group.key, project: group.project || undefined }, 'data-collapsed': collapsed }, head, h('div', { class: 'project-out' }), table);
}

function render() {
  const list = groups();
  const shape = list.map((g) => g.key + ':' + g.jobs.map((j) => j.id).join(',')).join('|');
  if (shape !== state.shape) {
    state.shape = shape;
    $('groups').replaceChildren(...list.map(groupElement));
  } else {
    const byId = new Map(state.jobs.map((j) => [j.id, j]));
    for (const tr of $('groups').querySelectorAll('tr[data-id]')) fill(tr, byId.get(tr.dataset.id));
  }
  const running = state.jobs.filter(alive).length;
  $('summary').textContent = `${state.jobs.length} jobs, ${running} running`;
  if (!list.length) $('groups').replaceChildren(h('p', {}, 'No jobs yet: run one above, or `bgrun up` a project.'));
}

async function loadFiles() {
  const projects = await api('GET', '/projects').catch(() => []);
  let changed = false;
  for (const p of projects) {
    if (p.file && state.files[p.name] !== p.file) { state.files[p.name] = p.file; changed = true; }
  }
  if (changed) { state.shape = ''; render(); }
}

function connect() {
  const link = $('link');
  const events = new EventSource('/api/v1/events');
  events.addEventListener('open', () => { link.dataset.link = 'live'; link.textContent = 'live'; });
  events.addEventListener('error', () => { link.dataset.link = 'lost'; link.textContent = 'reconnecting…'; });
  events.addEventListener('jobs', (e) => {
    const before = new Set(state.jobs.map((j) => j.project).filter(Boolean));
    state.jobs = JSON.parse(e.data);
    render();
    if (state.jobs.some((j) => j.project && !before.has(j.project))) loadFiles();
    if (state.drawer && state.drawer.kind === 'graph') refreshGraph();
  });
  events.addEventListener('stats', (e) => { state.stats = JSON.parse(e.data); render(); });
}

// ---- the drawer: logs, details, graph -----------------------------------------------------------

function closeDrawer() {
  if (state.drawer && state.drawer.source) state.drawer.source.close();
  const opener = state.drawer && state.drawer.opener;
  state.drawer = null;
  $('drawer').hidden = true;
  $('drawer-body').replaceChildren();
  if (opener && opener.isConnected) opener.focus();
}

function openDrawer(kind, title) {
  closeDrawer();
  state.drawer = { kind, opener: document.activeElement };
  $('drawer-title').textContent = title;
  $('drawer').hidden = false;
  $('drawer-close').focus();
  return $('drawer-body');
}

function openJob(id, view) {
  const job = state.jobs.find((j) => j.id === id);
  const body = openDrawer('job', job ? jobName(job) : id);
  const tabs = ['logs', 'details'].map((v) => h('button', {
    type: 'button', role: 'tab', 'aria-selected': String(v === view), dataset: { view: v }, onclick: () => openJob(id, v),
  }, v === 'logs' ? 'Logs' : 'Events and spec'));
  body.append(h('div', { class: 'tabs', role: 'tablist' }, tabs));
  if (view === 'logs') showLogs(body, id, 'all'); else showDetails(body, id);
}

async function showDetails(body, id) {
  const status = await act(null, () => api('GET', `/jobs/${enc(id)}`));
  if (!status || !state.drawer) return;
  body.append(
    h('h3', {}, 'Events'),
    h('ol', { class: 'events' }, [...status.events].reverse().map((e) => h('li', {}, h('time', {}, e.at), h('b', {}, e.kind), ' ', e.detail))),
    h('h3', {}, 'Spec'),
    h('pre', { class: 'spec' }, JSON.stringify(status.spec, null, 2)));
}

/** ANSI SGR colours and bold as spans; every other escape sequence dropped. */
function ansi(text) {
  const out = [];
  let fg = null;
  let bold = false;
  const clean = text.replace(/\x1b\[[0-9;?]*[A-La-ln-zA-Z]|\x1b\][^\x07]*\x07|\x1b[()][0-9A-Za-z]|[\x00-\x08\x0b-\x1a\x1c-\x1f\x7f]/g, '');
  const parts = clean.split(/\x1b\[([0-9;]*)m/);
  parts.forEach((part, i) => {
    if (i % 2 === 1) {
      for (const code of (part || '0').split(';').map(Number)) {
        if (code === 0) { fg = null; bold = false; } else if (code === 1) bold = true;
        else if (code === 22) bold = false;
        else if (code === 39) fg = null;
        else if ((code >= 30 && code <= 37) || (code >= 90 && code <= 97)) fg = code;
      }
    } else if (part) {
      const cls = [fg ? `fg-${fg}` : '', bold ? 'b' : ''].filter(Boolean).join(' ');
      out.push(cls ? h('span', { class: cls }, part) : document.createTextNode(part));
    }
  });
  return out;
}

function showLogs(body, id, stream) {
  const filter = h('input', { type: 'search', placeholder: 'filter', 'aria-label': 'Filter lines' });
  const streams = ['all', 'stdout', 'stderr'].map((s) => h('button', {
    type: 'button', 'aria-selected': String(s === stream), dataset: { stream: s },
    onclick: () => { body.replaceChildren(body.firstChild); showLogs(body, id, s); },
  }, s));
  const log = h('pre', { class: 'log', tabindex: '0', 'aria-label': 'Log', 'aria-live': 'off' });
  const resume = h('button', { type: 'button', class: 'paused', hidden: true, onclick: () => { log.scrollTop = log.scrollHeight; } }, 'Paused: jump to the newest lines');
  body.append(h('div', { class: 'tabs' }, streams, filter), log, resume);
  let follow = true;
  log.addEventListener('scroll', () => {
    follow = log.scrollHeight - log.scrollTop - log.clientHeight < 24;
    resume.hidden = follow;
  });
  const matches = (line) => !filter.value || line.dataset.text.toLowerCase().includes(filter.value.toLowerCase());
  filter.addEventListener('input', () => { for (const line of log.children) line.hidden = !matches(line); });
  if (state.drawer.source) state.drawer.source.close();
  const query = stream === 'all' ? '' : `&stream=${stream}`;
  const source = new EventSource(`/api/v1/jobs/${enc(id)}/logs/follow?lines=200${query}`);
  state.drawer.source = source;
  source.addEventListener('lines', (e) => {
    const lines = JSON.parse(e.data);
    const fragment = document.createDocumentFragment();
    for (const l of lines) {
      const div = h('div', { class: l.stream === 'stderr' ? 'err' : undefined, dataset: { line: l.line_number, text: l.content } }, ansi(l.content));
      div.hidden = !matches(div);
      fragment.append(div);
    }
    log.append(fragment);
    while (log.childElementCount > MAX_LOG_LINES) log.firstElementChild.remove();
    if (follow) log.scrollTop = log.scrollHeight;
  });
  source.addEventListener('end', (e) => {
    log.append(h('div', { class: 'b' }, `— the job is finished (${JSON.parse(e.data).state}) —`));
    source.close();
  });
  source.addEventListener('error', () => {
    if (source.readyState === EventSource.CLOSED) log.append(h('div', { class: 'b' }, '— the log stream closed —'));
  });
}

function openGraph(project) {
  const body = openDrawer('graph', `${project}: dependencies`);
  state.drawer.project = project;
  body.append(h('div', { class: 'graph-box' }));
  refreshGraph();
}

async function refreshGraph() {
  const drawer = state.drawer;
  const graph = await api('GET', `/projects/${enc(drawer.project)}/graph`).catch((e) => { notify(e.message, true); });
  if (!graph || state.drawer !== drawer) return;
  document.querySelector('.graph-box').replaceChildren(graphSvg(graph));
}

/** Layers by depth along `after` (a job right of what it starts after), edges labelled. */
function graphSvg(graph) {
  const named = (name) => graph.nodes.filter((n) => n.job === name || n.job.startsWith(name + '.'));
  const deps = new Map(graph.nodes.map((n) => [n.job, []]));
  for (const e of graph.edges) for (const n of named(e.to)) deps.get(n.job).push(...named(e.from).map((f) => f.job));
  const depth = new Map();
  const depthOf = (job, seen = new Set()) => {
    if (depth.has(job)) return depth.get(job);
    if (seen.has(job)) return 0;
    seen.add(job);
    const d = Math.max(-1, ...deps.get(job).map((p) => depthOf(p, seen))) + 1;
    depth.set(job, d);
    return d;
  };
  const columns = [];
  for (const n of [...graph.nodes].sort((a, b) => a.job.localeCompare(b.job))) {
    const d = depthOf(n.job);
    (columns[d] = columns[d] || []).push(n);
  }
  const W = 150, H = 44, GX = 70, GY = 24, PAD = 12;
  const at = new Map();
  columns.forEach((col, x) => col.forEach((n, y) => at.set(n.job, { x: PAD + x * (W + GX), y: PAD + y * (H + GY), n })));
  const width = PAD * 2 + columns.length * (W + GX) - GX;
  const height = PAD * 2 + Math.max(1, ...columns.map((c) => c.length)) * (H + GY) - GY;
  const svg = h('svg', { class: 'graph', viewBox: `0 0 ${Math.max(width, 200)} ${Math.max(height, 60)}`, role: 'img', 'aria-label': `dependency graph of ${graph.project}` },
    h('defs', {}, h('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: '10', refY: '5', markerWidth: '8', markerHeight: '8', orient: 'auto' }, h('path', { d: 'M0,0 L10,5 L0,10 z' }))));
  for (const e of graph.edges) {
    for (const to of named(e.to)) {
      for (const from of named(e.from)) {
        const a = at.get(from.job), b = at.get(to.job);
        const x1 = a.x + W, y1 = a.y + H / 2, x2 = b.x, y2 = b.y + H / 2;
        svg.append(h('g', { class: 'edge-group', dataset: { from: from.job, to: to.job, condition: e.condition } },
          h('path', { class: 'edge', d: `M${x1},${y1} C${x1 + GX / 2},${y1} ${x2 - GX / 2},${y2} ${x2},${y2}`, 'marker-end': 'url(#arrow)' }),
          h('text', { class: 'edge-label', x: (x1 + x2) / 2, y: (y1 + y2) / 2 - 4, 'text-anchor': 'middle' }, e.condition)));
      }
    }
  }
  for (const { x, y, n } of at.values()) {
    svg.append(h('g', { class: 'node', dataset: { job: n.job, state: n.state } },
      h('title', {}, `${n.job}: ${n.state}`),
      h('rect', { x, y, width: W, height: H, rx: 8 }),
      h('text', { x: x + 10, y: y + 18 }, n.job.length > 20 ? n.job.slice(0, 19) + '…' : n.job),
      h('text', { x: x + 10, y: y + 35, class: 'edge-label' }, n.state)));
  }
  return svg;
}

// ---- start -----------------------------------------------------------------------------------

$('drawer-close').addEventListener('click', closeDrawer);
document.addEventListener('keydown', (e) => { if (e.key === 'Escape' && state.drawer) closeDrawer(); });
$('run').addEventListener('submit', async (e) => {
  e.preventDefault();
  const name = $('run-name').value.trim();
  const args = [...(name ? ['--name', name] : []), '--', $('run-cmd').value.trim()];
  const job = await act(null, () => api('POST', '/jobs', { args }));
  if (job) {
    notify(`${jobName(job)} started (${job.state})`);
    $('run-cmd').value = '';
    $('run-name').value = '';
  }
});
setInterval(() => { if (!document.hidden) render(); }, 1000); // uptimes tick between updates
connect();
loadFiles();
