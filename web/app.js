'use strict';
/*
 * Portico admin console: one page served by the admin listener at /admin/ui/
 * (the HTTP contract is in docs/admin-api.md). Vanilla JavaScript under a
 * strict Content-Security-Policy: no inline script or style, no eval, no
 * external URL. Every value that comes from the server reaches the DOM as a
 * text node (h() below) and never through innerHTML: API names, paths,
 * notes and result bodies are hostile input.
 *
 * Pages (hash routing): #/login, #/dashboard, #/apis, #/apis/NAME,
 * #/executions, #/executions/ID, #/nodes.
 */

// ------------------------------------------------------------------ DOM helpers

const SVG_NS = 'http://www.w3.org/2000/svg';

/* h('tag', {attr: value, onclick: fn}, ...children): a new element. Children
 * are nodes or strings (inserted as text); null, undefined and false are
 * skipped and arrays are flattened. */
function h(tag, attrs, ...kids) {
  return build(document.createElement(tag), attrs, kids);
}

function svg(tag, attrs, ...kids) {
  return build(document.createElementNS(SVG_NS, tag), attrs, kids);
}

function build(el, attrs, kids) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, kids);
  return el;
}

function append(el, kids) {
  for (const k of kids.flat(Infinity)) {
    if (k === null || k === undefined || k === false) continue;
    el.appendChild(k instanceof Node ? k : document.createTextNode(String(k)));
  }
  return el;
}

/* Replaces the children of `el`. */
function fill(el, ...kids) {
  el.replaceChildren();
  return append(el, kids);
}

const $ = (sel) => document.querySelector(sel);
const enc = encodeURIComponent;

/* '?a=1&b=2' from the members of `params` that are not empty. */
function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== '' && v !== null && v !== undefined) q.set(k, v);
  const s = q.toString();
  return s ? '?' + s : '';
}

// ------------------------------------------------------------------ formatting

const none = (v) => v === null || v === undefined || (typeof v === 'number' && !isFinite(v));

const fmt = {
  num: (v, d = 0) => (none(v) ? '–' : Number(v).toFixed(d)),
  count: (v) => (none(v) ? '–' : Number(v).toLocaleString('en-US')),
  ms: (v) => (none(v) ? '–' : Number(v).toFixed(v < 10 ? 2 : v < 100 ? 1 : 0)),
  pct: (v) => (none(v) ? '–' : (v * 100).toFixed(2) + ' %'),
  bytes(v) {
    if (none(v)) return '–';
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    for (v = Number(v); v >= 1024 && i < units.length - 1; i++) v /= 1024;
    return (i ? v.toFixed(1) : String(v)) + ' ' + units[i];
  },
  /* ms since the epoch (or an ISO string, shown as it is). */
  time(v) {
    if (none(v) || v === '') return '–';
    if (typeof v !== 'number') return String(v);
    const d = new Date(v);
    return isNaN(d) ? String(v) : d.toISOString().replace('T', ' ').replace('Z', ' UTC');
  },
  /* Any JSON value as short text (objects as JSON). */
  any(v) {
    if (none(v)) return '–';
    return typeof v === 'object' ? JSON.stringify(v) : String(v);
  },
};

// ------------------------------------------------------------------ HTTP

/* The session: its csrf token lives in memory only (GET /admin/session gives
 * it back after a reload, the HttpOnly cookie carries the session). */
const session = { name: null, csrf: null, next: null };

