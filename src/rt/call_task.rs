//! The driver of one inbound call: it moves SIP, media, store, router and close events into
//! the pure [`InboundCall`] and carries out its commands. What the caller hears, when the call
//! is answered, bridged or hung up, and how the interaction settles are decided in
//! `call::inbound`.
//!
//! Before the core starts, the driver takes what the call needs to exist at all: a usable SDP
//! offer (488 otherwise) and an RTP port (503 otherwise), so nothing is stored for a call that
//! cannot talk.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use tracing::{Instrument, info, info_span, warn};

use super::call_legs::{Happened, Leg, Legs, PhoneContext};
use super::callback_task::sleep_until;
use super::connected::HangupRequest;
use super::live::{CallCommand, CallOver};
use super::media_worker::Stream;
use super::services::Services;
use super::store_worker::{StoreJob, StoreReply as WorkerReply, StoreWorker};
use crate::call::inbound::{InboundCall, ReferProgress};
use crate::call::{Command, LegEvent, LegId, OfferOutcome, RouterNote, StoreOp, StoreReply};
use crate::clock;
use crate::interaction::{Interaction, InteractionId};
use crate::media::leg::{MediaEvent, MediaLeg};
use crate::media::sdp::{
    self, LocalMedia, LocalOrigin, Negotiated, SessionDescription, SrtpPolicy,
};
use crate::pii::Pii;
use crate::queue::agent::Presence;
use crate::sip::msg::{HeaderViews, Request};
use crate::sip::ua::{CallId, Command as Sip, SipEvent};
use crate::workflow::flow::Flow;

/// The longest a new call waits for the store to create its interaction: past it the PBX hears
/// 500 rather than ringing for ever.
const CREATE_TIMEOUT: Duration = Duration::from_secs(5);

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

async fn run(svc: Arc<Services>, inc: IncomingCall, events: mpsc::UnboundedReceiver<SipEvent>) {
    let _active = svc.track();
    let call = inc.call;
    let number = caller_number(&inc.invite);
    info!(from = %Pii(&number), source = %inc.source, "call started");
    let media = match CallerMedia::prepare(&svc, &inc.invite) {
        Ok(m) => m,
        Err(status) => {
            svc.ua.send(Sip::Reject { call, status });
            return;
        }
    };
    let mut legs = Legs::default();
    legs.insert(Leg::inbound(call, events));
    let mut d = Driver {
        core: InboundCall::new(inc.flow.clone(), number.clone(), clock::wall()),
        call,
        number,
        flow: inc.flow,
        legs,
        media,
        interaction: None,
        created_at: None,
        store: None,
        commands: None,
        closing: None,
        offer: None,
        on_call: None,
        svc,
    };
    d.run().await;
}

/// The caller's side of the media: negotiated before anything is stored.
struct CallerMedia {
    negotiated: Negotiated,
    local: LocalMedia,
    origin: LocalOrigin,
    /// The RTP socket, until the ACK hands it to the media clock.
    sock: Option<std::net::UdpSocket>,
}

impl CallerMedia {
    /// The caller's offer negotiated and an RTP port bound; `Err` is the status to refuse the
    /// INVITE with (488: no offer we can talk to; 503: no free RTP port).
    fn prepare(svc: &Services, invite: &Request) -> Result<Self, u16> {
        let offer = std::str::from_utf8(&invite.body)
            .ok()
            .filter(|b| !b.trim().is_empty())
            .and_then(|b| SessionDescription::parse(b).ok());
        let Some(offer) = offer else {
            info!("call ended: no usable SDP offer (488)");
            return Err(488);
        };
        let sock = svc.ports.bind().map_err(|e| {
            warn!(error = %e, "call ended: no RTP port (503)");
            503_u16
        })?;
        let port = sock.local_addr().map(|a| a.port()).unwrap_or_default();
        // A PBX that asks for SRTP (RTP/SAVP, or a=crypto on RTP/AVP) gets it.
        let mut local = svc.local_media(port);
        local.crypto = svc.local_crypto(SrtpPolicy::Optional);
        let mut origin = LocalOrigin::new(&mut svc.ids());
        let negotiated = sdp::negotiate(&offer, &local, &mut origin).map_err(|e| {
            info!(reason = %e, "call ended: SDP not acceptable (488)");
            488_u16
        })?;
        Ok(Self {
            negotiated,
            local,
            origin,
            sock: Some(sock),
        })
    }
}

