//! One inbound call, from INVITE to settled interaction: the call's lifecycle lives here.
//!
//! ```text
//!  IncomingCall ─► SDP offer negotiated (488 if no common codec) ─► RTP port bound
//!      ─► interaction created (open) ─► 180 Ringing for the queue's ring_before_answer
//!      ─► 200 OK + SDP answer ─► media loop: 20 ms packets, DTMF, the workflow engine
//!      ─► BYE (either side) ─► interaction settled (open/callback, closed abandoned, …)
//! ```
//!
//! The task owns its RTP socket, its [`MediaLeg`] and its workflow [`Engine`]; it talks to the
//! SIP user agent through [`UaHandle`] commands and receives its SIP events on a channel. Store
//! writes go through a per-call [`StoreWorker`] so a slow fsync never delays an RTP packet,
//! while keeping the writes in order.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tracing::{Instrument, debug, info, info_span, warn};

use super::live::{CallCommand, OfferOutcome};
use super::media_worker::Stream;
use super::outbound::{DialSpec, OutboundLeg};
use super::services::Services;
use super::store_worker::{StoreJob, StoreReply, StoreWorker};
use crate::clock;
use crate::interaction::{Event as Lifecycle, HangupBy, Interaction, InteractionId, Note};
use crate::media::bridge::{Leg as Side, Relay};
use crate::media::leg::{MAX_PACKET, MediaEvent, MediaLeg};
use crate::media::player::Item;
use crate::media::sdp::{self, LocalMedia, LocalOrigin, SessionDescription};
use crate::pii::Pii;
use crate::rt::connected::{HangupRequest, hang_up_requested};
use crate::sip::msg::{HeaderViews, Request};
use crate::sip::ua::{CallId, Command, EndReason, SipEvent};
use crate::workflow::engine::{Action, CallContext, Engine, HangupReason, PlayItem, WfEvent};
use crate::workflow::flow::Flow;

/// What the call manager hands a new call task.
pub struct IncomingCall {
    pub call: CallId,
    pub invite: Request,
    pub source: SocketAddr,
    pub flow: Arc<Flow>,
}

/// Spawn the task for one inbound call, inside its own span.
pub fn spawn(svc: Arc<Services>, inc: IncomingCall, events: mpsc::UnboundedReceiver<SipEvent>) {
    let span = info_span!(
        "call",
        call.id = %inc.invite.call_id().unwrap_or_default(),
        queue = %inc.flow.name,
        interaction = tracing::field::Empty,
    );
    tokio::spawn(run(svc, inc, events).instrument(span));
}

/// The caller's number as the PBX presented it: digits and a leading `+` of the From user.
pub fn caller_number(invite: &Request) -> String {
    let user = invite
        .from_hdr()
        .and_then(|f| f.uri.user_decoded())
        .unwrap_or_default();
    let mut out = String::new();
    for (i, c) in user.chars().enumerate() {
        if c.is_ascii_digit() || (c == '+' && i == 0) {
            out.push(c);
        }
    }
    out
}

