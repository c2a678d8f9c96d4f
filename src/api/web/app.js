// Hammond's agent page: the Home List and the interaction workspace.
// Plain JavaScript, no build step, no third-party code. Everything shown comes from the API
// under /api/v1; live changes come from the SSE stream (no polling). Text from the server is
// only ever put into the page with textContent.
'use strict';

const TOKEN_KEY = 'hammond.token';
const TYPE = { inbound: 'Call', callback: 'Callback', voicemail: 'Voicemail' };
const STATUS = { open: 'Open', bot: 'Bot', connected: 'Connected', closed: 'Closed' };
// SSE event names: `created`, the lifecycle events, and presence changes.
const EVENT_KINDS = [
  'created', 'entered_workflow', 'dtmf', 'callback_requested', 'call_ended', 'transferred',
  'accepted', 'offered_live', 'dialling', 'ringing', 'answered', 'dial_failed', 'bridged',
  'hung_up', 'closed', 'note', 'recovered',
];
// The call's progress, in order, from feed kinds.
const STEPS = [
  { kind: 'callback_dialling', label: 'Dialling' },
  { kind: 'callback_ringing', label: 'Ringing' },
  { kind: 'callback_answered', label: 'Answered' },
  { kind: 'bridged', label: 'Talking to you' },
];

const $ = (id) => document.getElementById(id);

const state = {
  token: null,
  me: null,               // {id, queues, status}
  rows: new Map(),        // id → interaction
  es: null,
  retry: null,
  refreshTimer: null,
  lastRefresh: 0,
  current: null,          // the interaction in the workspace
  feed: [],               // its feed
  busy: new Set(),        // ids being picked up
  touched: new Map(),     // id → when an event last updated it (Date.now())
  voicemail: null,        // {id, url}: the recording loaded in the player (a Blob URL)
};

// ---------- helpers ----------

function el(tag, attrs = {}, text) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'dataset') Object.assign(e.dataset, v);
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  if (text !== undefined) e.textContent = text;
  return e;
}