struct Driver {
    svc: Arc<Services>,
    core: InboundCall,
    call: CallId,
    number: String,
    flow: Arc<Flow>,
    legs: Legs,
    media: CallerMedia,
    interaction: Option<InteractionId>,
    /// The interaction's original arrival (the router serves callers in this order).
    created_at: Option<jiff::Timestamp>,
    store: Option<StoreWorker>,
    /// Offers from the router, once the caller waits in the queue.
    commands: Option<mpsc::Receiver<CallCommand>>,
    /// The agent closing the connected interaction asks for a hang-up here.
    closing: Option<HangupRequest>,
    /// The router's offer in flight.
    offer: Option<(oneshot::Sender<OfferOutcome>, CallOver)>,
    /// The offer the agent answered: held until the call is over, the router keeps the agent
    /// busy until then.
    on_call: Option<CallOver>,
}

impl Driver {
    async fn run(&mut self) {
        loop {
            self.carry_out().await;
            if self.core.is_finished() {
                break;
            }
            // Media inactivity is the media thread's timer: it reports it as news.
            let deadline = self.core.poll_timeout();
            tokio::select! {
                h = self.legs.next_happening() => self.on_leg(h),
                Some(reply) = recv_reply(self.store.as_mut()) => self.on_store(reply),
                Some(cmd) = recv_command(self.commands.as_mut()) => self.on_command(cmd),
                () = closing(self.closing.as_ref()) => {
                    info!("the agent closed the interaction; hanging up");
                    self.closing = None;
                    self.core.handle_close(clock::now());
                }
                () = sleep_until(deadline) => self.core.handle_timeout(clock::now()),
            }
        }
        self.finish().await;
    }

    fn on_leg(&mut self, h: Happened) {
        let now = clock::now();
        match h {
            Happened::Sip(LegId::Caller, ev) => self.on_caller_sip(now, ev),
            Happened::Sip(id, Some(SipEvent::ReInvite { sdp, .. })) => {
                if let Some(cmd) = self.legs.reinvited(now, id, &sdp) {
                    self.core.handle_agent(now, cmd);
                }
            }
            Happened::Sip(id, ev) => {
                if let Some(ev) = self.legs.outbound_event(now, id, ev) {
                    self.core.handle_leg(now, id, ev);
                }
            }
            Happened::Leg(id, ev) => self.core.handle_leg(now, id, ev),
            Happened::Agent(cmd) => self.core.handle_agent(now, cmd),
            Happened::Media(id) => {
                for ev in self.legs.media_events(id) {
                    self.on_media(now, id, ev);
                }
            }
        }
    }

