// Hammond's wallboard for supervisors: live tiles per queue, the agents, and today's charts.
// Plain JavaScript and SVG, no build step, no third-party code. Data comes from the API under
// /api/v1 (wallboard snapshot, stats); the SSE stream says when to look again (no polling
// beyond a slow safety refresh). Text from the server is only ever put in with textContent.
'use strict';

const TOKEN_KEY = 'hammond.token';
const SVG = 'http://www.w3.org/2000/svg';
const EVENT_KINDS = [
  'created', 'entered_workflow', 'dtmf', 'callback_requested', 'call_ended', 'transferred',
  'accepted', 'offered_live', 'dialling', 'ringing', 'answered', 'dial_failed', 'bridged',
  'hung_up', 'closed', 'note', 'recovered', 'agent_unreachable', 'agent_status', 'reset',
];
const WAIT_LABELS = ['<20s', '20-60s', '1-2m', '2-5m', '5-15m', '15-60m', '>1h'];

const $ = (id) => document.getElementById(id);
const state = {
  token: null, es: null, board: null, stats: null, statsAt: 0, statsTimer: null, timer: null, pending: false,
  queue: '', shown: new Map(), retry: null,
};

function el(tag, attrs = {}, text) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined) continue;
    if (k === 'class') e.className = v; else e.setAttribute(k, String(v));
  }
  if (text !== undefined) e.textContent = text;
  return e;
}

function svg(tag, attrs = {}, text) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

function duration(secs) {
  if (secs === null || secs === undefined) return '—';
  secs = Math.max(0, Math.floor(secs));
  const h = Math.floor(secs / 3600), m = Math.floor((secs % 3600) / 60), s = secs % 60;
  const pad = (n) => String(n).padStart(2, '0');
  return h > 0 ? `${h}:${pad(m)}:${pad(s)}` : `${m}:${pad(s)}`;
}

async function api(path) {
  const r = await fetch(path, { headers: { Authorization: `Bearer ${state.token}` }, cache: 'no-store' });
  let data = null;
  try { data = await r.json(); } catch (e) { data = null; }
  if (!r.ok) {
    const err = new Error((data && data.error && data.error.message) || r.statusText);
    err.status = r.status;
    throw err;
  }
  return data;
}

// ---------- sign-in ----------

async function signIn(token) {
  state.token = token;
  const me = await api('/api/v1/me');
  if (me.role !== 'supervisor') {
    const e = new Error('This token is an agent\'s: the wallboard is for supervisors.');
    e.status = 403;
    throw e;
  }
  sessionStorage.setItem(TOKEN_KEY, token);
  $('signin').hidden = true;
  $('session').hidden = false;
  $('board').hidden = false;
  connect();
  await refresh();
}

function signOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  if (state.es) state.es.close();
  state.es = null;
  state.token = null;
  $('board').hidden = true;
  $('session').hidden = true;
  $('signin').hidden = false;
  $('signin-error').textContent = message || '';
}

// ---------- live ----------

function setConn(cls, text) {
  const c = $('conn');
  c.className = `conn conn-${cls}`;
  c.textContent = text;
}

function connect() {
  if (state.es) state.es.close();
  setConn('connecting', 'Connecting…');
  const es = new EventSource(`/api/v1/events?access_token=${encodeURIComponent(state.token)}`);
  state.es = es;
  es.onopen = () => { setConn('live', 'Live'); schedule(); };
  es.onerror = () => {
    if (state.es !== es) return;
    setConn('reconnecting', 'Reconnecting…');
    if (es.readyState === EventSource.CLOSED) {
      clearTimeout(state.retry);
      state.retry = setTimeout(() => { if (state.token) connect(); }, 3000);
    }
  };
  for (const kind of EVENT_KINDS) es.addEventListener(kind, schedule);
}

// Many events come in bursts (a call's steps): one refresh covers them.
function schedule() {
  if (state.timer) { state.pending = true; return; }
  state.timer = setTimeout(async () => {
    state.timer = null;
    await refresh();
    if (state.pending) { state.pending = false; schedule(); }
  }, 250);
}