class HttpError extends Error {
  constructor(status, body) {
    const detail = body && typeof body === 'object' ? body.detail || body.title : body;
    super(detail ? `${status}: ${detail}` : `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

/* One JSON call to the admin API; resolves to the parsed answer (null when
 * empty), rejects with an HttpError. A 401 from any call but the session's
 * own sends the user to the login page. Mutating calls carry the CSRF token. */
async function call(method, path, body) {
  const headers = { Accept: 'application/json' };
  const init = { method, headers, credentials: 'same-origin', cache: 'no-store' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  if (method !== 'GET' && method !== 'HEAD' && session.csrf) headers['X-CSRF-Token'] = session.csrf;
  const r = await fetch(path, init);
  const text = await r.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = text;
  }
  if (r.status === 401 && !path.startsWith('/admin/session')) toLogin();
  if (!r.ok) throw new HttpError(r.status, data);
  return data;
}

/* Every item of a paged list ({items, next}), following `next` (at most 50 pages). */
async function all(path) {
  let items = [];
  let cursor = null;
  for (let i = 0; i < 50; i++) {
    const sep = path.includes('?') ? '&' : '?';
    const page = await call('GET', cursor ? `${path}${sep}cursor=${enc(cursor)}` : path);
    items = items.concat(page.items || []);
    if (page.next === null || page.next === undefined) break;
    cursor = page.next;
  }
  return items;
}

function setSession(s) {
  session.name = s.name;
  session.csrf = s.csrf;
  fill($('#who-name'), s.name || '');
  $('#nav').hidden = false;
  $('#logout').hidden = false;
}

function clearSession() {
  session.name = session.csrf = null;
  fill($('#who-name'));
  $('#nav').hidden = true;
  $('#logout').hidden = true;
}

function toLogin() {
  if (location.hash === '#/login') return;
  clearSession();
  session.next = location.hash;
  location.hash = '#/login';
}

/* A short message about the outcome of an action, above the page. */
let flashTimer = null;
function flash(text, kind = 'ok') {
  const el = $('#flash');
  el.className = 'flash ' + kind;
  fill(el, text);
  el.hidden = false;
  clearTimeout(flashTimer);
  if (kind === 'ok') flashTimer = setTimeout(() => (el.hidden = true), 8000); // errors stay until clicked
}

// ------------------------------------------------------------------ router

const pages = [
  [/^#\/login$/, loginPage],
  [/^#\/dashboard$/, dashboardPage],
  [/^#\/apis$/, apisPage],
  [/^#\/apis\/([^/]+)$/, apiPage],
  [/^#\/executions$/, executionsPage],
  [/^#\/executions\/([^/]+)$/, executionPage],
  [/^#\/nodes$/, nodesPage],
];

/* The page on screen: `gen` changes when it is left, so that answers that
 * arrive later are dropped; its timers and streams are closed on leaving. */
let view = { gen: 0, cleanups: [] };

function route() {
  for (const fn of view.cleanups) fn();
  const gen = view.gen + 1;
  const hash = location.hash || '#/dashboard';
  if (!session.csrf && hash !== '#/login') {
    session.next = hash;
    location.hash = '#/login';
    return;
  }
  const main = $('#main');
  const ctx = {
    main,
    alive: () => view.gen === gen,
    onLeave: (fn) => ctx.alive() && view.cleanups.push(fn),
    /* Runs fn now, then again `ms` after each run ends, while the page is shown. */
    every(ms, fn) {
      let timer = null;
      const tick = async () => {
        try {
          await fn();
        } catch (e) {
          if (ctx.alive() && e.status !== 401) flash(e.message, 'error');
        }
        if (ctx.alive()) timer = setTimeout(tick, ms);
      };
      ctx.onLeave(() => clearTimeout(timer));
      tick();
    },
  };
  view = { gen, cleanups: [] };
  for (const a of document.querySelectorAll('#nav a')) {
    a.classList.toggle('active', hash.startsWith('#/' + a.dataset.page));
  }
  const match = pages.map(([re, page]) => [hash.match(re), page]).find(([m]) => m);
  if (!match) {
    fill(main, h('h1', {}, 'Not found'), h('p', {}, h('a', { href: '#/dashboard' }, 'Dashboard')));
    return;
  }
  const [m, page] = match;
  fill(main, h('p', { class: 'muted' }, 'Loading…'));
  const decode = (s) => {
    try {
      return decodeURIComponent(s);
    } catch {
      return s; // a malformed escape: used as it is (and not found)
    }
  };
  Promise.resolve().then(() => page(ctx, ...m.slice(1).map(decode))).catch((e) => {
    if (!ctx.alive() || e.status === 401) return;
    fill(main, h('h1', {}, 'Error'), h('p', { class: 'error', id: 'page-error' }, e.message));
  });
}

// ------------------------------------------------------------------ widgets

/* A table. cols: [{key, label, fmt(value, row) -> string|Node, num}].
 * With `id`, clicking a header sorts by that column (again: reverses), and the
 * choice is kept for the next rendering of the same id. */
const sorts = {};
function table(cols, rows, id = null, sortKey = null) {
  const wrap = h('div', { class: 'table-wrap' });
  if (id) wrap.id = id;
  const st = id ? (sorts[id] = sorts[id] || { key: sortKey, desc: true }) : { key: null };
  const render = () => {
    let list = rows.slice();
    const col = cols.find((c) => c.key === st.key);
    if (col) {
      const val = (r) => (col.sort ? col.sort(r) : r[col.key]);
      list.sort((a, b) => {
        const x = val(a);
        const y = val(b);
        if (none(x) || none(y)) return none(x) - none(y); // empty cells last
        const c = typeof x === 'number' ? x - y : String(x).localeCompare(String(y));
        return st.desc ? -c : c;
      });
    }
    const head = cols.map((c) => {
      if (!id) return h('th', { scope: 'col' }, c.label);
      const sorted = c.key === st.key;
      const onclick = () => {
        st.desc = sorted ? !st.desc : true;
        st.key = c.key;
        render();
      };
      return h('th', { scope: 'col', 'aria-sort': sorted ? (st.desc ? 'descending' : 'ascending') : 'none', 'data-key': c.key },
        h('button', { type: 'button', class: 'sort', onclick }, c.label, sorted ? (st.desc ? ' ▾' : ' ▴') : ''));
    });
    const body = list.length
      ? list.map((r) => h('tr', {}, cols.map((c) => h('td', { class: c.num ? 'num' : null }, (c.fmt || fmt.any)(r[c.key], r)))))
      : [h('tr', {}, h('td', { colspan: cols.length, class: 'muted' }, 'none'))];
    fill(wrap, h('table', {}, h('thead', {}, h('tr', {}, head)), h('tbody', {}, body)));
  };
  render();
  return wrap;
}

/* Columns for every member the items have: those of `first` (in that order)
 * that some item has, then the rest; `first` alone when there is no item. */
function autoCols(items, first = []) {
  const keys = items.length ? first.filter((k) => items.some((it) => k in it)) : [...first];
  for (const it of items) for (const k of Object.keys(it)) if (!keys.includes(k)) keys.push(k);
  return keys.map((k) => ({ key: k, label: k, fmt: k.endsWith('_ms') || k.endsWith('_at') ? fmt.time : fmt.any }));
}

/* A two-column table of an object's members. */
function kvTable(obj, id = null) {
  const rows = Object.entries(obj).map(([k, v]) =>
    h('tr', {}, h('th', { scope: 'row' }, k), h('td', { 'data-key': k }, k.endsWith('_ms') && typeof v === 'number' ? `${fmt.time(v)} (${v})` : fmt.any(v))));
  return h('div', { class: 'table-wrap' }, h('table', { class: 'kv', id }, h('tbody', {}, rows)));
}

function card(title, ...kids) {
  return h('section', { class: 'card' }, title ? h('h2', {}, title) : null, kids);
}

function select(id, options, value, onchange) {
  return h('select', { id, onchange: (e) => onchange(e.target.value) },
    options.map(([v, label]) => h('option', { value: v, selected: v === value }, label)));
}

/* Asks, runs the call, says what happened and reloads the page's data. */
async function act(question, method, path, body, done) {
  if (!confirm(question)) return;
  try {
    flash(done(await call(method, path, body)), 'ok');
  } catch (e) {
    if (e.status !== 401) flash(e.message, 'error');
  }
  route();
}

// ------------------------------------------------------------------ charts

const CW = 520; // viewBox of every chart
const CH = 220;
const PAD = { l: 48, r: 12, t: 12, b: 40 };

/* The largest value rounded up to 1, 2 or 5 times a power of ten. */
function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  return [1, 2, 5, 10].map((m) => m * p).find((m) => m >= v);
}

function hhmm(t, seconds) {
  const d = new Date(t);
  const two = (n) => String(n).padStart(2, '0');
  return `${two(d.getHours())}:${two(d.getMinutes())}` + (seconds ? ':' + two(d.getSeconds()) : '');
}

/* A line chart card. lines: [{label, id, unit, value(point, resolution_s) ->
 * number|null}]; each gets a legend entry with its latest value in the
 * element `id`. draw(points, t0, t1, resolution, latest) redraws the SVG (a
 * null value breaks the line) and shows `latest` ([point, resolution], by
 * default the last point) in the legend. */
function lineChart(title, yLabel, lines, digits) {
  const plot = svg('svg', { viewBox: `0 0 ${CW} ${CH}`, class: 'chart', role: 'img', 'aria-label': title });
  const now = lines.map((l) => h('strong', { id: l.id, class: 'now' }, '–'));
  const legend = h('ul', { class: 'legend' }, lines.map((l, i) =>
    h('li', {}, h('span', { class: `swatch s${i}` }), l.label + ' ', now[i], l.unit ? ' ' + l.unit : '')));
  const el = h('section', { class: 'card chart-card' }, h('h2', {}, title), plot, legend);

  function draw(points, t0, t1, resolution, latest = [points[points.length - 1], resolution]) {
    const w = CW - PAD.l - PAD.r;
    const ht = CH - PAD.t - PAD.b;
    const vals = lines.map((l) => points.map((p) => [p.t, l.value(p, resolution)]));
    const max = niceMax(Math.max(0, ...vals.flat().map(([, v]) => (none(v) ? 0 : v))));
    const x = (t) => PAD.l + ((t - t0) / Math.max(1, t1 - t0)) * w;
    const y = (v) => PAD.t + ht - (v / max) * ht;
    const kids = [];
    const step = max / 4;
    const tickDigits = Number.isInteger(step) ? 0 : step >= 1 ? 1 : 2;
    for (let i = 0; i <= 4; i++) { // horizontal grid and y ticks
      const v = step * i;
      kids.push(svg('line', { x1: PAD.l, x2: CW - PAD.r, y1: y(v), y2: y(v), class: 'grid' }),
        svg('text', { x: PAD.l - 6, y: y(v) + 4, class: 'tick', 'text-anchor': 'end' }, fmt.num(v, tickDigits)));
    }
    const secs = t1 - t0 <= 15 * 60 * 1000;
    for (let i = 0; i <= 4; i++) { // x ticks
      const t = t0 + ((t1 - t0) * i) / 4;
      const anchor = i === 0 ? 'start' : i === 4 ? 'end' : 'middle';
      kids.push(svg('text', { x: x(t), y: CH - PAD.b + 16, class: 'tick', 'text-anchor': anchor }, hhmm(t, secs)));
    }
    kids.push(
      svg('line', { x1: PAD.l, x2: PAD.l, y1: PAD.t, y2: PAD.t + ht, class: 'axis' }),
      svg('line', { x1: PAD.l, x2: CW - PAD.r, y1: PAD.t + ht, y2: PAD.t + ht, class: 'axis' }),
      svg('text', { x: PAD.l + w / 2, y: CH - 4, class: 'axis-label', 'text-anchor': 'middle' }, 'time'),
      svg('text', { x: 12, y: PAD.t + ht / 2, class: 'axis-label', 'text-anchor': 'middle',
        transform: `rotate(-90 12 ${PAD.t + ht / 2})` }, yLabel));
    vals.forEach((series, i) => {
      let d = '';
      let pen = false;
      for (const [t, v] of series) {
        if (none(v)) {
          pen = false;
          continue;
        }
        d += `${pen ? 'L' : 'M'}${x(t).toFixed(1)},${y(Math.min(v, max)).toFixed(1)}`;
        pen = true;
      }
      if (d) kids.push(svg('path', { d, class: `line s${i}` }));
    });
    fill(plot, kids);
    const [p, res] = latest;
    lines.forEach((l, i) => fill(now[i], p ? fmt.num(l.value(p, res), digits) : '–'));
  }
  return { el, draw };
}

/* The requests-weighted mean of the members' percentiles: exact for one
 * member, an approximation when a filter matches several (one route, several
 * methods). Counts add up. */
function mergePoints(list) {
  const p = { requests: 0, errors: 0, client_errors: 0, p50_ms: null, p95_ms: null, p99_ms: null };
  for (const k of ['p50_ms', 'p95_ms', 'p99_ms']) {
    let n = 0;
    let sum = 0;
    for (const m of list) if (!none(m[k])) (sum += m[k] * (m.requests || 1)), (n += m.requests || 1);
    p[k] = n ? sum / n : null;
  }
  for (const m of list) {
    p.requests += m.requests || 0;
    p.errors += m.errors || 0;
    p.client_errors += m.client_errors || 0;
  }
  return p;
}

// ------------------------------------------------------------------ login

function loginPage(ctx) {
  const input = h('input', { type: 'password', id: 'token', name: 'token', autocomplete: 'current-password', required: true });
  const err = h('p', { class: 'error', id: 'login-error', role: 'alert' });
  const submit = async (ev) => {
    ev.preventDefault();
    fill(err);
    try {
      setSession(await call('POST', '/admin/session', { token: input.value }));
      input.value = '';
      const next = session.next && session.next !== '#/login' ? session.next : '#/dashboard';
      session.next = null;
      location.hash = next;
    } catch (e) {
      fill(err, e.status === 401 ? 'This token was refused.' : e.message);
    }
  };
  fill(ctx.main, h('form', { class: 'card login', id: 'login-form', onsubmit: submit },
    h('h1', {}, 'Sign in'),
    h('p', { class: 'muted' }, 'An admin token from ', h('code', {}, 'portico admin token create'), '.'),
    h('label', { for: 'token' }, 'Admin token'), input,
    h('button', { type: 'submit', id: 'login-submit' }, 'Sign in'), err));
  input.focus();
}

async function logout() {
  try {
    await call('DELETE', '/admin/session');
  } catch (e) {
    if (e.status !== 401) flash(e.message, 'error');
  }
  clearSession();
  session.next = null;
  location.hash = '#/login';
}

// ------------------------------------------------------------------ dashboard

/* The dashboard's filters, kept while the console is open. */
const dash = { environment: '', api: '', route: '', window: '15m' };
const WINDOWS = ['1m', '5m', '15m', '1h', '6h', '24h'];
const known = { apis: new Set(), routes: new Map() }; // names seen in summaries

const API_COLS = [
  { key: 'api', label: 'API', fmt: (v) => v || '(no API)' },
  { key: 'requests', label: 'requests', fmt: fmt.count, num: true },
  { key: 'rps', label: 'req/s', fmt: (v) => fmt.num(v, 1), num: true },
  { key: 'errors', label: '5xx', fmt: fmt.count, num: true },
  { key: 'client_errors', label: '4xx', fmt: fmt.count, num: true },
  { key: 'error_rate', label: 'error rate', fmt: fmt.pct, num: true },
  { key: 'p50_ms', label: 'p50 ms', fmt: fmt.ms, num: true },
  { key: 'p95_ms', label: 'p95 ms', fmt: fmt.ms, num: true },
  { key: 'p99_ms', label: 'p99 ms', fmt: fmt.ms, num: true },
  { key: 'bytes_in', label: 'in', fmt: fmt.bytes, num: true },
  { key: 'bytes_out', label: 'out', fmt: fmt.bytes, num: true },
];
const ROUTE_COLS = [
  API_COLS[0],
  { key: 'route', label: 'route', fmt: (v) => v || '–' },
  { key: 'method', label: 'method' },
  ...API_COLS.slice(1),
  { key: 'codes', label: 'codes', fmt: (v) => Object.entries(v || {}).map(([c, n]) => `${c}: ${n}`).join(', ') },
];
const PROCESS_COLS = [
  API_COLS[0],
  { key: 'process', label: 'process' },
  { key: 'executions', label: 'executions', fmt: fmt.count, num: true },
  { key: 'errors', label: 'errors', fmt: fmt.count, num: true },
  { key: 'avg_ms', label: 'avg ms', fmt: fmt.ms, num: true },
  { key: 'stddev_ms', label: 'stddev ms', fmt: fmt.ms, num: true },
  { key: 'max_ms', label: 'max ms', fmt: fmt.ms, num: true },
  { key: 'p95_ms', label: 'p95 ms', fmt: fmt.ms, num: true },
  { key: 'bytes_in', label: 'in', fmt: fmt.bytes, num: true },
  { key: 'bytes_out', label: 'out', fmt: fmt.bytes, num: true },
];
const ERROR_COLS = [
  { key: 'time_ms', label: 'time', fmt: fmt.time },
  { key: 'request_id', label: 'request id', fmt: (v) => h('code', {}, fmt.any(v)) },
  API_COLS[0],
  { key: 'route', label: 'route', fmt: (v) => v || '–' },
  { key: 'method', label: 'method' },
  { key: 'path', label: 'path', fmt: (v) => h('code', {}, fmt.any(v)) },
  { key: 'status', label: 'status', num: true },
  { key: 'duration_ms', label: 'ms', fmt: fmt.ms, num: true },
];

async function dashboardPage(ctx) {
  const [status, envs] = await Promise.all([call('GET', '/admin/status'), all('/admin/environments')]);
  if (!ctx.alive()) return;
  const nodeEnv = status.environment;
  const live = () => !dash.environment || dash.environment === nodeEnv;
  const charts = [
    lineChart('Requests per second', 'req/s', [
      { label: 'requests/s', id: 'rps-now', value: (p, res) => (p.requests || 0) / res },
    ], 1),
    lineChart('Error rate', '% of requests', [
      { label: '5xx', id: 'err-now', unit: '%', value: (p) => (p.requests ? (100 * (p.errors || 0)) / p.requests : null) },
      { label: '4xx', id: 'err4-now', unit: '%', value: (p) => (p.requests ? (100 * (p.client_errors || 0)) / p.requests : null) },
    ], 2),
    lineChart('Latency', 'ms', [
      { label: 'p50', id: 'p50-now', unit: 'ms', value: (p) => p.p50_ms },
      { label: 'p95', id: 'p95-now', unit: 'ms', value: (p) => p.p95_ms },
      { label: 'p99', id: 'p99-now', unit: 'ms', value: (p) => p.p99_ms },
    ], 2),
  ];
  const sel = { api: h('span'), route: h('span') };
  const sec = {};
  for (const k of ['totals', 'apis', 'routes', 'classes', 'codes', 'processes', 'pool', 'consumers', 'errors']) sec[k] = h('div', { id: 'dash-' + k });
  const stamp = h('span', { id: 'summary-time', class: 'muted' });
  const liveNote = h('span', { id: 'live-state', class: 'muted' });

  const setFilter = (k, v) => {
    dash[k] = v;
    if (k === 'api') dash.route = '';
    fillSelects();
    restart();
  };
  function fillSelects() {
    const apis = [...known.apis].filter((a) => a).sort();
    if (dash.api && !apis.includes(dash.api)) apis.unshift(dash.api);
    fill(sel.api, select('f-api', [['', 'all APIs'], ...apis.map((a) => [a, a])], dash.api, (v) => setFilter('api', v)));
    const routes = [...(known.routes.get(dash.api) || [])].sort();
    fill(sel.route, select('f-route', [['', dash.api ? 'all routes' : '(choose an API)'], ...routes.map((r) => [r, r])],
      dash.route, (v) => setFilter('route', v)));
    $('#f-route').disabled = !dash.api;
  }

  fill(ctx.main,
    h('div', { class: 'page-head' }, h('h1', {}, 'Dashboard'), liveNote),
    h('form', { class: 'filters', id: 'filters', onsubmit: (e) => e.preventDefault() },
      h('label', {}, 'Environment ', select('f-env', [['', `${nodeEnv} (this node)`],
        ...envs.filter((e) => e.name !== nodeEnv).map((e) => [e.name, e.name])], dash.environment, (v) => setFilter('environment', v))),
      h('label', {}, 'API ', sel.api),
      h('label', {}, 'Route ', sel.route),
      h('label', {}, 'Window ', select('f-window', WINDOWS.map((w) => [w, w]), dash.window, (v) => setFilter('window', v)))),
    h('div', { class: 'charts' }, charts.map((c) => c.el)),
    card('Totals', stamp, sec.totals),
    card('APIs', sec.apis),
    card('Routes', sec.routes),
    h('div', { class: 'two' }, card('Status classes', sec.classes), card('Status codes', sec.codes)),
    card('Processes', sec.processes),
    h('div', { class: 'two' }, card('Process pool', sec.pool), card('Top consumers', sec.consumers)),
    card('Recent errors', sec.errors));
  fillSelects();

  // The chart's history; ticks from the stream are appended to it. The
  // legends show the last second received (the last point of minute
  // resolution is a minute not over yet).
  let series = null;
  let lastSecond = null;
  const params = () => query({ window: dash.window, api: dash.api, route: dash.api ? dash.route : '', environment: dash.environment });
  const redraw = () => {
    if (!series) return;
    const res = series.resolution_s || 1;
    const pts = series.points;
    const t1 = pts.length ? pts[pts.length - 1].t : Date.now();
    const t0 = t1 - (series.window_s - res) * 1000;
    for (const c of charts) c.draw(pts, t0, t1, res, lastSecond ? [lastSecond, 1] : undefined);
  };
  /* Appends one second of the stream to the series, dropping what falls out
   * of the window. At the 60 s resolution the second is added to the current
   * minute (approximate: percentiles are averaged, and a minute the history
   * already had in part may count a second twice). */
  const onTick = (tick) => {
    if (!series || !live()) return;
    let list = [tick.node || {}];
    if (dash.api && dash.route) list = (tick.routes || []).filter((r) => r.api === dash.api && r.route === dash.route);
    else if (dash.api) list = (tick.apis || []).filter((a) => a.api === dash.api);
    const p = mergePoints(list);
    lastSecond = p;
    const step = (series.resolution_s || 1) * 1000;
    p.t = Math.floor(tick.t / step) * step;
    const pts = series.points;
    const last = pts[pts.length - 1];
    if (last && p.t < last.t) return; // late: already in the history
    if (last && p.t === last.t) pts[pts.length - 1] = step === 1000 ? p : { ...mergePoints([last, p]), t: p.t };
    else pts.push(p);
    const keep = Math.max(1, Math.round(series.window_s / (series.resolution_s || 1)));
    if (pts.length > keep) pts.splice(0, pts.length - keep);
    while (pts.length && pts[0].t <= p.t - series.window_s * 1000) pts.shift();
    redraw();
  };

  let stream = null;
  function openStream() {
    if (stream) stream.close();
    if (!live()) {
      fill(liveNote, 'history only: live data is this node\'s environment');
      return;
    }
    const es = (stream = new EventSource('/admin/dashboard/stream' + params()));
    fill(liveNote, 'connecting…');
    es.addEventListener('open', () => es === stream && fill(liveNote, h('span', { class: 'live' }, '●'), ' live'));
    es.addEventListener('tick', (ev) => {
      try {
        onTick(JSON.parse(ev.data));
      } catch (e) {
        console.warn('bad tick', e);
      }
    });
    es.addEventListener('error', () => {
      if (es !== stream || !ctx.alive()) return;
      fill(liveNote, 'disconnected');
      // CLOSED: the server refused (EventSource does not retry): a lost
      // session goes to the login page, anything else is retried in 3 s.
      if (es.readyState === EventSource.CLOSED) {
        call('GET', '/admin/session').then(() => setTimeout(() => ctx.alive() && es === stream && openStream(), 3000),
          (e) => e.status === 401 && toLogin());
      }
    });
  }
  ctx.onLeave(() => stream && stream.close());

  async function loadSeries() {
    const s = await call('GET', '/admin/dashboard/series' + params());
    if (!ctx.alive()) return;
    series = { ...s, points: (s.points || []).slice() };
    redraw();
  }

  let summaryGen = 0; // answers for older filters are dropped
  async function refreshSummary() {
    const g = summaryGen;
    const s = await call('GET', '/admin/dashboard/summary' + params());
    if (!ctx.alive() || g !== summaryGen) return;
    renderSummary(s, sec);
    fill(stamp, 'at ', fmt.time(s.generated_ms), `, last ${s.window_s} s`);
    // the selects offer every API and route seen so far (a filtered summary
    // lists only what matches)
    const before = known.apis.size + [...known.routes.values()].reduce((n, set) => n + set.size, 0);
    for (const a of s.apis || []) known.apis.add(a.api);
    for (const r of s.routes || []) {
      if (!known.routes.has(r.api)) known.routes.set(r.api, new Set());
      if (r.route) known.routes.get(r.api).add(r.route);
    }
    const after = known.apis.size + [...known.routes.values()].reduce((n, set) => n + set.size, 0);
    if (after !== before) fillSelects();
  }

  let started = false;
  async function restart() {
    summaryGen++;
    series = lastSecond = null;
    try {
      await loadSeries();
      if (started) await refreshSummary();
    } catch (e) {
      if (ctx.alive() && e.status !== 401) flash(e.message, 'error');
    }
    if (ctx.alive()) openStream();
  }
  await restart();
  started = true;
  ctx.every(2000, refreshSummary);
}

function renderSummary(s, sec) {
  const t = s.totals || {};
  const stat = (id, label, value) => h('div', { class: 'stat' }, h('span', { class: 'label' }, label), h('span', { class: 'value', id }, value));
  fill(sec.totals, h('div', { class: 'stats' },
    stat('total-requests', 'requests', fmt.count(t.requests)),
    stat('total-rps', 'req/s', fmt.num(t.rps, 1)),
    stat('total-error-rate', 'error rate (5xx)', fmt.pct(t.error_rate)),
    stat('total-errors', '5xx', fmt.count(t.errors)),
    stat('total-client-errors', '4xx', fmt.count(t.client_errors)),
    stat('total-p50', 'p50 ms', fmt.ms(t.p50_ms)),
    stat('total-p95', 'p95 ms', fmt.ms(t.p95_ms)),
    stat('total-p99', 'p99 ms', fmt.ms(t.p99_ms)),
    stat('total-bytes-in', 'bytes in', fmt.bytes(t.bytes_in)),
    stat('total-bytes-out', 'bytes out', fmt.bytes(t.bytes_out))));
  fill(sec.apis, table(API_COLS, s.apis || [], 'table-apis', 'requests'));
  fill(sec.routes, table(ROUTE_COLS, s.routes || [], 'table-routes', 'requests'));
  const classes = { '1xx': 0, '2xx': 0, '3xx': 0, '4xx': 0, '5xx': 0, ...(s.status_classes || {}) };
  const total = Object.values(classes).reduce((a, b) => a + b, 0);
  const share = (n) => (total ? n / total : null);
  const countCols = (first) => [first, { key: 'n', label: 'responses', fmt: fmt.count, num: true },
    { key: 'share', label: 'share', fmt: fmt.pct, num: true }];
  fill(sec.classes, table(countCols({ key: 'class', label: 'class' }),
    Object.entries(classes).map(([c, n]) => ({ class: c, n, share: share(n) })), 'table-classes'));
  fill(sec.codes, table(countCols({ key: 'code', label: 'code' }),
    Object.entries(s.status_codes || {}).map(([c, n]) => ({ code: c, n, share: share(n) })), 'table-codes', 'n'));
  fill(sec.processes, table(PROCESS_COLS, s.processes || [], 'table-processes', 'executions'));
  const pool = s.pool || {};
  const gauge = (id, label, value, max) => h('div', { class: 'gauge' }, h('label', { for: id }, label),
    h('meter', { id, min: 0, max: Math.max(1, max || 0), value: value || 0, high: Math.max(1, max || 0) * 0.8 }),
    h('span', { class: 'num' }, `${fmt.count(value)} / ${fmt.count(max)}`));
  fill(sec.pool,
    gauge('pool-running', 'running', pool.running, pool.threads),
    gauge('pool-queued', 'queued', pool.queued, pool.max_queued),
    h('p', {}, 'queue wait p95: ', h('strong', { id: 'pool-wait' }, fmt.ms(pool.queue_wait_p95_ms)), ' ms'));
  fill(sec.consumers, table([{ key: 'consumer', label: 'consumer' }, { key: 'requests', label: 'requests', fmt: fmt.count, num: true },
    { key: 'errors', label: 'errors', fmt: fmt.count, num: true }], s.consumers || [], 'table-consumers', 'requests'));
  fill(sec.errors, table(ERROR_COLS, s.recent_errors || [], 'table-errors', 'time_ms'));
}

// ------------------------------------------------------------------ APIs

async function apisPage(ctx) {
  const items = await all('/admin/apis');
  if (!ctx.alive()) return;
  fill(ctx.main, h('h1', {}, 'APIs'), card(null, table([
    { key: 'name', label: 'name', fmt: (v) => h('a', { href: '#/apis/' + enc(v), class: 'api-link' }, v) },
    { key: 'latest_revision', label: 'latest revision', num: true },
    { key: 'base_path', label: 'base path', fmt: (v) => h('code', {}, fmt.any(v)) },
    { key: 'kind', label: 'kind' },
    { key: 'updated_at', label: 'updated', fmt: fmt.time },
  ], items, 'table-api-list', 'name')));
}

async function apiPage(ctx, name) {
  const base = '/admin/apis/' + enc(name);
  const [api, revs, envs] = await Promise.all([call('GET', base), all(base + '/revisions'), all('/admin/environments')]);
  const history = await Promise.all(envs.map((e) => all(`/admin/environments/${enc(e.name)}/deployments${query({ api: name })}`)));
  if (!ctx.alive()) return;
  revs.sort((a, b) => b.revision - a.revision);
  const live = new Map((api.deployments || []).map((d) => [d.environment, d.revision]));
  const envNames = envs.map((e) => e.name);
  const target = select('deploy-env', envNames.map((e) => [e, e]), envNames.includes(dash.deployEnv) ? dash.deployEnv : envNames[0],
    (v) => (dash.deployEnv = v));
  const deploy = (rev) => {
    const env = target.value;
    act(`Deploy ${name} revision ${rev} to ${env}?`, 'POST', `/admin/environments/${enc(env)}/deployments`, { api: name, revision: rev },
      (d) => `Deployed ${name} revision ${d.revision} to ${env}.`);
  };
  const rollback = (env) => act(`Roll ${name} back in ${env} to the revision deployed before?`, 'POST',
    `/admin/environments/${enc(env)}/apis/${enc(name)}/rollback`, {},
    (d) => `Rolled ${name} back in ${env}: revision ${d.revision} is live.`);
  const out = h('pre', { id: 'revision-text', class: 'code', hidden: true });
  const show = async (path, key) => {
    try {
      const r = await call('GET', path);
      fill(out, r[key] === '' ? '(no difference)' : fmt.any(r[key]));
      out.hidden = false;
    } catch (e) {
      if (e.status !== 401) flash(e.message, 'error');
    }
  };
  const revOpts = revs.map((r) => [String(r.revision), `revision ${r.revision}`]);
  const from = select('diff-from', revOpts, revOpts[1] ? revOpts[1][0] : '', () => {});
  const to = select('diff-to', revOpts, revOpts[0] ? revOpts[0][0] : '', () => {});

  fill(ctx.main,
    h('h1', {}, 'API ', h('span', { id: 'api-name' }, name)),
    kvTable({ base_path: api.base_path, kind: api.kind, latest_revision: api.latest_revision,
      deployed: [...live].map(([e, r]) => `${e}: ${r}`).join(', ') || 'nowhere' }, 'api-info'),
    card('Revisions', h('p', { class: 'filters' }, h('label', {}, 'Deploy to ', target)),
      table([
        { key: 'revision', label: 'revision', num: true },
        { key: 'label', label: 'label' },
        { key: 'notes', label: 'notes' },
        { key: 'author', label: 'author' },
        { key: 'created_at', label: 'created', fmt: fmt.time },
        { key: 'hash', label: 'hash', fmt: (v) => h('code', { title: fmt.any(v) }, fmt.any(v).slice(0, 12)) },
        { key: 'actions', label: '', fmt: (_, r) => h('span', { class: 'actions' },
          h('button', { type: 'button', class: 'deploy', 'data-revision': r.revision, onclick: () => deploy(r.revision) }, 'Deploy'),
          h('button', { type: 'button', class: 'view', onclick: () => show(`${base}/revisions/${r.revision}`, 'definition') }, 'View')) },
      ], revs, 'table-revisions'),
      h('p', { class: 'filters' }, 'Diff ', from, ' → ', to, ' ',
        h('button', { type: 'button', id: 'show-diff', onclick: () => show(`${base}/diff${query({ from: from.value, to: to.value })}`, 'diff') }, 'Show diff')),
      out),
    card('Deployments', envs.map((e, i) => h('section', { class: 'env', 'data-env': e.name },
      h('h3', {}, e.name, ' ', live.has(e.name) ? h('span', { class: 'badge ok' }, `revision ${live.get(e.name)} live`) : h('span', { class: 'badge' }, 'not deployed')),
      live.has(e.name) ? h('button', { type: 'button', class: 'rollback', 'data-env': e.name, onclick: () => rollback(e.name) }, 'Roll back') : null,
      table(autoCols(history[i], ['id', 'revision', 'status', 'state']), history[i])))));
}

// ------------------------------------------------------------------ executions

const STATUSES = ['ENQUEUED', 'INPROCESS', 'COMPLETE', 'COMPLETE_WARN', 'ERROR', 'ABORTED', 'DISCARDED'];
/* The search, and the cursors of the pages before this one (for "Previous"). */
const search = { api: '', status: '', user: '', from: '', to: '', cursors: [] };

const msOf = (local) => (local ? String(new Date(local).getTime()) : '');

async function executionsPage(ctx) {
  const input = (id, label, type = 'text') => h('label', {}, label + ' ', h('input', { id, type, value: search[id.slice(2)] }));
  const list = h('div', { id: 'exec-list' });
  const form = h('form', { class: 'filters', id: 'exec-search', onsubmit: (e) => {
    e.preventDefault();
    for (const k of ['api', 'user', 'from', 'to', 'status']) search[k] = $('#x-' + k).value;
    search.cursors = [];
    load();
  } },
  input('x-api', 'API'),
  h('label', {}, 'Status ', select('x-status', [['', 'any'], ...STATUSES.map((s) => [s, s])], search.status, () => {})),
  input('x-user', 'User'),
  input('x-from', 'From', 'datetime-local'),
  input('x-to', 'To', 'datetime-local'),
  h('button', { type: 'submit' }, 'Search'));
  fill(ctx.main, h('h1', {}, 'Executions'), form, card(null, list));

  async function load() {
    const cursor = search.cursors[search.cursors.length - 1] || '';
    const page = await call('GET', '/admin/executions' + query({ api: search.api, status: search.status, user: search.user,
      from: msOf(search.from), to: msOf(search.to), limit: 50, cursor }));
    if (!ctx.alive()) return;
    const dur = (r) => (none(r.ended_ms) || none(r.started_ms) ? null : r.ended_ms - r.started_ms);
    const move = (fn) => () => {
      fn();
      load().catch((e) => e.status !== 401 && flash(e.message, 'error'));
    };
    fill(list, table([
      { key: 'id', label: 'id', fmt: (v) => h('a', { href: '#/executions/' + enc(v), class: 'exec-link' }, h('code', {}, v)) },
      { key: 'api', label: 'API' },
      { key: 'route', label: 'route' },
      { key: 'status', label: 'status', fmt: (v) => h('span', { class: 'badge ' + statusClass(v) }, fmt.any(v)) },
      { key: 'http_status', label: 'HTTP', num: true },
      { key: 'user', label: 'user' },
      { key: 'enqueued_ms', label: 'enqueued', fmt: fmt.time },
      { key: 'duration', label: 'ms', fmt: (_, r) => fmt.count(dur(r)), sort: dur, num: true },
    ], page.items || [], 'table-executions'),
    h('p', { class: 'pager' },
      h('button', { type: 'button', id: 'page-first', disabled: !search.cursors.length, onclick: move(() => (search.cursors = [])) }, 'First page'),
      h('button', { type: 'button', id: 'page-prev', disabled: !search.cursors.length, onclick: move(() => search.cursors.pop()) }, 'Previous'),
      h('button', { type: 'button', id: 'page-next', disabled: none(page.next), onclick: move(() => search.cursors.push(page.next)) }, 'Next')));
  }
  await load();
}

function statusClass(s) {
  if (s === 'COMPLETE') return 'ok';
  if (s === 'ENQUEUED' || s === 'INPROCESS') return 'run';
  return s === 'COMPLETE_WARN' ? 'warn' : 'bad';
}

async function executionPage(ctx, id) {
  const path = '/admin/executions/' + enc(id);
  const x = await call('GET', path);
  if (!ctx.alive()) return;
  const { deliveries = [], ...members } = x;
  const result = h('div', { id: 'result', hidden: true });
  const showResult = async () => {
    // The kept response comes wrapped: {status, content_type, headers, body,
    // body_base64} (a 404/410/409 problem when there is none).
    let r;
    try {
      r = await call('GET', path + '/result');
    } catch (e) {
      if (e.status === 401) return;
      fill(result, h('p', { class: 'error', id: 'result-error' }, e.message));
      result.hidden = false;
      return;
    }
    let body = r.body_base64 ? `(binary, ${atob(r.body || '').length} bytes)` : String(r.body ?? '');
    if (body.length > 200000) body = body.slice(0, 200000) + '\n… (cut for display)';
    fill(result, kvTable({ status: r.status, content_type: r.content_type || '', headers: r.headers || {} }, 'result-meta'),
      h('pre', { id: 'result-body', class: 'code' }, body));
    result.hidden = false;
  };
  const running = x.status === 'ENQUEUED' || x.status === 'INPROCESS';
  fill(ctx.main,
    h('h1', {}, 'Execution ', h('code', { id: 'exec-id' }, x.id)),
    h('p', {}, h('span', { id: 'exec-status', class: 'badge ' + statusClass(x.status) }, fmt.any(x.status)), ' ',
      h('a', { href: '#/executions' }, 'all executions')),
    h('p', { class: 'actions' },
      h('button', { type: 'button', id: 'show-result', onclick: () => showResult().catch((e) => flash(e.message, 'error')) }, 'Show result'),
      running ? h('button', { type: 'button', id: 'cancel-exec', class: 'danger',
        onclick: () => act(`Cancel execution ${x.id}?`, 'DELETE', path, undefined, () => `Cancel requested for ${x.id}.`) }, 'Cancel') : null),
    result,
    card('Members', kvTable(members, 'exec-members')),
    card('Webhook deliveries', table(autoCols(deliveries, ['id', 'url', 'attempts', 'state', 'due_ms', 'give_up_ms']), deliveries, 'deliveries')));
}

// ------------------------------------------------------------------ nodes

async function nodesPage(ctx) {
  const [nodes, status] = await Promise.all([all('/admin/nodes'), call('GET', '/admin/status')]);
  if (!ctx.alive()) return;
  const { deployed = [], policy_decisions: decisions = {}, ...rest } = status;
  fill(ctx.main, h('h1', {}, 'Nodes'),
    card('Nodes', table([
      { key: 'node', label: 'node', fmt: (v, r) => [h('code', {}, fmt.any(v)), r.this ? h('span', { class: 'badge ok' }, 'this node') : ''] },
      { key: 'environment', label: 'environment' },
      { key: 'version', label: 'version' },
      { key: 'last_seen_ms', label: 'last seen', fmt: fmt.time },
    ], nodes, 'table-nodes', 'node')),
    h('div', { class: 'two' },
      card('This node', kvTable(rest, 'node-status')),
      card('Deployed', table([{ key: 'api', label: 'API', fmt: (v) => h('a', { href: '#/apis/' + enc(v) }, v) },
        { key: 'revision', label: 'revision', num: true }], deployed, 'table-deployed', 'api'))),
    card('Policy decisions', table([{ key: 'k', label: 'decision' }, { key: 'n', label: 'count', fmt: fmt.count, num: true }],
      Object.entries(decisions).map(([k, n]) => ({ k, n })), 'table-decisions', 'k')));
}

// ------------------------------------------------------------------ start

async function boot() {
  $('#logout').addEventListener('click', logout);
  $('#flash').addEventListener('click', (e) => (e.currentTarget.hidden = true));
  try {
    setSession(await call('GET', '/admin/session'));
  } catch {
    clearSession(); // no session: route() shows the login page
  }
  window.addEventListener('hashchange', route);
  route();
}

boot();