// jiff prints up to nine fraction digits; normalise so timestamps compare as strings.
function tsKey(s) {
  const m = /^(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?Z$/.exec(s || '');
  return m ? `${m[1]}.${(m[2] || '').padEnd(9, '0')}Z` : (s || '');
}

function tsMillis(s) {
  const m = /^(.*T\d\d:\d\d:\d\d)(?:\.(\d{1,3})\d*)?(Z|[+-]\d\d:?\d\d)$/.exec(s || '');
  return m ? Date.parse(`${m[1]}.${(m[2] || '').padEnd(3, '0')}${m[3]}`) : Date.parse(s);
}

function clockTime(s) {
  const t = tsMillis(s);
  return Number.isFinite(t) ? new Date(t).toLocaleTimeString([], { hour12: false }) : '';
}

function dateTime(s) {
  const t = tsMillis(s);
  return Number.isFinite(t) ? new Date(t).toLocaleString([], { hour12: false }) : '';
}

function duration(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}

function waiting(i) {
  const start = tsMillis(i.created_at);
  const end = i.status === 'closed' ? tsMillis(i.updated_at) : Date.now();
  return Number.isFinite(start) ? duration(end - start) : '';
}

function typeLabel(i) {
  return TYPE[i.sub_type] || i.sub_type || '';
}

function statusLabel(i) {
  return STATUS[i.status] || i.status || '';
}

function who(agent) {
  return state.me && agent === state.me.id ? 'you' : agent;
}

// Why a row cannot be picked (null when it can).
function notPickable(i) {
  switch (i.status) {
    // An open inbound caller is still ringing: it can be picked once it waits in the queue.
    case 'open': {
      if (i.sub_type === 'inbound') return 'ringing';
      // A callback booked for later, waiting out its retry interval, or outside the calling
      // window in the customer's time zone (the server says `not_yet_due` until then).
      const cb = i.callback;
      const at = cb ? (cb.callable_from || cb.not_before) : null;
      const due = at ? tsMillis(at) : NaN;
      if (!(Number.isFinite(due) && due > Date.now())) return null;
      return cb.callable_from ? `may be called from ${dateTime(at)}` : `due ${dateTime(at)}`;
    }
    case 'bot': return 'with Hammond';
    case 'connected': return i.assigned_agent ? `with ${who(i.assigned_agent)}` : 'connected';
    case 'closed': return 'closed';
    default: return i.status;
  }
}

function announce(text) {
  const live = $('live');
  live.appendChild(el('p', {}, text));
  while (live.childNodes.length > 5) live.removeChild(live.firstChild);
}

function showAlert(text) {
  $('alert-text').textContent = text;
  $('alert').hidden = false;
}

function clearAlert() {
  $('alert').hidden = true;
  $('alert-text').textContent = '';
}

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${state.token}` };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let r;
  try {
    r = await fetch(path, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
    });
  } catch (e) {
    throw new ApiError(0, 'network', 'Hammond cannot be reached');
  }
  let data = null;
  try { data = await r.json(); } catch (e) { data = null; }
  if (!r.ok) {
    const err = (data && data.error) || {};
    const e = new ApiError(r.status, err.code || String(r.status), err.message || r.statusText);
    if (r.status === 401 && state.token) signOut('Your token is no longer valid; sign in again.');
    throw e;
  }
  return data;
}

// ---------- sign-in ----------

async function signIn(token) {
  state.token = token;
  const me = await api('GET', '/api/v1/me');
  state.me = me;
  sessionStorage.setItem(TOKEN_KEY, token);
  $('me-name').textContent = me.id;
  const q = $('f-queue');
  while (q.options.length > 1) q.remove(1);
  for (const name of me.queues) q.add(new Option(name, name));
  setPresence(me.status);
  $('signin').hidden = true;
  $('session').hidden = false;
  connect();
  route();
  if (typeof phoneStart === 'function') phoneStart(token, me);
}

function signOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  if (typeof phoneStop === 'function') phoneStop();
  if (state.es) state.es.close();
  clearTimeout(state.retry);
  clearTimeout(state.refreshTimer);
  Object.assign(state, {
    token: null, me: null, es: null, current: null, feed: [], retry: null, refreshTimer: null,
  });
  state.rows.clear();
  state.busy.clear();
  state.touched.clear();
  $('rows').replaceChildren();
  $('mine-list').replaceChildren();
  $('session').hidden = true;
  $('home').hidden = true;
  $('workspace').hidden = true;
  dropVoicemail();
  $('signin').hidden = false;
  $('signin-error').textContent = message || '';
  clearAlert();
  if (location.hash) history.replaceState(null, '', location.pathname);
  $('token').value = '';
  $('token').focus();
}

// ---------- presence ----------

function setPresence(status) {
  const b = $('presence');
  const available = status === 'available';
  b.setAttribute('aria-pressed', String(available));
  b.textContent = available ? 'Available' : 'Away';
  b.classList.toggle('on', available);
  if (state.me) state.me.status = status;
}

async function togglePresence() {
  const next = state.me.status === 'available' ? 'away' : 'available';
  try {
    const r = await api('PUT', `/api/v1/agents/${encodeURIComponent(state.me.id)}/status`, { status: next });
    setPresence(r.status);
    announce(`You are now ${r.status}.`);
  } catch (e) {
    if (e.status !== 401) showAlert(`Could not change your presence: ${e.message}`);
  }
}

// ---------- the live stream ----------

function setConn(kind, text) {
  const c = $('conn');
  c.className = `conn conn-${kind}`;
  c.textContent = text;
}

function connect() {
  if (state.es) state.es.close();
  clearTimeout(state.retry);
  setConn('connecting', 'Connecting…');
  const es = new EventSource(`/api/v1/events?access_token=${encodeURIComponent(state.token)}`);
  state.es = es;
  es.onopen = () => {
    setConn('live', 'Live');
    // Anything may have changed while the stream was down: take a fresh look.
    refreshList();
    if (state.current) loadWorkspace(state.current.id, false);
  };
  es.onerror = () => {
    if (state.es !== es) return;
    setConn('reconnecting', 'Reconnecting…');
    if (es.readyState === EventSource.CLOSED) {
      // The browser gave up (e.g. the server answered an error): check the token, then retry.
      state.retry = setTimeout(async () => {
        try {
          await api('GET', '/api/v1/me');
          if (state.token) connect();
        } catch (e) {
          if (state.token && e.status !== 401) state.retry = setTimeout(connect, 3000);
        }
      }, 2000);
    }
  };
  for (const kind of EVENT_KINDS) {
    es.addEventListener(kind, (ev) => {
      let data;
      try { data = JSON.parse(ev.data); } catch (e) { return; }
      onChange(kind, data);
    });
  }
  // The server could not replay what this page missed (too far behind, or pruned by the
  // retention): take a fresh look, then live events follow.
  es.addEventListener('reset', () => {
    refreshList();
    if (state.current) loadWorkspace(state.current.id, false);
  });
  es.addEventListener('agent_status', (ev) => {
    let p;
    try { p = JSON.parse(ev.data); } catch (e) { return; }
    if (state.me && p.id === state.me.id && p.status !== state.me.status) {
      setPresence(p.status);
      announce(`You are now ${p.status}.`);
    }
  });
}

function onChange(kind, data) {
  const i = data.interaction;
  if (!i || typeof i.id !== 'number') return;
  const before = state.rows.get(i.id);
  const applied = upsert(i);
  if (applied) {
    if (!before) {
      announce(`New ${typeLabel(i).toLowerCase()} interaction ${i.id} in ${i.queue}, ${statusLabel(i)}.`);
    } else if (before.status !== i.status || before.assigned_agent !== i.assigned_agent) {
      const extra = i.status === 'connected' && i.assigned_agent ? ` with ${who(i.assigned_agent)}` : '';
      announce(`Interaction ${i.id} is now ${statusLabel(i)}${extra}.`);
    }
    if (mineNow(i) && !(before && mineNow(before))) announce(`Interaction ${i.id} was sent to you.`);
  }
  if (state.current && state.current.id === i.id) {
    if (applied || tsKey(i.updated_at) >= tsKey(state.current.updated_at)) state.current = i;
    for (const f of data.feed || []) {
      if (!state.feed.some((g) => g.at === f.at && g.kind === f.kind && g.text === f.text)) state.feed.push(f);
      if (STEPS.some((s) => s.kind === f.kind) || f.kind === 'callback_failed_attempt') announce(f.text);
    }
    renderWorkspace();
  }
  render();
  // Other rows' positions move when one changes; one list refresh per burst of events.
  scheduleRefresh();
}

// Keeps the newest version of an interaction; returns whether `i` was applied.
function upsert(i) {
  const old = state.rows.get(i.id);
  if (old && tsKey(old.updated_at) > tsKey(i.updated_at)) return false;
  if (old && i.position === undefined) i.position = old.position;
  state.rows.set(i.id, i);
  state.touched.set(i.id, Date.now());
  return true;
}

function mineNow(i) {
  return state.me && i.status === 'connected' && i.assigned_agent === state.me.id;
}

// ---------- the Home List ----------

function scheduleRefresh() {
  if (state.refreshTimer) return;
  const wait = Math.max(300, 1000 - (Date.now() - state.lastRefresh));
  state.refreshTimer = setTimeout(() => { state.refreshTimer = null; refreshList(); }, wait);
}

async function fetchAll(status) {
  const out = [];
  let cursor = null;
  for (let page = 0; page < 5; page++) {
    const q = new URLSearchParams({ status, limit: '200' });
    if (cursor) q.set('cursor', cursor);
    const r = await api('GET', `/api/v1/interactions?${q}`);
    out.push(...r.interactions);
    cursor = r.next_cursor;
    if (!cursor) break;
  }
  return out;
}

async function refreshList() {
  if (!state.token) return;
  const started = Date.now();
  state.lastRefresh = started;
  const f = $('f-status').value;
  const statuses = f === 'closed' || f === 'all' ? ['open', 'bot', 'connected', 'closed'] : ['open', 'bot', 'connected'];
  try {
    const lists = await Promise.all(statuses.map(fetchAll));
    const seen = new Set();
    for (const i of lists.flat()) {
      seen.add(i.id);
      const old = state.rows.get(i.id);
      // The list is authoritative for positions even when an event was newer.
      if (old && tsKey(old.updated_at) > tsKey(i.updated_at)) old.position = i.position;
      else state.rows.set(i.id, i);
    }
    // Rows that left the fetched statuses (e.g. closed) keep what the events said about them.
    for (const [id, i] of state.rows) {
      const fresh = (state.touched.get(id) || 0) >= started;
      if (!seen.has(id) && !fresh && i.status !== 'closed' && statuses.length === 3) state.rows.delete(id);
    }
    render();
  } catch (e) {
    if (e.status !== 401) setConn('reconnecting', 'Reconnecting…');
  }
}

function visible(i) {
  const s = $('f-status').value;
  if (s === 'active' && i.status === 'closed') return false;
  if (s !== 'active' && s !== 'all' && i.status !== s) return false;
  const q = $('f-queue').value;
  if (q && i.queue !== q) return false;
  const t = $('f-type').value;
  if (t && i.sub_type !== t) return false;
  return true;
}

function order(a, b) {
  const ka = tsKey(a.created_at);
  const kb = tsKey(b.created_at);
  return ka < kb ? -1 : ka > kb ? 1 : a.id - b.id;
}

function render() {
  if (!state.me) return;
  const items = [...state.rows.values()].filter(visible).sort(order);
  const tbody = $('rows');
  const existing = new Map([...tbody.children].map((tr) => [Number(tr.dataset.id), tr]));
  const wanted = items.map((i) => {
    const tr = existing.get(i.id) || el('tr', { dataset: { id: String(i.id) } });
    fillRow(tr, i);
    existing.delete(i.id);
    return tr;
  });
  for (const tr of existing.values()) tr.remove();
  // Only move rows when the order changed, so a focused button keeps its focus.
  const same = wanted.length === tbody.children.length && wanted.every((tr, k) => tbody.children[k] === tr);
  if (!same) tbody.replaceChildren(...wanted);
  $('empty').hidden = items.length > 0;
  $('count').textContent = `${items.length} shown`;
  renderMine();
}

// Picking up a voicemail dials its caller back: the button says so (Listen only plays it).
function pickLabel(i) {
  return i.sub_type === 'voicemail' && i.callback ? 'Call back' : 'Pick up';
}

function fillRow(tr, i) {
  const key = JSON.stringify([i.updated_at, i.status, i.assigned_agent, i.position, state.busy.has(i.id), state.me.id, notPickable(i), !!i.voicemail]);
  tr.dataset.status = i.status;
  tr.dataset.type = i.sub_type;
  if (tr.dataset.key === key) return;
  tr.dataset.key = key;
  const focused = tr.contains(document.activeElement);
  const cell = (cls, label, text) => el('td', { class: cls, 'data-label': label }, text);
  const status = cell('c-status', 'Status');
  status.appendChild(el('span', { class: `badge badge-${i.status}` }, statusLabel(i)));
  const action = cell('c-action', 'Action');
  const why = notPickable(i);
  if (why === null) {
    const b = el('button', {
      type: 'button', class: 'pick primary',
      'aria-label': `Pick up interaction ${i.id}, ${typeLabel(i)} from ${i.customer_number || 'unknown number'}`,
    }, state.busy.has(i.id) ? 'Picking up…' : pickLabel(i));
    b.disabled = state.busy.has(i.id);
    b.addEventListener('click', () => pickUp(i.id));
    action.appendChild(b);
  } else if (mineNow(i)) {
    const a = el('a', { href: `#/interaction/${i.id}`, class: 'open-ws' }, 'Open workspace');
    action.appendChild(a);
  } else {
    action.appendChild(el('span', { class: 'why' }, why));
  }
  // A voicemail can be heard before (or without) calling the caller back.
  if (i.voicemail && !mineNow(i)) {
    action.appendChild(el('a', {
      href: `#/interaction/${i.id}`, class: 'listen',
      'aria-label': `Listen to the voicemail of interaction ${i.id}`,
    }, 'Listen'));
  }
  tr.replaceChildren(
    cell('c-id', 'ID', `#${i.id}`),
    cell('c-queue', 'Queue', i.queue),
    cell('c-type', 'Type', typeLabel(i)),
    status,
    cell('c-wait', 'Waiting', waiting(i)),
    cell('c-pos', 'Position', i.position == null ? '–' : String(i.position)),
    cell('c-customer', 'Customer', i.customer_number || '–'),
    cell('c-agent', 'Agent', i.assigned_agent ? who(i.assigned_agent) : '–'),
    action,
  );
  if (focused) {
    const target = action.querySelector('button, a');
    if (target) target.focus();
  }
}