async fn run(svc: Arc<Services>, inc: IncomingCall, mut events: mpsc::UnboundedReceiver<SipEvent>) {
    let _active = svc.track();
    let call = inc.call;
    let number = caller_number(&inc.invite);
    info!(from = %Pii(&number), source = %inc.source, "call started");

    // Offer/answer first: a call we cannot talk to is refused before anything is stored.
    let offer = std::str::from_utf8(&inc.invite.body)
        .ok()
        .filter(|b| !b.trim().is_empty())
        .and_then(|b| SessionDescription::parse(b).ok());
    let Some(offer) = offer else {
        info!("call ended: no usable SDP offer (488)");
        svc.ua.send(Command::Reject { call, status: 488 });
        return;
    };
    // The media clock sends and receives on this socket while the caller is in the workflow.
    let send_sock = match svc.ports.bind() {
        Ok(s) => s,
        Err(e) => {
            warn!(error = %e, "call ended: no RTP port (503)");
            svc.ua.send(Command::Reject { call, status: 503 });
            return;
        }
    };
    let local_port = send_sock.local_addr().map(|a| a.port()).unwrap_or_default();
    let local = svc.local_media(local_port);
    let mut origin = LocalOrigin::new(&mut svc.ids());
    let negotiated = match sdp::negotiate(&offer, &local, &mut origin) {
        Ok(n) => n,
        Err(e) => {
            info!(reason = %e, "call ended: SDP not acceptable (488)");
            svc.ua.send(Command::Reject { call, status: 488 });
            return;
        }
    };

    let created = svc
        .store
        .create(Interaction::inbound(&inc.flow.name, &number, clock::wall()))
        .await;
    let interaction = match created {
        Ok(i) => i,
        Err(e) => {
            warn!(error = %e, "call ended: store unavailable (500)");
            svc.ua.send(Command::Reject { call, status: 500 });
            return;
        }
    };
    tracing::Span::current().record("interaction", interaction.id);
    let mut store = StoreWorker::spawn(svc.store.clone(), interaction.id);

    // Ring, and let the caller cancel while it rings.
    svc.ua.send(Command::Ring { call });
    let ring = tokio::time::sleep(inc.flow.ring_before_answer);
    tokio::pin!(ring);
    loop {
        tokio::select! {
            () = &mut ring => break,
            ev = events.recv() => match ev {
                Some(SipEvent::CallCancelled { .. } | SipEvent::CallEnded { .. }) | None => {
                    store.send(StoreJob::Apply(ended(HangupBy::Caller, false, false, "ringing")));
                    store.finish().await;
                    info!("call ended: cancelled while ringing");
                    return;
                }
                Some(other) => debug!(event = ?other, "ignored while ringing"),
            },
        }
    }
    svc.ua.send(Command::Answer {
        call,
        sdp: negotiated.answer_sdp.clone().into_bytes(),
    });
    let started = clock::now();
    let mut c = ActiveCall {
        svc: svc.clone(),
        call,
        interaction: interaction.id,
        stream: Stream::new(MediaLeg::new(
            started,
            &mut svc.ids(),
            &negotiated,
            svc.prompts.clone(),
            Some(svc.cfg.media.rtp_timeout),
        )),
        send_sock: Some(send_sock),
        engine: Engine::new(
            inc.flow.clone(),
            CallContext {
                caller_number: (!number.is_empty()).then(|| number.clone()),
                started_wall: clock::wall(),
            },
            started,
        ),
        flow: inc.flow.clone(),
        store,
        bridge_sock: None,
        local,
        origin,
        had_callback: false,
        recording: false,
        recording_until: None,
        hangup_sent: false,
        end: None,
        transfer_target: None,
        left_voicemail: false,
        commands: svc
            .live
            .register(interaction.id, &inc.flow.name, interaction.created_at),
        peer: None,
        relay: None,
        connected_agent: None,
        pending_transfer_dial: false,
        bridged_at: None,
        ended_during: None,
        closing: None,
    };
    c.engine.handle_event(started, WfEvent::Answered);
    let outcome = c.media_loop(&mut events).await;
    c.settle(outcome).await;
}

/// How the call ended, for the interaction and the log line.
#[derive(Debug, Clone)]
enum Outcome {
    CallerHungUp,
    /// The agent (or the transfer target we bridged to) hung up.
    PeerHungUp,
    WorkflowHungUp(HangupReason),
    Transferred(String),
    MediaTimeout,
    AckTimeout,
    Shutdown,
    /// The agent closed the (connected) interaction through the API.
    ClosedByAgent,
}