// Today's figures read the whole day from the store: at most every STATS_EVERY ms however busy
// the queues are (with a trailing refresh, so the last change is always shown). The tiles read
// only the live interactions and follow every burst.
const STATS_EVERY = 10000;

async function refresh() {
  if (!state.token) return;
  try {
    const wantStats = !state.stats || Date.now() - state.statsAt >= STATS_EVERY;
    const [board, stats] = await Promise.all([
      api('/api/v1/wallboard'),
      wantStats ? api('/api/v1/stats?bucket=15m') : Promise.resolve(state.stats),
    ]);
    if (wantStats) state.statsAt = Date.now();
    else if (!state.statsTimer) {
      state.statsTimer = setTimeout(() => { state.statsTimer = null; state.statsAt = 0; schedule(); },
        Math.max(0, STATS_EVERY - (Date.now() - state.statsAt)));
    }
    state.board = board;
    state.stats = stats;
    render();
  } catch (e) {
    if (e.status === 401 || e.status === 403) signOut(e.message);
  }
}

// ---------- render ----------

function render() {
  const { board, stats } = state;
  renderQueues(board, stats);
  renderAgents(board);
  renderPick(board);
  renderCharts(stats);
  renderWebhooks(board.webhooks || []);
  $('updated').textContent = new Date().toLocaleTimeString();
  document.body.dataset.renders = String(Number(document.body.dataset.renders || 0) + 1);
}

function tile(queue, key, label, value, cls, sub) {
  const t = el('div', { class: `tile ${cls || ''}`, 'data-tile': key, 'data-queue': queue });
  const v = el('div', { class: 'v' }, String(value));
  const id = `${queue}/${key}`;
  if (state.shown.has(id) && state.shown.get(id) !== String(value)) t.classList.add('changed');
  state.shown.set(id, String(value));
  t.append(v, el('div', { class: 'k' }, label));
  if (sub) t.append(el('div', { class: 'sub' }, sub));
  return t;
}

function serviceLevel(stats, queue) {
  const q = stats && stats.queues.find((s) => s.queue === queue);
  return q ? q.totals.service_level : null;
}

function renderQueues(board, stats) {
  const box = $('queues');
  box.replaceChildren();
  for (const q of board.queues) {
    const sec = el('section', { class: 'queue', 'data-queue': q.queue, 'aria-label': `Queue ${q.queue}` });
    sec.append(el('h3', {}, q.queue));
    const tiles = el('div', { class: 'tiles' });
    const sl = serviceLevel(stats, q.queue);
    const slText = sl === null ? '—' : `${Math.round(sl * 100)}%`;
    const slCls = sl === null ? '' : sl >= 0.8 ? 'good' : sl >= 0.6 ? 'warn' : 'bad';
    const wait = q.longest_wait_secs;
    tiles.append(
      tile(q.queue, 'in_workflow', 'In workflow', q.in_workflow),
      tile(q.queue, 'open_callbacks', 'Open callbacks', q.open_callbacks),
      tile(q.queue, 'callbacks_due', 'Callbacks due now', q.callbacks_due, q.callbacks_due > 0 ? 'warn' : ''),
      tile(q.queue, 'longest_wait', 'Longest wait', duration(wait),
        wait === null ? '' : wait > q.service_level_target_secs ? 'bad' : 'good'),
      tile(q.queue, 'agents_available', 'Agents available', q.agents_available, q.agents_available ? 'good' : 'warn'),
      tile(q.queue, 'agents_busy', 'Agents busy', q.agents_busy),
      tile(q.queue, 'agents_away', 'Agents away', q.agents_away),
      tile(q.queue, 'service_level', 'Service level today', slText, slCls,
        `within ${duration(q.service_level_target_secs)}`),
    );
    sec.append(tiles);
    box.append(sec);
  }
}

