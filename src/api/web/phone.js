// Hammond browser phone (issue 16): for an agent whose `endpoint = "webrtc"` the page is the
// phone. One RTCPeerConnection per call; the microphone is opened once, at sign-in. Signalling
// is the API (`/api/v1/phone`, the same bearer token); see src/rt/webrtc/mod.rs.
//
// States shown: offline (no phone stream), ready, ringing, connecting, in call, on hold,
// reconnecting (the phone stream or the call's connection dropped; it retries on its own).
'use strict';

const phone = {
  on: false, es: null, mic: null, pc: null, call: null, pushed: false, number: '',
  interaction: null, state: 'offline', since: null, muted: false, held: false,
  // A second call rung while this one is up (Hammond should not push one: the call-waiting
  // alert lets the agent decline it rather than leave it ringing unseen).
  waiting: null,
};
window.hammondPhone = phone;

const P = (id) => document.getElementById(id);

const PHONE_LABEL = {
  offline: 'Phone offline', ready: 'Ready', ringing: 'Ringing', connecting: 'Connecting…',
  incall: 'In call', hold: 'On hold', reconnecting: 'Reconnecting…', nomic: 'No microphone',
};

function phoneState(s) {
  phone.state = s;
  const e = P('phone-state');
  e.dataset.state = s;
  e.textContent = PHONE_LABEL[s] || s;
  const inCall = s === 'incall' || s === 'hold' || (s === 'reconnecting' && phone.since);
  P('phone-mute').hidden = !inCall;
  P('phone-hold').hidden = !inCall;
  P('phone-hangup').hidden = !(inCall || s === 'connecting');
  P('phone-timer').hidden = !phone.since;
}

function phoneTick() {
  if (!phone.since) return;
  const s = Math.floor((Date.now() - phone.since) / 1000);
  P('phone-timer').textContent = `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

// Called by app.js once signed in.
async function phoneStart(token, me) {
  if (me.phone !== 'webrtc' || phone.on) return;
  phone.on = true;
  phone.token = token;
  P('phone').hidden = false;
  try {
    phone.mic = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true },
    });
  } catch (e) {
    phoneState('nomic');
    if (typeof showAlert === 'function') {
      showAlert('Allow the microphone for this page to take calls here.');
    }
    phone.on = false;
    return;
  }
  phoneConnect();
}

// Called by app.js at sign-out.
function phoneStop() {
  if (phone.es) phone.es.close();
  phoneEndCall();
  if (phone.mic) phone.mic.getTracks().forEach((t) => t.stop());
  Object.assign(phone, { on: false, es: null, mic: null });
  P('phone').hidden = true;
}

function phoneConnect() {
  const es = new EventSource(`/api/v1/phone/events?access_token=${encodeURIComponent(phone.token)}`);
  phone.es = es;
  es.addEventListener('ready', () => { if (!phone.call) phoneState('ready'); });
  es.addEventListener('ringing', (m) => onRinging(JSON.parse(m.data)));
  es.addEventListener('connected', (m) => {
    const d = JSON.parse(m.data);
    if (d.call !== phone.call) return;
    phone.since = Date.now();
    phoneState('incall');
    phoneTick();
    if (typeof announce === 'function') announce('Call connected');
  });
  es.addEventListener('ended', (m) => {
    const d = JSON.parse(m.data);
    if (d.call === phone.waiting) { waitingDone(); return; }
    if (d.call !== phone.call) return;
    phoneEndCall();
    if (typeof announce === 'function') announce('Call ended');
  });
  // EventSource retries on its own; a call in progress keeps its media meanwhile.
  es.onerror = () => { if (phone.state !== 'nomic') phoneState('reconnecting'); };
  es.onopen = () => { if (!phone.call) phoneState('ready'); else if (phone.since) phoneState(phone.held ? 'hold' : 'incall'); };
}

function onRinging(d) {
  if (phone.call) { callWaiting(d); return; }
  Object.assign(phone, { call: d.call, pushed: d.pushed, number: d.number || '', interaction: d.interaction });
  if (d.interaction && typeof openWorkspace === 'function') openWorkspace(d.interaction);
  if (d.pushed) {
    phoneState('ringing');
    P('offer-text').textContent = `${d.number || 'A caller'}${d.interaction ? ` · interaction ${d.interaction}` : ''}`;
    P('offer').hidden = false;
    P('offer-accept').focus();
    if (typeof announce === 'function') announce(`Incoming call from ${d.number || 'a caller'}`);
  } else {
    phoneAnswer();
  }
}

// A call rung while the page is on another: shown, and declinable, never answered over it.
function callWaiting(d) {
  phone.waiting = d.call;
  phone.waitingRing = d;
  P('waiting-text').textContent = `${d.number || 'A caller'}${d.interaction ? ` · interaction ${d.interaction}` : ''}`;
  P('waiting').hidden = false;
  if (typeof announce === 'function') announce(`Call waiting from ${d.number || 'a caller'}`);
}

function waitingDone() {
  phone.waiting = null;
  P('waiting').hidden = true;
}

async function waitingDecline() {
  const call = phone.waiting;
  waitingDone();
  if (call) {
    try { await phoneApi(`/api/v1/phone/calls/${call}/decline`); } catch (e) { /* already over */ }
  }
}

async function phoneApi(path, body) {
  const r = await fetch(path, {
    method: 'POST',
    headers: { Authorization: `Bearer ${phone.token}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: 'no-store',
  });
  if (!r.ok) throw new Error(`HTTP ${r.status}`);
  return r.status === 204 ? null : r.json();
}