struct ActiveCall {
    svc: Arc<Services>,
    call: CallId,
    interaction: InteractionId,
    /// The caller's media: the media clock sends its frames and feeds it what arrives.
    stream: Arc<Stream>,
    /// The caller's RTP socket, until the media clock takes it.
    send_sock: Option<std::net::UdpSocket>,
    engine: Engine,
    flow: Arc<Flow>,
    store: StoreWorker,
    /// The caller's RTP socket once bridged: this task relays (the media clock let go of it).
    bridge_sock: Option<UdpSocket>,
    local: LocalMedia,
    origin: LocalOrigin,
    had_callback: bool,
    /// A voicemail is being recorded (the leg keeps the caller's audio until it ends).
    recording: bool,
    recording_until: Option<Instant>,
    hangup_sent: bool,
    end: Option<Outcome>,
    /// Where the workflow sent the caller, once a transfer started.
    transfer_target: Option<String>,
    left_voicemail: bool,
    /// The workflow step the caller was in when the call ended (for the feed: the engine is
    /// already finished by the time the call settles).
    ended_during: Option<&'static str>,
    /// Commands from the router (offers to agents).
    commands: mpsc::UnboundedReceiver<CallCommand>,
    /// A second leg we dialled for this caller (an agent, or a transfer target that the PBX
    /// would not take by REFER), ringing or bridged.
    peer: Option<PeerLeg>,
    /// Set once the caller is bridged to `peer`: prompts stop, packets are relayed.
    relay: Option<Relay>,
    /// The agent the caller is connected to, for settling.
    connected_agent: Option<String>,
    /// The PBX refused our REFER: dial the target from the media loop (it needs an await).
    pending_transfer_dial: bool,
    /// When the caller was bridged to an agent (talk time for estimated waits).
    bridged_at: Option<Instant>,
    /// Once bridged to an agent: the agent closing the interaction hangs up.
    closing: Option<HangupRequest>,
}

/// Why we dialled a second leg.
#[derive(Debug, Clone)]
enum Purpose {
    Agent(String),
    Transfer(String),
}

struct PeerLeg {
    leg: OutboundLeg,
    purpose: Purpose,
    /// Give up ringing at this time.
    deadline: Instant,
    /// Tell the router how its offer ended.
    done: Option<tokio::sync::oneshot::Sender<OfferOutcome>>,
}

/// What happened on the peer leg.
enum PeerInput {
    Sip(Option<SipEvent>),
    Packet(usize, std::net::SocketAddr),
    RingTimeout,
}

/// Room for one received datagram on a bridged leg.
const RECV_BUF: usize = 2048;

/// The next datagram on `sock`; pends forever when there is no socket (or it fails).
async fn recv_from(sock: Option<&UdpSocket>, buf: &mut [u8]) -> (usize, std::net::SocketAddr) {
    match sock {
        Some(sock) => match sock.recv_from(buf).await {
            Ok(r) => r,
            Err(_) => std::future::pending().await,
        },
        None => std::future::pending().await,
    }
}

/// The next input from the peer leg; pends forever when there is none.
async fn peer_next(peer: &mut Option<PeerLeg>, buf: &mut [u8]) -> PeerInput {
    let Some(p) = peer.as_mut() else {
        return std::future::pending().await;
    };
    let ringing = p.leg.session.is_none();
    tokio::select! {
        ev = p.leg.events.recv() => PeerInput::Sip(ev),
        r = p.leg.sock.recv_from(buf) => match r {
            Ok((n, from)) => PeerInput::Packet(n, from),
            Err(_) => std::future::pending().await,
        },
        () = tokio::time::sleep_until(p.deadline.into()), if ringing => PeerInput::RingTimeout,
    }
}