function renderMine() {
  const mine = [...state.rows.values()].filter(mineNow).sort(order);
  const ul = $('mine-list');
  ul.replaceChildren(...mine.map((i) => {
    const li = el('li');
    li.appendChild(el('a', { href: `#/interaction/${i.id}` },
      `#${i.id} · ${typeLabel(i)} · ${i.customer_number || 'unknown number'} · ${i.queue}`));
    return li;
  }));
  $('mine-empty').hidden = mine.length > 0;
}

function tick() {
  for (const tr of $('rows').children) {
    const i = state.rows.get(Number(tr.dataset.id));
    const c = tr.querySelector('.c-wait');
    if (i && c && i.status !== 'closed') c.textContent = waiting(i);
    // A callback whose time has come gets its Pick up button (the row key has the reason).
    if (i && i.status === 'open' && i.callback && i.callback.not_before) fillRow(tr, i);
  }
  if (state.current && !$('workspace').hidden) $('ws-wait').textContent = waiting(state.current);
}

// ---------- picking up ----------

async function pickUp(id) {
  if (state.busy.has(id)) return;
  clearAlert();
  state.busy.add(id);
  render();
  try {
    const i = await api('POST', `/api/v1/interactions/${id}/accept`, {});
    upsert(i);
    announce(`You picked up interaction ${id}.`);
    state.busy.delete(id);
    openWorkspace(id);
  } catch (e) {
    state.busy.delete(id);
    if (e.status === 409 && e.code !== 'conflict') {
      // Not a race lost: the interaction cannot be picked yet (`live_call`, `not_yet_due`).
      showAlert(`Interaction ${id} cannot be picked up yet: ${e.message}`);
    } else if (e.status === 409) {
      let now = '';
      try {
        const d = await api('GET', `/api/v1/interactions/${id}`);
        delete d.feed;
        upsert(d);
        const why = notPickable(d);
        now = why ? ` It is now ${statusLabel(d)}${why === 'closed' ? '' : `, ${why}`}.` : '';
      } catch (e2) { /* the 409 says enough */ }
      showAlert(`Someone else was faster: interaction ${id} can no longer be picked up.${now}`);
    } else if (e.status !== 401) {
      showAlert(`Could not pick up interaction ${id}: ${e.message}`);
    }
    render();
  }
}