    fn on_caller_sip(&mut self, now: Instant, ev: Option<SipEvent>) {
        match ev {
            Some(SipEvent::CallConfirmed { .. }) => {
                self.core.handle_leg(now, LegId::Caller, LegEvent::Answered);
            }
            Some(SipEvent::CallCancelled { .. }) | None => {
                self.core.handle_leg(now, LegId::Caller, LegEvent::Ended);
            }
            Some(ended @ SipEvent::CallEnded { .. }) => {
                let ev = self
                    .legs
                    .get(LegId::Caller)
                    .map_or(LegEvent::Ended, |l| l.ended_by(Some(&ended)));
                self.core.handle_leg(now, LegId::Caller, ev);
            }
            Some(SipEvent::InfoReceived {
                content_type, body, ..
            }) => {
                if let Some(stream) = self.caller_stream() {
                    stream.leg().handle_info(now, &content_type, &body);
                }
                for ev in self.legs.media_events(LegId::Caller) {
                    self.on_media(now, LegId::Caller, ev);
                }
            }
            Some(SipEvent::ReInvite { sdp, .. }) => {
                let answer = self.renegotiate(now, &sdp);
                self.svc.ua.send(Sip::AnswerReInvite {
                    call: self.call,
                    sdp: answer.into_bytes(),
                });
            }
            Some(SipEvent::ReferResponse { status, .. }) => {
                self.core.handle_refer(now, ReferProgress::Response(status));
            }
            Some(SipEvent::ReferNotify { status, .. }) => {
                self.core.handle_refer(now, ReferProgress::Notify(status));
            }
            Some(
                SipEvent::IncomingCall { .. }
                | SipEvent::Progress { .. }
                | SipEvent::Answered { .. }
                | SipEvent::Failed { .. },
            ) => {}
        }
    }

    fn on_media(&mut self, now: Instant, id: LegId, ev: MediaEvent) {
        match ev {
            MediaEvent::DigitReceived { digit, method } if id == LegId::Caller => {
                info!(digit = %digit, method = method.as_str(), "key pressed");
                crate::metrics::dtmf_digit(method);
                self.core.handle_digit(now, digit.as_char(), method);
            }
            // An inbound call screens no leg.
            MediaEvent::DigitReceived { .. }
            | MediaEvent::Screened(_)
            | MediaEvent::GreetingEnded(_) => {}
            MediaEvent::PlaybackFinished => {
                self.core.handle_leg(now, id, LegEvent::PlaybackFinished)
            }
            MediaEvent::Inactive => {
                warn!(leg = ?id, "no RTP for the inactivity timeout");
                self.core.handle_leg(now, id, LegEvent::MediaTimeout);
            }
        }
    }

    fn on_store(&mut self, reply: WorkerReply) {
        let now = clock::now();
        let reply = match reply {
            WorkerReply::CallbackStored => StoreReply::CallbackStored,
            WorkerReply::CallbackRefused(r) => StoreReply::CallbackRefused(r),
            WorkerReply::QueueStatus { position } => StoreReply::QueueStatus {
                position,
                estimated_wait: self.svc.estimated_wait(&self.flow.name, position),
            },
            WorkerReply::RecordingSaved { audio } => StoreReply::RecordingSaved { audio },
            WorkerReply::Committed => StoreReply::Committed,
            WorkerReply::Refused => StoreReply::Refused,
        };
        self.core.handle_store(now, reply);
    }

    fn on_command(&mut self, cmd: CallCommand) {
        match cmd {
            CallCommand::Offer {
                agent,
                ring_timeout,
                done,
                over,
            } => {
                if self.offer.is_some() {
                    // One offer at a time; the one in flight keeps its answer channel.
                    let _ = done.send(OfferOutcome::Unavailable);
                    return;
                }
                info!(agent = %agent.id, "offering the caller to an agent");
                self.offer = Some((done, over));
                self.core.handle_offer(clock::now(), agent.id, ring_timeout);
            }
        }
    }