impl ActiveCall {
    async fn media_loop(&mut self, events: &mut mpsc::UnboundedReceiver<SipEvent>) -> Outcome {
        let mut out = [0u8; MAX_PACKET];
        // Receive buffers, only while a second leg exists (most calls never have one).
        let mut inb = Vec::new();
        let mut pbuf = Vec::new();
        // One timer for everything this call waits for (the next 20 ms frame, the workflow's
        // next deadline, the end of a recording), reset only when the earliest one moves:
        // a timer per deadline per frame costs more than the frame itself at a thousand calls.
        let timer = tokio::time::sleep_until(clock::now().into());
        tokio::pin!(timer);
        let stream = self.stream.clone();
        let news = stream.news();
        tokio::pin!(news);
        loop {
            self.drain().await;
            // The first prompt is queued: start the clock, so the first packet is speech.
            if let Some(sock) = self.send_sock.take() {
                self.svc.media.start_stream(&self.stream, sock);
            }
            if self.peer.is_some() && pbuf.is_empty() {
                pbuf.resize(RECV_BUF, 0);
                inb.resize(RECV_BUF, 0);
            }
            if std::mem::take(&mut self.pending_transfer_dial) {
                self.dial_transfer_target().await;
            }
            if let Some(o) = self.end.clone()
                && !self.hangup_sent
            {
                return o;
            }
            let bridged = self.relay.is_some();
            let next = [
                self.stream.leg().session_timeout(),
                if bridged {
                    None
                } else {
                    self.engine.poll_timeout()
                },
                self.recording_until,
            ]
            .into_iter()
            .flatten()
            .min();
            let armed = next.is_some();
            if let Some(at) = next
                && timer.deadline() != at.into()
            {
                timer.as_mut().reset(at.into());
            }
            tokio::select! {
                biased;
                ev = events.recv() => match ev {
                    Some(ev) => if let Some(o) = self.on_sip(ev) { return o; },
                    None => return Outcome::Shutdown,
                },
                (n, from) = recv_from(self.bridge_sock.as_ref(), &mut inb) => {
                    self.relay_packet(Side::A, from, &inb[..n], &mut out).await;
                },
                () = &mut news => news.set(stream.news()),
                input = peer_next(&mut self.peer, &mut pbuf) => {
                    if let Some(o) = self.on_peer(input, &pbuf, &mut out).await {
                        return o;
                    }
                }
                Some(cmd) = self.commands.recv() => self.on_command(cmd).await,
                () = hang_up_requested(self.closing.as_ref()) => {
                    info!("the agent closed the interaction; hanging up");
                    self.closing = None;
                    // The agent's phone at once: no more audio relayed while the caller's BYE
                    // is answered.
                    if let Some(p) = self.peer.as_mut() {
                        p.leg.hang_up();
                    }
                    self.hang_up(Outcome::ClosedByAgent);
                }
                Some(reply) = self.store.replies.recv() => self.on_store(reply),
                () = &mut timer, if armed => self.on_timer(clock::now()),
            }
        }
    }

    /// Whatever deadlines are due: the media leg's (frames are sent by the loop), the
    /// workflow's, the end of a recording. Calling it early is harmless.
    fn on_timer(&mut self, now: Instant) {
        self.stream.leg().handle_timeout(now);
        if self.relay.is_none() && self.engine.poll_timeout().is_some_and(|t| t <= now) {
            self.engine.handle_timeout(now);
        }
        if self.recording_until.is_some_and(|t| t <= now) {
            self.recording_until = None;
            self.finish_recording();
        }
    }

    /// Move events between the media leg and the engine, and carry out the engine's actions.
    async fn drain(&mut self) {
        loop {
            let now = clock::now();
            let mut progressed = false;
            loop {
                let next = self.stream.leg().poll_event();
                let Some(ev) = next else { break };
                progressed = true;
                match ev {
                    MediaEvent::DigitReceived { digit, method } => {
                        info!(digit = %digit, method = method.as_str(), "key pressed");
                        crate::metrics::dtmf_digit(method);
                        self.store.send(StoreJob::Apply(Lifecycle::Dtmf {
                            digit: digit.as_char(),
                            method,
                        }));
                        self.engine
                            .handle_event(now, WfEvent::Digit(digit.as_char()));
                    }
                    MediaEvent::PlaybackFinished => {
                        self.engine.handle_event(now, WfEvent::PlaybackFinished)
                    }
                    MediaEvent::Inactive => {
                        warn!("no RTP from the caller for the inactivity timeout; hanging up");
                        self.hang_up(Outcome::MediaTimeout);
                    }
                }
            }
            while let Some(action) = self.engine.poll_action() {
                progressed = true;
                self.on_action(now, action);
            }
            if !progressed {
                return;
            }
        }
    }