// ---------- the workspace ----------

function openWorkspace(id) {
  const target = `#/interaction/${id}`;
  if (location.hash !== target) location.hash = target; // → route()
  else route();
}

function route() {
  if (!state.me) return;
  const m = /^#\/interaction\/(\d+)$/.exec(location.hash);
  if (m) {
    $('home').hidden = true;
    $('workspace').hidden = false;
    loadWorkspace(Number(m[1]), true);
  } else {
    state.current = null;
    state.feed = [];
    dropVoicemail();
    $('workspace').hidden = true;
    $('home').hidden = false;
    document.title = 'Hammond · Home List';
    render();
  }
}

async function loadWorkspace(id, focus) {
  try {
    const d = await api('GET', `/api/v1/interactions/${id}`);
    state.feed = d.feed || [];
    delete d.feed;
    state.current = d;
    upsert({ ...d });
    selectTab('tab-feed', false);
    renderWorkspace();
    document.title = `Hammond · Interaction ${id}`;
    if (focus) $('ws-title').focus();
  } catch (e) {
    if (e.status === 401) return;
    showAlert(e.status === 404 ? `Interaction ${id} does not exist.` : `Could not open interaction ${id}: ${e.message}`);
    if (location.hash) location.hash = '';
  }
}

function renderWorkspace() {
  const i = state.current;
  if (!i) return;
  $('ws-id').textContent = `#${i.id}`;
  const badge = $('ws-status');
  badge.className = `badge badge-${i.status}`;
  badge.textContent = statusLabel(i);
  $('ws-type').textContent = typeLabel(i);
  $('ws-queue').textContent = i.queue;
  $('ws-customer').textContent = i.customer_number || '–';
  const cb = i.callback;
  for (const e of document.querySelectorAll('.cb-only')) e.hidden = !cb;
  // Reschedule and "Call again now" for a callback waiting in the queue.
  $('cb-actions').hidden = !(cb && i.status === 'open');
  if (cb) {
    $('ws-cb-number').textContent = cb.number;
    $('ws-attempts').textContent = String(cb.attempts);
    const from = cb.callable_from || cb.not_before;
    $('ws-not-before').textContent = from ? dateTime(from) : 'now';
  }
  $('ws-agent').textContent = i.assigned_agent ? who(i.assigned_agent) : '–';
  $('ws-wait').textContent = waiting(i);

  // Feed: the whole timeline, with the callback request called out.
  const req = [...state.feed].reverse().find((f) => f.kind === 'callback_requested');
  const callout = $('feed-callback');
  callout.hidden = !req;
  if (req) {
    callout.textContent = `Callback requested at ${dateTime(req.at)} for ${req.number || (cb && cb.number) || 'the caller'}.`;
  }
  const feed = [...state.feed].sort((a, b) => (tsKey(a.at) < tsKey(b.at) ? -1 : tsKey(a.at) > tsKey(b.at) ? 1 : 0));
  $('feed').replaceChildren(...feed.map((f) => {
    const li = el('li', { class: `feed-${f.kind}`, dataset: { kind: f.kind } });
    li.appendChild(el('time', { datetime: f.at }, clockTime(f.at)));
    li.appendChild(el('span', { class: 'text' }, f.text));
    li.appendChild(el('span', { class: 'kind' }, f.kind.replace(/_/g, ' ')));
    return li;
  }));

  renderProgress(i);
  renderVoicemail(i);

  const mine = i.status === 'connected' && i.assigned_agent === state.me.id;
  const closable = mine || i.status === 'open';
  $('close-btn').disabled = !closable;
  $('close-note').textContent = i.status === 'closed'
    ? 'This interaction is closed.'
    : mine ? 'Closing it hangs up the call.'
    : closable ? '' : `Only the assigned agent can close it (${notPickable(i)}).`;
}