function renderAgents(board) {
  const body = $('agent-rows');
  body.replaceChildren();
  for (const a of board.agents) {
    const tr = el('tr', { 'data-agent': a.id });
    tr.append(el('td', {}, a.id + (a.role === 'supervisor' ? ' (supervisor)' : '')));
    tr.append(el('td', {}, a.queues.join(', ') || '—'));
    const st = el('td', { class: 'c-state' });
    st.append(el('span', { class: `state state-${a.state}` }, a.state));
    tr.append(st);
    tr.append(el('td', { class: 'c-interaction' },
      a.interaction ? `#${a.interaction} (${a.interaction_queue})` : '—'));
    tr.append(el('td', { class: 't', 'data-since': a.since || '' }, ''));
    body.append(tr);
  }
  tick();
}

function tick() {
  const now = Date.now();
  for (const td of document.querySelectorAll('td[data-since]')) {
    const since = td.dataset.since ? Date.parse(td.dataset.since) : NaN;
    td.textContent = Number.isNaN(since) ? '—' : duration((now - since) / 1000);
  }
  $('clock').textContent = new Date().toLocaleTimeString();
}

function renderPick(board) {
  const pick = $('queue-pick');
  const names = ['', ...board.queues.map((q) => q.queue)];
  const have = Array.from(pick.options).map((o) => o.value);
  if (have.join('|') !== names.join('|')) {
    pick.replaceChildren(...names.map((n) => el('option', { value: n }, n || 'All queues')));
    pick.value = names.includes(state.queue) ? state.queue : '';
  }
}

// The figures the charts show: one queue's, or every queue's added up.
function chartData(stats) {
  const qs = stats.queues.filter((q) => !state.queue || q.queue === state.queue);
  const n = qs.length ? qs[0].buckets.length : 0;
  const sum = (k, i) => qs.reduce((a, q) => a + q.buckets[i][k], 0);
  const buckets = [];
  for (let i = 0; i < n; i += 1) {
    const b = { start: qs[0].buckets[i].start };
    for (const k of ['offered', 'bridged', 'abandoned', 'callbacks_booked', 'callbacks_completed', 'callbacks_failed']) {
      b[k] = sum(k, i);
    }
    buckets.push(b);
  }
  const waits = WAIT_LABELS.map((_, i) => qs.reduce((a, q) => a + q.totals.wait_bins[i], 0));
  return { buckets, waits };
}

function renderCharts(stats) {
  const { buckets, waits } = chartData(stats);
  $('charts-queue').textContent = state.queue ? `· ${state.queue}` : '· all queues';
  // Only the part of the day that has happened, from the first busy hour.
  const first = buckets.findIndex((b) => b.offered > 0 || b.callbacks_booked > 0);
  // At least the last two hours, so a quiet morning still reads as a timeline.
  const recent = Math.max(0, buckets.length - 8);
  const from = first < 0 ? recent : Math.min(recent, Math.max(0, first - (first % 4)));
  const shown = buckets.slice(from);
  bars('chart-calls', 'legend-calls', shown, [['offered', 'Offered'], ['bridged', 'Bridged'], ['abandoned', 'Abandoned']]);
  bars('chart-callbacks', 'legend-callbacks', shown,
    [['callbacks_booked', 'Booked'], ['callbacks_completed', 'Completed'], ['callbacks_failed', 'Failed']]);
  histogram('chart-waits', waits);
}