    fn on_action(&mut self, now: Instant, action: Action) {
        match action {
            Action::EnterWorkflow => self.store.send(StoreJob::Apply(Lifecycle::EnteredWorkflow)),
            Action::Play { items, .. } => {
                let mut leg = self.stream.leg();
                let player = leg.player();
                player.stop();
                for item in items {
                    let r = match item {
                        PlayItem::Prompt(id) => player.enqueue_id(&id),
                        PlayItem::Digits(d) => player.enqueue(Item::Digits(d)),
                        PlayItem::Silence(d) => player.enqueue(Item::Silence {
                            frames: u32::try_from(d.as_millis() / 20).unwrap_or(u32::MAX),
                        }),
                    };
                    if let Err(e) = r {
                        warn!(error = %e, "prompt not playable");
                    }
                }
            }
            Action::StopPlayback => self.stream.leg().player().stop(),
            Action::StartMusic => {
                let music = self.svc.prompts.get(&self.flow.hold_music);
                let mut leg = self.stream.leg();
                let player = leg.player();
                player.stop();
                if let Some(p) = music {
                    let _ = player.enqueue(Item::Loop(p));
                }
            }
            Action::QueryQueueStatus => self.store.send(StoreJob::QueueStatus {
                queue: self.flow.name.clone(),
            }),
            Action::RequestCallback { number, not_before } => {
                info!(number = %Pii(&number), "callback requested");
                self.store.send(StoreJob::RequestCallback {
                    queue: self.flow.name.clone(),
                    number,
                    not_before,
                    max_per_day: self.flow.callback.max_per_day,
                });
            }
            Action::Transfer { target } => {
                info!(target = %target, "transferring (REFER)");
                self.transfer_target = Some(target.clone());
                self.svc.ua.send(Command::Refer {
                    call: self.call,
                    target,
                });
            }
            Action::StartRecording { max } => {
                self.stream.leg().set_capture(true);
                self.recording = true;
                self.recording_until = Some(now + max);
            }
            Action::StopRecording => self.finish_recording(),
            Action::Hangup { reason } => {
                info!(reason = ?reason, "workflow hangs up");
                self.hang_up(Outcome::WorkflowHungUp(reason));
            }
            Action::Log(step) => self.store.send(StoreJob::Step(step)),
        }
    }

    fn on_sip(&mut self, ev: SipEvent) -> Option<Outcome> {
        let now = clock::now();
        match ev {
            SipEvent::CallEnded { reason, .. } => {
                self.ended_during = Some(self.engine.step_name());
                self.engine.handle_event(now, WfEvent::Hangup);
                let outcome = match (self.end.take(), reason) {
                    (Some(o), _) => o,
                    (None, EndReason::AckTimeout) => Outcome::AckTimeout,
                    (None, _) => Outcome::CallerHungUp,
                };
                return Some(outcome);
            }
            SipEvent::InfoReceived {
                content_type, body, ..
            } => {
                self.stream.leg().handle_info(now, &content_type, &body);
            }
            SipEvent::ReInvite { sdp, .. } => {
                let answer = self.renegotiate(now, &sdp);
                self.svc.ua.send(Command::AnswerReInvite {
                    call: self.call,
                    sdp: answer.into_bytes(),
                });
            }
            SipEvent::ReferResponse { status, .. } => {
                if !(200..300).contains(&status) {
                    info!(
                        status,
                        "the PBX refused REFER; dialling the transfer target ourselves"
                    );
                    self.pending_transfer_dial = true;
                }
            }
            SipEvent::ReferNotify { status, .. } => {
                if (200..300).contains(&status) {
                    let target = self.transfer_target.clone().unwrap_or_default();
                    self.hang_up(Outcome::Transferred(target));
                } else if status >= 300 {
                    self.engine.handle_event(now, WfEvent::TransferFailed);
                }
            }
            SipEvent::CallConfirmed { .. }
            | SipEvent::CallCancelled { .. }
            | SipEvent::IncomingCall { .. }
            | SipEvent::Progress { .. }
            | SipEvent::Answered { .. }
            | SipEvent::Failed { .. } => {}
        }
        None
    }