// Whether the call is on hold now: its last hold entry is `on_hold` (from the page's Hold or a
// desk phone's).
function heldNow(feed) {
  const last = feed.filter((f) => f.kind === 'on_hold' || f.kind === 'resumed').pop();
  return !!last && last.kind === 'on_hold';
}

function renderProgress(i) {
  // Only this attempt counts: entries after the last assignment.
  let start = 0;
  state.feed.forEach((f, k) => { if (f.kind === 'assigned') start = k; });
  const recent = state.feed.slice(start);
  const done = new Set(recent.map((f) => f.kind));
  const failed = recent.filter((f) => f.kind === 'callback_failed_attempt').pop();
  const ol = $('progress');
  // A voicemail that is called back goes through the same steps as a callback.
  const steps = i.callback ? STEPS : STEPS.slice(3);
  let reached = -1;
  steps.forEach((s, k) => { if (done.has(s.kind)) reached = k; });
  ol.replaceChildren(...steps.map((s, k) => {
    const li = el('li', { class: k <= reached ? 'done' : 'todo', dataset: { step: s.kind } }, s.label);
    if (k === reached) li.setAttribute('aria-current', 'step');
    return li;
  }));
  const hung = recent.filter((f) => f.kind === 'hung_up' || f.kind === 'hung_up_on_close').pop();
  let note = '';
  if (failed) note = `Attempt failed: ${failed.text}.`;
  else if (hung) note = `${hung.text[0].toUpperCase()}${hung.text.slice(1)}.`;
  else if (i.status === 'connected' && heldNow(recent)) note = 'On hold: the customer hears hold music.';
  else if (i.status === 'connected' && reached < 0) {
    note = i.callback ? `Calling ${i.callback.number} back…` : 'Connecting the caller…';
  } else if (i.status === 'open') note = 'Not picked up.';
  $('progress-note').textContent = note;
}