function niceMax(v) {
  if (v <= 4) return 4;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function frame(w, h, max, pad) {
  const g = svg('svg', { viewBox: `0 0 ${w} ${h}`, role: 'img' });
  for (let k = 0; k <= 4; k += 1) {
    const y = pad.t + (h - pad.t - pad.b) * (1 - k / 4);
    g.append(svg('line', { class: 'axis', x1: pad.l, x2: w - pad.r, y1: y, y2: y }));
    g.append(svg('text', { x: pad.l - 4, y: y + 3, 'text-anchor': 'end' }, String(Math.round((max * k) / 4))));
  }
  return g;
}

function bars(id, legendId, buckets, series) {
  const w = 520, h = 150, pad = { l: 28, r: 6, t: 8, b: 22 };
  const max = niceMax(Math.max(0, ...buckets.flatMap((b) => series.map(([k]) => b[k]))));
  const g = frame(w, h, max, pad);
  const slot = (w - pad.l - pad.r) / Math.max(1, buckets.length);
  const bw = Math.max(1, (slot * 0.8) / series.length);
  const ih = h - pad.t - pad.b;
  let total = 0;
  buckets.forEach((b, i) => {
    series.forEach(([k, label], s) => {
      const v = b[k];
      total += v;
      if (!v) return;
      const bh = (v / max) * ih;
      const x = pad.l + i * slot + slot * 0.1 + s * bw;
      const r = svg('rect', { class: `s${s}`, x, y: pad.t + ih - bh, width: bw, height: bh, 'data-series': k, 'data-value': v });
      r.append(svg('title', {}, `${label}: ${v} at ${new Date(b.start).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })}`));
      g.append(r);
    });
    if (new Date(b.start).getMinutes() === 0) {
      const t = new Date(b.start).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
      g.append(svg('text', { x: pad.l + i * slot, y: h - 6 }, t));
    }
  });
  g.setAttribute('aria-label', `${series.map(([, l]) => l).join(', ')}: ${total} in all`);
  $(id).replaceChildren(g);
  $(id).dataset.total = String(total);
  const legend = $(legendId);
  legend.replaceChildren(...series.map(([, label], s) => {
    const span = el('span', {});
    const i = el('i', { class: `sw s${s}` });
    i.style.background = `var(--s${s + 1})`;
    span.append(i, document.createTextNode(label));
    return span;
  }));
}

function histogram(id, counts) {
  const w = 520, h = 150, pad = { l: 28, r: 6, t: 8, b: 22 };
  const max = niceMax(Math.max(0, ...counts));
  const g = frame(w, h, max, pad);
  const slot = (w - pad.l - pad.r) / counts.length;
  const ih = h - pad.t - pad.b;
  counts.forEach((v, i) => {
    const bh = (v / max) * ih;
    const x = pad.l + i * slot + slot * 0.15;
    if (v) {
      const r = svg('rect', { class: 's0', x, y: pad.t + ih - bh, width: slot * 0.7, height: bh, 'data-value': v });
      r.append(svg('title', {}, `${WAIT_LABELS[i]}: ${v}`));
      g.append(r);
    }
    g.append(svg('text', { x: x + slot * 0.35, y: h - 6, 'text-anchor': 'middle' }, WAIT_LABELS[i]));
  });
  const total = counts.reduce((a, b) => a + b, 0);
  g.setAttribute('aria-label', `Waits before an agent: ${total} in all`);
  $(id).replaceChildren(g);
  $(id).dataset.total = String(total);
}

function renderWebhooks(hooks) {
  const failing = hooks.filter((h) => h.retrying || h.given_up > 0);
  const box = $('webhook-alert');
  box.hidden = failing.length === 0;
  box.textContent = failing.map((h) => `Webhook ${h.name}: ${h.retrying ? 'retrying' : 'failing'}`
    + `${h.given_up ? `, ${h.given_up} event(s) given up` : ''}${h.last_error ? ` (${h.last_error})` : ''}`).join(' · ');
}

// ---------- start ----------

document.addEventListener('DOMContentLoaded', () => {
  $('signin-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    $('signin-error').textContent = '';
    try {
      await signIn($('token').value.trim());
    } catch (e) {
      state.token = null;
      $('signin-error').textContent = e.status === 401 ? 'That token is not valid.' : e.message;
    }
  });
  $('signout').addEventListener('click', () => signOut());
  $('queue-pick').addEventListener('change', (ev) => {
    state.queue = ev.target.value;
    if (state.stats) renderCharts(state.stats);
  });
  setInterval(tick, 1000);
  // A safety net for anything the stream cannot say (a callback falling due, the clock).
  setInterval(() => { if (state.token) refresh(); }, 30000);
  const saved = sessionStorage.getItem(TOKEN_KEY);
  if (saved) {
    signIn(saved).catch((e) => signOut(e.status === 403 ? e.message : ''));
  } else {
    $('signin').hidden = false;
  }
});