    fn on_store(&mut self, reply: StoreReply) {
        let now = clock::now();
        match reply {
            StoreReply::CallbackStored => {
                self.had_callback = true;
                // Booked for later: no longer a live caller for the router to offer.
                self.svc.live.remove(self.interaction);
                self.engine.handle_event(now, WfEvent::CallbackStored);
            }
            StoreReply::CallbackRefused(r) => {
                self.engine.handle_event(now, WfEvent::CallbackRefused(r))
            }
            StoreReply::QueueStatus { position } => {
                let estimated_wait = self.svc.estimated_wait(&self.flow.name, position);
                self.engine.handle_event(
                    now,
                    WfEvent::QueueStatus {
                        position,
                        estimated_wait,
                    },
                );
            }
        }
    }

    /// Answer a re-INVITE with the session as it now is (hold, unhold, a new address).
    fn renegotiate(&mut self, now: Instant, sdp: &[u8]) -> String {
        let offer = std::str::from_utf8(sdp)
            .ok()
            .and_then(|s| SessionDescription::parse(s).ok());
        match offer.map(|o| sdp::negotiate(&o, &self.local, &mut self.origin)) {
            Some(Ok(n)) => {
                self.stream.leg().renegotiate(now, &n);
                n.answer_sdp
            }
            // No offer in the re-INVITE (or one we cannot take): repeat the current session.
            _ => {
                let codec = self.stream.leg().session().codec();
                current_answer(&self.local, &mut self.origin, codec)
            }
        }
    }

    fn finish_recording(&mut self) {
        if !std::mem::take(&mut self.recording) {
            return;
        }
        let samples = {
            let mut leg = self.stream.leg();
            let samples = leg.take_audio();
            leg.set_capture(false);
            samples
        };
        let dir = self.svc.cfg.data_dir.join("voicemail");
        let path = dir.join(format!("{}.wav", self.interaction));
        self.left_voicemail = !samples.is_empty();
        self.store.send(StoreJob::Voicemail { path, samples });
        self.engine
            .handle_event(clock::now(), WfEvent::RecordingFinished);
    }

    /// An offer from the router: ring the agent while the caller keeps waiting.
    async fn on_command(&mut self, cmd: CallCommand) {
        match cmd {
            CallCommand::Offer {
                agent,
                ring_timeout,
                done,
            } => {
                let waiting = matches!(
                    self.engine.step_name(),
                    "waiting" | "menu" | "position announcement" | "waiting to enter the workflow"
                );
                if !waiting || self.peer.is_some() || self.end.is_some() || self.had_callback {
                    let _ = done.send(OfferOutcome::Unavailable);
                    return;
                }
                let Some((uri, hop)) = super::callback_task::agent_target(&agent.endpoint).await
                else {
                    let _ = done.send(OfferOutcome::NotAnswered);
                    return;
                };
                let spec = DialSpec {
                    target: uri,
                    next_hop: hop,
                    from_user: self.svc.caller_id_for(&self.flow.name),
                    extra_headers: vec![(
                        "Call-Info".into(),
                        "<sip:hammond>;answer-after=0".into(),
                    )],
                    credentials: None,
                };
                match OutboundLeg::dial(&self.svc, spec).await {
                    Ok(leg) => {
                        info!(agent = %agent.id, "offering the caller to an agent");
                        self.peer = Some(PeerLeg {
                            leg,
                            purpose: Purpose::Agent(agent.id),
                            deadline: clock::now() + ring_timeout,
                            done: Some(done),
                        });
                    }
                    Err(_) => {
                        let _ = done.send(OfferOutcome::NotAnswered);
                    }
                }
            }
        }
    }

    /// The PBX would not transfer by REFER: call the target ourselves and bridge (RFC 3515's
    /// fallback in practice).
    async fn dial_transfer_target(&mut self) {
        let target = self.transfer_target.clone().unwrap_or_default();
        let dialled = match super::callback_task::agent_target(&target).await {
            Some((uri, hop)) => OutboundLeg::dial(
                &self.svc,
                DialSpec {
                    target: uri,
                    next_hop: hop,
                    from_user: self.svc.caller_id_for(&self.flow.name),
                    extra_headers: Vec::new(),
                    credentials: None,
                },
            )
            .await
            .ok(),
            None => None,
        };
        match dialled {
            Some(leg) => {
                let ring = self.flow.callback.retry.ring_timeout;
                self.peer = Some(PeerLeg {
                    leg,
                    purpose: Purpose::Transfer(target),
                    deadline: clock::now() + ring,
                    done: None,
                });
            }
            None => self
                .engine
                .handle_event(clock::now(), WfEvent::TransferFailed),
        }
    }