// ---------- the voicemail player ----------

// The recording is fetched with the bearer token (an <audio src> cannot send it) and played
// from a Blob URL, loaded once per interaction opened and released when another is.
async function renderVoicemail(i) {
  const box = $('vm-box');
  if (!i.voicemail) {
    box.hidden = true;
    dropVoicemail();
    return;
  }
  box.hidden = false;
  if (state.voicemail && state.voicemail.id === i.id) return;
  dropVoicemail();
  state.voicemail = { id: i.id, url: null };
  $('vm-note').textContent = 'Loading the message…';
  try {
    const r = await fetch(`/api/v1/interactions/${i.id}/voicemail`, {
      headers: { Authorization: `Bearer ${state.token}` },
      cache: 'no-store',
    });
    if (!r.ok) throw new ApiError(r.status, String(r.status), r.statusText);
    const blob = await r.blob();
    if (!state.voicemail || state.voicemail.id !== i.id) return; // another one was opened
    state.voicemail.url = URL.createObjectURL(blob);
    $('vm-player').src = state.voicemail.url;
    $('vm-note').textContent = '';
  } catch (e) {
    if (state.voicemail && state.voicemail.id === i.id) state.voicemail = null;
    if (e.status === 401) { signOut('Your token is no longer valid; sign in again.'); return; }
    $('vm-note').textContent = e.status === 404
      ? 'The recording is no longer available.'
      : `The recording could not be loaded: ${e.message}`;
  }
}