function gathered(pc) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => { if (pc.iceGatheringState === 'complete') resolve(); };
    pc.addEventListener('icegatheringstatechange', done);
    setTimeout(resolve, 2000); // host candidates are enough: Hammond is ICE-lite
  });
}

async function phoneAnswer() {
  P('offer').hidden = true;
  const call = phone.call;
  phoneState('connecting');
  const pc = new RTCPeerConnection({ iceServers: [] });
  phone.pc = pc;
  for (const t of phone.mic.getAudioTracks()) pc.addTrack(t, phone.mic);
  pc.ontrack = (e) => {
    P('phone-audio').srcObject = e.streams[0] || new MediaStream([e.track]);
  };
  pc.onconnectionstatechange = () => {
    if (pc !== phone.pc) return;
    if (pc.connectionState === 'disconnected') phoneState('reconnecting');
    if (pc.connectionState === 'connected' && phone.since) phoneState(phone.held ? 'hold' : 'incall');
  };
  try {
    await pc.setLocalDescription(await pc.createOffer());
    await gathered(pc);
    const answer = await phoneApi(`/api/v1/phone/calls/${call}/answer`, { sdp: pc.localDescription.sdp });
    if (pc !== phone.pc) return;
    await pc.setRemoteDescription(answer);
  } catch (e) {
    if (typeof showAlert === 'function') showAlert(`The call could not be answered: ${e.message}`);
    if (pc === phone.pc) phoneHangUp();
  }
}

async function phoneDecline() {
  const call = phone.call;
  phoneEndCall();
  try { await phoneApi(`/api/v1/phone/calls/${call}/decline`); } catch (e) { /* already over */ }
}

async function phoneHangUp() {
  const call = phone.call;
  phoneEndCall();
  if (call) {
    try { await phoneApi(`/api/v1/phone/calls/${call}/hangup`); } catch (e) { /* already over */ }
  }
}

function phoneEndCall() {
  if (phone.pc) phone.pc.close();
  Object.assign(phone, { pc: null, call: null, since: null, held: false, muted: false });
  P('offer').hidden = true;
  P('phone-audio').srcObject = null;
  P('phone-audio').muted = false;
  if (phone.mic) phone.mic.getAudioTracks().forEach((t) => { t.enabled = true; });
  P('phone-mute').setAttribute('aria-pressed', 'false');
  P('phone-mute').textContent = 'Mute';
  P('phone-hold').setAttribute('aria-pressed', 'false');
  P('phone-hold').textContent = 'Hold';
  P('phone-timer').textContent = '0:00';
  if (phone.on) phoneState(phone.es && phone.es.readyState === EventSource.OPEN ? 'ready' : 'reconnecting');
  // A call still waiting rings as an ordinary offer now the line is free.
  if (phone.waiting && phone.on) {
    const d = phone.waitingRing;
    waitingDone();
    onRinging(d);
  }
}

function micEnabled() {
  return !phone.muted && !phone.held;
}

function phoneMute() {
  phone.muted = !phone.muted;
  phone.mic.getAudioTracks().forEach((t) => { t.enabled = micEnabled(); });
  P('phone-mute').setAttribute('aria-pressed', String(phone.muted));
  P('phone-mute').textContent = phone.muted ? 'Unmute' : 'Mute';
}

// Hold is Hammond's: the customer hears the queue's hold music and the agent nothing until
// Resume (the page's microphone is off meanwhile too).
async function phoneHold() {
  const call = phone.call;
  const held = !phone.held;
  if (!call) return;
  try {
    await phoneApi(`/api/v1/phone/calls/${call}/${held ? 'hold' : 'resume'}`);
  } catch (e) {
    if (typeof showAlert === 'function') showAlert(`The call could not be ${held ? 'put on hold' : 'resumed'}: ${e.message}`);
    return;
  }
  if (call !== phone.call) return;
  phone.held = held;
  phone.mic.getAudioTracks().forEach((t) => { t.enabled = micEnabled(); });
  P('phone-audio').muted = phone.held;
  P('phone-hold').setAttribute('aria-pressed', String(phone.held));
  P('phone-hold').textContent = phone.held ? 'Resume' : 'Hold';
  phoneState(phone.held ? 'hold' : 'incall');
  if (typeof announce === 'function') announce(phone.held ? 'Call on hold' : 'Call resumed');
}

document.addEventListener('DOMContentLoaded', () => {
  P('offer-accept').addEventListener('click', phoneAnswer);
  P('offer-decline').addEventListener('click', phoneDecline);
  P('phone-hangup').addEventListener('click', phoneHangUp);
  P('phone-mute').addEventListener('click', phoneMute);
  P('phone-hold').addEventListener('click', phoneHold);
  P('waiting-decline').addEventListener('click', waitingDecline);
  setInterval(phoneTick, 1000);
});