    /// Something happened on the peer leg.
    async fn on_peer(&mut self, input: PeerInput, buf: &[u8], out: &mut [u8]) -> Option<Outcome> {
        let now = clock::now();
        match input {
            PeerInput::Packet(n, from) => {
                if self.relay.is_some() {
                    self.relay_packet(Side::B, from, &buf[..n], out).await;
                }
                None
            }
            PeerInput::Sip(Some(SipEvent::Answered { sdp, .. })) => {
                let p = self.peer.as_mut()?;
                if let Err(e) = p.leg.answered(now, &sdp) {
                    warn!(error = %e, "peer's SDP answer unusable");
                }
                self.stream.leg().player().stop();
                // From now on this task relays the caller's stream, not the media clock.
                self.bridge_sock = match self.send_sock.take() {
                    Some(sock) => Some(sock),
                    None => self.svc.media.detach(&self.stream).await,
                }
                .and_then(|sock| UdpSocket::from_std(sock).ok());
                let p = self.peer.as_mut()?;
                self.relay = Some(Relay::new());
                match &p.purpose {
                    Purpose::Agent(agent) => {
                        info!(agent = %agent, "agent answered; caller bridged");
                        self.connected_agent = Some(agent.clone());
                        self.bridged_at = Some(now);
                        self.closing = Some(self.svc.connected.register(self.interaction));
                        self.store.send(StoreJob::Apply(Lifecycle::OfferedLive {
                            agent: agent.clone(),
                        }));
                        self.store.send(StoreJob::Apply(Lifecycle::Bridged));
                    }
                    Purpose::Transfer(target) => {
                        info!(target = %target, "transfer target answered; caller bridged");
                        self.store
                            .send(StoreJob::Apply(Lifecycle::Note(Note::TransferBridged {
                                to: target.clone(),
                            })));
                    }
                }
                if let Some(done) = p.done.take() {
                    let _ = done.send(OfferOutcome::Bridged);
                }
                None
            }
            PeerInput::Sip(Some(SipEvent::Failed { status, .. })) => {
                self.peer_failed(Some(status));
                None
            }
            PeerInput::RingTimeout => {
                if let Some(p) = self.peer.as_mut() {
                    p.leg.hang_up();
                }
                self.peer_failed(None);
                None
            }
            PeerInput::Sip(Some(SipEvent::CallEnded { .. }) | None) => {
                if let Some(p) = self.peer.as_mut() {
                    p.leg.mark_ended();
                }
                if self.relay.is_some() {
                    self.hang_up(Outcome::PeerHungUp);
                    None
                } else {
                    self.peer_failed(None);
                    None
                }
            }
            PeerInput::Sip(Some(_)) => None,
        }
    }

    /// The peer leg did not come up: the caller stays in the workflow.
    fn peer_failed(&mut self, status: Option<u16>) {
        let Some(mut p) = self.peer.take() else {
            return;
        };
        p.leg.mark_ended();
        match p.purpose {
            Purpose::Agent(agent) => {
                info!(agent = %agent, status, "agent did not answer the offer");
                if let Some(done) = p.done.take() {
                    let _ = done.send(OfferOutcome::NotAnswered);
                }
            }
            Purpose::Transfer(target) => {
                info!(target = %target, status, "transfer target not reached");
                self.engine
                    .handle_event(clock::now(), WfEvent::TransferFailed);
            }
        }
    }