function dropVoicemail() {
  const player = $('vm-player');
  player.pause();
  player.removeAttribute('src');
  if (state.voicemail && state.voicemail.url) URL.revokeObjectURL(state.voicemail.url);
  state.voicemail = null;
}

function selectTab(id, focus) {
  for (const t of document.querySelectorAll('[role="tab"]')) {
    const on = t.id === id;
    t.setAttribute('aria-selected', String(on));
    t.tabIndex = on ? 0 : -1;
    $(t.getAttribute('aria-controls')).hidden = !on;
    if (on && focus) t.focus();
  }
}

async function closeInteraction(ev) {
  ev.preventDefault();
  const i = state.current;
  if (!i) return;
  clearAlert();
  $('close-btn').disabled = true;
  try {
    const r = await api('POST', `/api/v1/interactions/${i.id}/close`, { disposition: $('disposition').value });
    upsert(r);
    state.current = r;
    announce(`Interaction ${i.id} closed.`);
    await loadWorkspace(i.id, false);
    selectTab('tab-feed', false);
  } catch (e) {
    if (e.status !== 401) showAlert(`Could not close interaction ${i.id}: ${e.message}`);
    renderWorkspace();
  }
}

// ---------- callback actions (reschedule, call again now) and notes ----------

async function workspaceAction(what, path, body) {
  const i = state.current;
  if (!i) return;
  clearAlert();
  try {
    const r = await api('POST', `/api/v1/interactions/${i.id}/${path}`, body);
    upsert(r);
    announce(`Interaction ${i.id}: ${what}.`);
    await loadWorkspace(i.id, false);
  } catch (e) {
    if (e.status !== 401) showAlert(`Could not ${what} interaction ${i.id}: ${e.message}`);
  }
}

function rescheduleInteraction(ev) {
  ev.preventDefault();
  const at = new Date($('reschedule-at').value);
  if (Number.isNaN(at.getTime())) return;
  workspaceAction('reschedule', 'reschedule', { not_before: at.toISOString() });
}

function noteInteraction(ev) {
  ev.preventDefault();
  const text = $('note-text').value.trim();
  if (!text) return;
  $('note-text').value = '';
  workspaceAction('add a note to', 'notes', { text });
}

// ---------- wiring ----------

function init() {
  $('signin-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const token = $('token').value.trim();
    if (!token) return;
    $('signin-error').textContent = '';
    try {
      await signIn(token);
    } catch (e) {
      state.token = null;
      $('signin-error').textContent = e.status === 401 ? 'That token is not valid.' : e.message;
    }
  });
  $('signout').addEventListener('click', () => signOut(''));
  $('presence').addEventListener('click', togglePresence);
  $('alert-dismiss').addEventListener('click', clearAlert);
  $('back').addEventListener('click', () => { location.hash = ''; });
  for (const id of ['f-status']) $(id).addEventListener('change', () => { render(); refreshList(); });
  for (const id of ['f-queue', 'f-type']) $(id).addEventListener('change', render);
  $('filters').addEventListener('submit', (ev) => ev.preventDefault());
  $('close-form').addEventListener('submit', closeInteraction);
  $('reschedule-form').addEventListener('submit', rescheduleInteraction);
  $('call-now-btn').addEventListener('click', () => workspaceAction('call again now', 'call_now', {}));
  $('note-form').addEventListener('submit', noteInteraction);
  const tabs = [...document.querySelectorAll('[role="tab"]')];
  for (const t of tabs) {
    t.addEventListener('click', () => selectTab(t.id, false));
    t.addEventListener('keydown', (ev) => {
      const k = tabs.indexOf(t);
      if (ev.key === 'ArrowRight' || ev.key === 'ArrowLeft') {
        ev.preventDefault();
        const n = (k + (ev.key === 'ArrowRight' ? 1 : tabs.length - 1)) % tabs.length;
        selectTab(tabs[n].id, true);
      }
    });
  }
  window.addEventListener('hashchange', () => {
    const home = !location.hash;
    route();
    if (home) $('home-title').focus();
  });
  setInterval(tick, 1000);

  const saved = sessionStorage.getItem(TOKEN_KEY);
  if (saved) {
    signIn(saved).catch((e) => signOut(e.status === 401 ? 'Your token is no longer valid; sign in again.' : e.message));
  } else {
    signOut('');
  }
}

document.addEventListener('DOMContentLoaded', init);