    async fn carry_out(&mut self) {
        while let Some(cmd) = self.core.poll_command() {
            match cmd {
                Command::Store(StoreOp::Create) => self.create().await,
                Command::Ring => self.svc.ua.send(Sip::Ring { call: self.call }),
                Command::Answer => self.answer(),
                Command::Reject(status) => {
                    info!(status, "call refused");
                    self.svc.ua.send(Sip::Reject {
                        call: self.call,
                        status,
                    });
                }
                Command::StartMedia => self.start_media(),
                Command::Dial(id, target) => {
                    let from = self.svc.caller_id_for(&self.flow.name);
                    // A live caller rings an agent only as pushed work.
                    self.legs.set_phone_context(PhoneContext {
                        number: Some(self.number.clone()),
                        interaction: self.interaction,
                        pushed: true,
                    });
                    if let Some(failed) = self.legs.dial(&self.svc, id, &target, from).await {
                        self.core.handle_leg(clock::now(), id, failed);
                    }
                }
                Command::Play {
                    leg,
                    items,
                    then_loop,
                } => self.legs.play(&self.svc, leg, items, then_loop.as_deref()),
                Command::Record(_) => {
                    if let Some(s) = self.caller_stream() {
                        s.leg().set_capture(true);
                    }
                }
                Command::Bridge(a, b) => {
                    info!("caller bridged");
                    self.legs.bridge(&self.svc, a, b);
                }
                Command::Refer(target) => {
                    info!(target = %target, "transferring (REFER)");
                    self.svc.ua.send(Sip::Refer {
                        call: self.call,
                        target,
                    });
                }
                Command::Unbridge(a, b) => {
                    info!("on hold");
                    self.legs.unbridge(&self.svc, a, b);
                }
                Command::HangUp(id) => self.legs.hang_up(&self.svc, id),
                Command::Store(op) => self.store(op),
                Command::Router(note) => self.router(note),
                Command::Handled(talk) => self.svc.record_handling(&self.flow.name, talk),
                // An inbound call screens no leg (answering-machine detection is a callback's).
                Command::DialOutcome(_) | Command::Screen(..) => {}
            }
        }
    }

    /// The interaction is created before the phone rings (a CANCEL then finds it).
    async fn create(&mut self) {
        let new = Interaction::inbound(&self.flow.name, &self.number, clock::wall());
        let created = tokio::time::timeout(CREATE_TIMEOUT, self.svc.store.create(new)).await;
        let reply = match created {
            Ok(Ok(i)) => {
                tracing::Span::current().record("interaction", i.id);
                self.interaction = Some(i.id);
                self.store = Some(StoreWorker::spawn(self.svc.store.clone(), i.id));
                self.created_at = Some(i.created_at);
                self.closing = Some(self.svc.connected.register(i.id));
                StoreReply::Created(i.id)
            }
            Ok(Err(e)) => {
                warn!(error = %e, "store unavailable");
                StoreReply::Refused
            }
            Err(_) => {
                warn!(timeout = ?CREATE_TIMEOUT, "store did not create the interaction in time");
                StoreReply::Refused
            }
        };
        self.core.handle_store(clock::now(), reply);
    }

    /// 200 OK; the caller's media leg exists from now (prompts queue on it), but sends nothing
    /// until the ACK.
    fn answer(&mut self) {
        // A waiting caller the router may offer to agents from now on (not while ringing).
        if let (Some(id), Some(at)) = (self.interaction, self.created_at) {
            self.commands = Some(self.svc.live.register(id, &self.flow.name, at));
        }
        self.svc.ua.send(Sip::Answer {
            call: self.call,
            sdp: self.media.negotiated.answer_sdp.clone().into_bytes(),
        });
        let leg = MediaLeg::new(
            clock::now(),
            &mut self.svc.ids(),
            &self.media.negotiated,
            self.svc.prompts.clone(),
            Some(self.svc.cfg.media.rtp_timeout),
        );
        if let Some(caller) = self.legs.get_mut(LegId::Caller) {
            caller.set_stream(Stream::new(leg));
        }
    }

    fn start_media(&mut self) {
        let (Some(stream), Some(sock)) = (self.caller_stream().cloned(), self.media.sock.take())
        else {
            return;
        };
        // The first frame leaves now, not at the 200 OK (what was queued since is not skipped).
        stream.leg().start_at(clock::now());
        self.svc.media.start_stream(&stream, sock);
    }