    /// Relay one packet between the caller (A) and the peer (B), in the receiver's stream.
    async fn relay_packet(
        &mut self,
        side: Side,
        from: std::net::SocketAddr,
        bytes: &[u8],
        out: &mut [u8],
    ) {
        let now = clock::now();
        let (Some(relay), Some(peer)) = (self.relay.as_mut(), self.peer.as_mut()) else {
            return;
        };
        let Some(peer_session) = peer.leg.session.as_mut() else {
            return;
        };
        // The caller's leg is locked only while the packet is rewritten, never across the send.
        let (n, dest) = {
            let mut caller_leg = self.stream.leg();
            let caller_session = caller_leg.session_mut();
            let (src, dst) = match side {
                Side::A => (caller_session, peer_session),
                Side::B => (peer_session, caller_session),
            };
            let Ok(inbound) = src.accept(now, from, bytes) else {
                return;
            };
            let Ok(n) = relay.forward(side, &inbound, src, dst, out) else {
                return;
            };
            let Some(dest) = dst.destination() else {
                return;
            };
            (n, dest)
        };
        let sock = match side {
            Side::A => &peer.leg.sock,
            Side::B => match &self.bridge_sock {
                Some(sock) => sock,
                None => return,
            },
        };
        let _ = sock.send_to(&out[..n], dest).await;
    }

    fn hang_up(&mut self, outcome: Outcome) {
        if self.end.is_none() {
            self.end = Some(outcome);
            self.hangup_sent = true;
            self.svc.ua.send(Command::Hangup { call: self.call });
        }
    }

    /// Write how the call ended, then wait for the store to have it.
    async fn settle(mut self, outcome: Outcome) {
        if self.recording {
            self.finish_recording();
        }
        let during = self
            .ended_during
            .unwrap_or_else(|| self.engine.step_name())
            .to_owned();
        self.svc.live.remove(self.interaction);
        let (counters, skipped) = {
            let leg = self.stream.leg();
            (leg.session().counters(), leg.frames_skipped())
        };
        crate::metrics::rtp_late(counters.late, skipped);
        if let Some(at) = self.bridged_at {
            self.svc.record_handling(&self.flow.name, clock::now() - at);
        }
        if let Some(mut p) = self.peer.take() {
            p.leg.hang_up();
        }
        let event = match &outcome {
            // The interaction is closed already: only the feed hears how the call ended.
            Outcome::ClosedByAgent => Lifecycle::Note(Note::HungUpOnClose),
            // Bridged to a transfer target we dialled ourselves.
            _ if self.relay.is_some() && self.connected_agent.is_none() => Lifecycle::Transferred {
                to: self.transfer_target.clone().unwrap_or_default(),
            },
            _ if self.connected_agent.is_some() => Lifecycle::HungUp {
                by: if matches!(outcome, Outcome::PeerHungUp) {
                    HangupBy::Agent
                } else {
                    HangupBy::Caller
                },
            },
            Outcome::Transferred(to) => Lifecycle::Transferred { to: to.clone() },
            Outcome::PeerHungUp => Lifecycle::Transferred {
                to: self.transfer_target.clone().unwrap_or_default(),
            },
            Outcome::WorkflowHungUp(reason) => {
                debug!(reason = ?reason, "workflow ended the call");
                ended(
                    HangupBy::Hammond,
                    self.had_callback,
                    self.left_voicemail,
                    &during,
                )
            }
            Outcome::CallerHungUp
            | Outcome::MediaTimeout
            | Outcome::AckTimeout
            | Outcome::Shutdown => ended(
                HangupBy::Caller,
                self.had_callback,
                self.left_voicemail,
                &during,
            ),
        };
        self.store.send(StoreJob::Apply(event));
        self.store.finish().await;
        info!(outcome = ?outcome, callback = self.had_callback, "call ended");
    }
}

fn ended(by: HangupBy, had_callback: bool, voicemail: bool, during: &str) -> Lifecycle {
    Lifecycle::CallEnded {
        by,
        had_callback,
        voicemail,
        during: Some(during.to_owned()),
    }
}

/// An SDP describing our current session, for a re-INVITE without an offer (§14.2).
fn current_answer(
    local: &LocalMedia,
    origin: &mut LocalOrigin,
    codec: crate::media::Codec,
) -> String {
    let mut only = local.clone();
    only.codecs = vec![codec];
    sdp::build_offer(&only, origin).sdp().to_owned()
}