    fn store(&mut self, op: StoreOp) {
        let queue = self.flow.name.clone();
        let job = match op {
            StoreOp::Apply(e) => StoreJob::Apply(e),
            StoreOp::Commit(e) => StoreJob::Commit(e),
            StoreOp::Accept { agent } => StoreJob::Accept { agent },
            StoreOp::Step(step) => StoreJob::Step(step),
            StoreOp::RequestCallback {
                number,
                not_before,
                max_per_day,
            } => {
                info!(number = %Pii(&number), "callback requested");
                StoreJob::RequestCallback {
                    queue,
                    number,
                    not_before,
                    max_per_day,
                }
            }
            StoreOp::QueueStatus => StoreJob::QueueStatus { queue },
            StoreOp::SaveRecording => {
                let samples = self.caller_stream().map_or_else(Vec::new, |s| {
                    let mut leg = s.leg();
                    // Taken before capture stops: stopping discards what is left.
                    let samples = leg.take_audio();
                    leg.set_capture(false);
                    samples
                });
                let dir = self.svc.cfg.data_dir.join("voicemail");
                let path = dir.join(format!("{}.wav", self.interaction.unwrap_or_default()));
                StoreJob::Voicemail { path, samples }
            }
            StoreOp::Create => return,
        };
        if let Some(store) = &self.store {
            store.send(job);
        }
    }

    fn router(&mut self, note: RouterNote) {
        match note {
            RouterNote::OfferEnded(outcome) => {
                if let Some((done, over)) = self.offer.take() {
                    if outcome == OfferOutcome::Bridged {
                        // Kept before the router hears of it: there is no moment when the
                        // agent looks free.
                        self.on_call = Some(over);
                    }
                    let _ = done.send(outcome);
                }
            }
            RouterNote::AgentAway(agent) => {
                self.svc.agents.set_presence_soon(&agent, Presence::Away);
            }
            RouterNote::LeftQueue => {
                if let Some(id) = self.interaction {
                    self.svc.live.remove(id);
                }
            }
        }
    }

    /// Answer a re-INVITE with the session as it now is (hold, unhold, a new address).
    fn renegotiate(&mut self, now: Instant, sdp: &[u8]) -> String {
        let offer = std::str::from_utf8(sdp)
            .ok()
            .and_then(|s| SessionDescription::parse(s).ok());
        let m = &mut self.media;
        let stream = self.legs.get(LegId::Caller).and_then(Leg::stream);
        match offer.map(|o| sdp::negotiate(&o, &m.local, &mut m.origin)) {
            Some(Ok(n)) => {
                if let Some(s) = stream {
                    s.leg().renegotiate(now, &n);
                }
                n.answer_sdp
            }
            // No offer in the re-INVITE (or one we cannot take): repeat the current session.
            _ => {
                let codec = stream.map_or(m.negotiated.codec, |s| s.leg().session().codec());
                let mut only = m.local.clone();
                only.codecs = vec![codec];
                sdp::build_offer(&only, &mut m.origin).sdp().to_owned()
            }
        }
    }

    fn caller_stream(&self) -> Option<&Arc<Stream>> {
        self.legs.get(LegId::Caller).and_then(Leg::stream)
    }

    /// The call is over: wait for its writes, and report its media counters.
    async fn finish(&mut self) {
        if let Some(id) = self.interaction {
            self.svc.live.remove(id);
        }
        if let Some(stream) = self.caller_stream() {
            let leg = stream.leg();
            crate::metrics::rtp_late(leg.session().counters().late, leg.frames_skipped());
        }
        if let Some(store) = self.store.as_mut() {
            store.finish().await;
        }
        info!(step = self.core.step_name(), "call ended");
    }
}

async fn recv_reply(store: Option<&mut StoreWorker>) -> Option<WorkerReply> {
    match store {
        Some(s) => s.replies.recv().await,
        None => std::future::pending().await,
    }
}

async fn recv_command(rx: Option<&mut mpsc::Receiver<CallCommand>>) -> Option<CallCommand> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn closing(request: Option<&HangupRequest>) {
    match request {
        Some(r) => r.requested().await,
        None => std::future::pending().await,
    }
}
