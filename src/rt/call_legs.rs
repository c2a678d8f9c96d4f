//! The legs of one call as its driver holds them, and what both call drivers do alike: turn
//! SIP and media happenings on a leg into the call core's [`LegEvent`]s, and carry out `Dial`,
//! `Play`, `Bridge` and `HangUp`. Nothing here decides; the core in `call/` does.
//!
//! The agent's leg is dialled by kind ([`AgentPhone`]): a SIP phone, or the browser
//! (`endpoint = "webrtc"`, see [`super::webrtc`]), whose leg reports in the core's words
//! ([`Happened::Leg`]). A new kind adds a variant here and in [`Legs::dial`], never a change
//! to the core.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use tokio::sync::futures::OwnedNotified;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::media_worker::Stream;
use super::outbound::{DialSpec, OutboundLeg, resolve, sip_target};
use super::services::Services;
use super::webrtc::{BrowserHappening, BrowserLeg};
use crate::call::{AgentCommand, LegEvent, LegId, Target};
use crate::config::{Transport, WEBRTC_ENDPOINT};
use crate::interaction::{FailCause, InteractionId};
use crate::media::amd::AmdConfig;
use crate::media::leg::MediaEvent;
use crate::media::player::Item;
use crate::media::sdp::{SdpError, SrtpPolicy};
use crate::queue::agent::Agent;
use crate::sip::msg::{Params, Uri};
use crate::sip::ua::{CallId, Command, EndReason, Proto, SipEvent, TlsError, TransportError};
use crate::workflow::engine::PlayItem;

/// How the agent's phone is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentPhone {
    /// A SIP phone at this URI (`sip:alice@10.0.0.5:5070`), called with an auto-answer hint.
    Sip(String),
    /// The agent's Home List page (`endpoint = "webrtc"`).
    WebRtc,
}

impl AgentPhone {
    /// The phone `agent` configured.
    pub fn of(agent: &Agent) -> Self {
        if agent.endpoint == WEBRTC_ENDPOINT {
            Self::WebRtc
        } else {
            Self::Sip(agent.endpoint.clone())
        }
    }
}

/// What happened on one of the call's legs.
pub enum Happened {
    /// A SIP event (`None`: the leg's channel closed, as at shutdown).
    Sip(LegId, Option<SipEvent>),
    /// The media clock has news for the leg's stream (a key, a prompt finished, silence).
    Media(LegId),
    /// A leg that is no SIP dialog (the browser) reports in the core's own words.
    Leg(LegId, LegEvent),
    /// The agent's phone asks for hold or resume (the page's button; a desk phone's
    /// re-INVITE is a [`Happened::Sip`] until [`Legs::reinvited`] answers it).
    Agent(AgentCommand),
}

/// One leg: its SIP dialog and, once media flows, its stream on the media clock.
pub struct Leg {
    pub id: LegId,
    pub call: CallId,
    /// The caller's events (an inbound leg); dialled legs keep theirs in `outbound`.
    inbound: Option<mpsc::UnboundedReceiver<SipEvent>>,
    outbound: Option<OutboundLeg>,
    /// The agent's browser phone, when that is the leg.
    browser: Option<BrowserLeg>,
    stream: Option<Arc<Stream>>,
    news: Option<Pin<Box<OwnedNotified>>>,
    hung_up: bool,
}

impl Leg {
    /// The inbound caller's leg, whose events arrive on `events`.
    pub fn inbound(call: CallId, events: mpsc::UnboundedReceiver<SipEvent>) -> Self {
        Self {
            id: LegId::Caller,
            call,
            inbound: Some(events),
            outbound: None,
            browser: None,
            stream: None,
            news: None,
            hung_up: false,
        }
    }

    fn dialled(id: LegId, leg: OutboundLeg) -> Self {
        Self {
            id,
            call: leg.call,
            inbound: None,
            outbound: Some(leg),
            browser: None,
            stream: None,
            news: None,
            hung_up: false,
        }
    }

    /// Let go of the leg's media stream (the media clock stops once no handle is left),
    /// counting what its SRTP refused.
    fn release_stream(&mut self) {
        if let Some(stream) = self.stream.take() {
            crate::metrics::srtp_unauthenticated(stream.leg().session().counters().unauthenticated);
        }
        self.news = None;
    }

    /// The leg's media stream, once it has one.
    pub fn stream(&self) -> Option<&Arc<Stream>> {
        self.stream.as_ref()
    }

    /// Media flows on `stream` from now on.
    pub fn set_stream(&mut self, stream: Arc<Stream>) {
        self.news = Some(Box::pin(stream.news_owned()));
        self.stream = Some(stream);
    }

    /// How the core hears that this leg's dialog ended: our own BYE that the core never asked
    /// for (the shutdown after the drain hangs every leg up) is a cut, anything else an end.
    pub fn ended_by(&self, ev: Option<&SipEvent>) -> LegEvent {
        match ev {
            Some(SipEvent::CallEnded {
                reason: EndReason::LocalBye,
                ..
            }) if !self.hung_up => LegEvent::Cut,
            _ => LegEvent::Ended,
        }
    }

    fn browser(id: LegId, leg: BrowserLeg) -> Self {
        Self {
            id,
            // No SIP dialog: a call id no dialog has (the user agent counts from 1).
            call: CallId(0),
            inbound: None,
            outbound: None,
            browser: Some(leg),
            stream: None,
            news: None,
            hung_up: false,
        }
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Happened> {
        if let Some(b) = self.browser.as_mut()
            && let Poll::Ready(h) = b.poll(cx)
        {
            return Poll::Ready(match h {
                BrowserHappening::Answered(stream) => {
                    self.set_stream(stream);
                    Happened::Leg(self.id, LegEvent::Answered)
                }
                BrowserHappening::Agent(cmd) => Happened::Agent(cmd),
                BrowserHappening::Leg(ev) => {
                    if matches!(ev, LegEvent::Ended | LegEvent::MediaTimeout) {
                        self.release_stream();
                    }
                    Happened::Leg(self.id, ev)
                }
            });
        }
        let events = match (&mut self.inbound, &mut self.outbound) {
            (Some(rx), _) => Some(rx),
            (None, Some(o)) => Some(&mut o.events),
            (None, None) => None,
        };
        if let Some(rx) = events
            && let Poll::Ready(ev) = rx.poll_recv(cx)
        {
            if ev.is_none() {
                // Closed: report once, then never again.
                self.inbound = None;
                if let Some(o) = self.outbound.as_mut() {
                    o.mark_ended();
                }
                self.outbound = None;
            }
            return Poll::Ready(Happened::Sip(self.id, ev));
        }
        if let (Some(news), Some(stream)) = (self.news.as_mut(), self.stream.as_ref())
            && news.as_mut().poll(cx).is_ready()
        {
            self.news = Some(Box::pin(stream.news_owned()));
            return Poll::Ready(Happened::Media(self.id));
        }
        Poll::Pending
    }
}

impl Drop for Leg {
    fn drop(&mut self) {
        self.release_stream();
    }
}

/// Every leg of one call.
#[derive(Default)]
pub struct Legs {
    legs: Vec<Leg>,
    /// What a browser phone shows when it rings (a SIP phone sees the From).
    phone: PhoneContext,
}

/// The call as an agent's browser phone shows it.
#[derive(Debug, Clone, Default)]
pub struct PhoneContext {
    /// The customer's number the page shows (else the dial's From user).
    pub number: Option<String>,
    /// The interaction, once the call has one.
    pub interaction: Option<InteractionId>,
    /// Pushed work (the page offers Accept/Decline), not the agent's own pick.
    pub pushed: bool,
}

impl Legs {
    /// Say what a browser phone that this call rings should show.
    pub fn set_phone_context(&mut self, phone: PhoneContext) {
        self.phone = phone;
    }

    pub fn insert(&mut self, leg: Leg) {
        self.remove(leg.id);
        self.legs.push(leg);
    }

    pub fn get(&self, id: LegId) -> Option<&Leg> {
        self.legs.iter().find(|l| l.id == id)
    }

    pub fn get_mut(&mut self, id: LegId) -> Option<&mut Leg> {
        self.legs.iter_mut().find(|l| l.id == id)
    }

    /// Forget a leg (hanging it up if it was dialled and is still up).
    pub fn remove(&mut self, id: LegId) -> Option<Leg> {
        let i = self.legs.iter().position(|l| l.id == id)?;
        Some(self.legs.swap_remove(i))
    }

    /// The next thing that happens on any leg; pends for ever when there is none.
    pub fn next_happening(&mut self) -> impl Future<Output = Happened> + '_ {
        std::future::poll_fn(move |cx| {
            for leg in &mut self.legs {
                if let Poll::Ready(h) = leg.poll(cx) {
                    return Poll::Ready(h);
                }
            }
            Poll::Pending
        })
    }

    /// A dialled leg's SIP event as the core sees it; an answer starts the leg's media.
    pub fn outbound_event(
        &mut self,
        now: Instant,
        id: LegId,
        ev: Option<SipEvent>,
    ) -> Option<LegEvent> {
        let leg = self.get_mut(id)?;
        match ev {
            Some(SipEvent::Progress {
                status: 180 | 183, ..
            }) => Some(LegEvent::Ringing),
            Some(SipEvent::Answered { sdp, .. }) => {
                let o = leg.outbound.as_mut()?;
                match o.answered(now, &sdp) {
                    Ok(stream) => {
                        leg.set_stream(stream);
                        Some(LegEvent::Answered)
                    }
                    Err(e) => {
                        warn!(leg = ?id, error = %e, "SDP answer unusable; hanging the leg up");
                        o.hang_up();
                        let cause =
                            (e == SdpError::NoCommonCrypto).then_some(FailCause::SrtpNoCommonSuite);
                        Some(LegEvent::Failed {
                            status: None,
                            cause,
                        })
                    }
                }
            }
            Some(SipEvent::Failed { status, cause, .. }) => {
                if let Some(o) = leg.outbound.as_mut() {
                    o.mark_ended();
                }
                let cause = cause.map(fail_cause);
                if let Some(c) = cause {
                    warn!(leg = ?id, cause = c.text(), "dial failed before any answer");
                }
                Some(LegEvent::Failed {
                    status: Some(status),
                    cause,
                })
            }
            Some(SipEvent::CallEnded { .. }) | None => {
                if let Some(o) = leg.outbound.as_mut() {
                    o.mark_ended();
                }
                // Its media ends with it (the media clock stops once no handle is left).
                leg.release_stream();
                Some(leg.ended_by(ev.as_ref()))
            }
            Some(_) => {
                // Not the event itself: an SDP in it may hold an SRTP key.
                debug!(leg = ?id, "SIP event ignored on a dialled leg");
                None
            }
        }
    }

    /// A dialled leg's far end sent a re-INVITE: answer it (the session as it now is). On the
    /// agent's leg it is also hold or resume (RFC 3264 §8.4, RFC 6337 §5.3): an offer of
    /// `a=sendonly` or `a=inactive` (or `c=0.0.0.0`) holds, `a=sendrecv` resumes.
    pub fn reinvited(&mut self, now: Instant, id: LegId, sdp: &[u8]) -> Option<AgentCommand> {
        let leg = self.get_mut(id)?;
        let stream = leg.stream.clone();
        let n = leg
            .outbound
            .as_mut()?
            .answer_reinvite(now, sdp, stream.as_ref())?;
        (id == LegId::Agent).then_some(if n.direction.sends() {
            AgentCommand::Resume
        } else {
            AgentCommand::Hold
        })
    }

    /// What the media clock reported for a leg's stream.
    pub fn media_events(&self, id: LegId) -> Vec<MediaEvent> {
        let Some(stream) = self.get(id).and_then(Leg::stream) else {
            return Vec::new();
        };
        let mut leg = stream.leg();
        std::iter::from_fn(|| leg.poll_event()).collect()
    }

    /// Replace what `id` hears: `items` once, then `then_loop` looped (silence when `None`).
    pub fn play(&self, svc: &Services, id: LegId, items: Vec<PlayItem>, then_loop: Option<&str>) {
        let Some(stream) = self.get(id).and_then(Leg::stream) else {
            debug!(leg = ?id, "nothing to play to: no media yet");
            return;
        };
        let mut leg = stream.leg();
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
        if let Some(p) = then_loop.and_then(|id| svc.prompts.get(id)) {
            let _ = player.enqueue(Item::Loop(p));
        }
    }

    /// Start (`Some`) or stop answering-machine detection on what `id` receives; its verdict
    /// comes back as the leg's media news.
    pub fn screen(&self, id: LegId, now: Instant, amd: Option<AmdConfig>) {
        let Some(stream) = self.get(id).and_then(Leg::stream) else {
            debug!(leg = ?id, "nothing to screen: no media yet");
            return;
        };
        let mut leg = stream.leg();
        match amd {
            Some(cfg) => leg.screen(now, cfg),
            None => leg.stop_screening(),
        }
    }

    /// Relay the two legs' media to each other on the media clock.
    pub fn bridge(&self, svc: &Services, a: LegId, b: LegId) {
        match (
            self.get(a).and_then(Leg::stream),
            self.get(b).and_then(Leg::stream),
        ) {
            (Some(sa), Some(sb)) => svc.media.bridge(sa, sb),
            _ => warn!(?a, ?b, "bridge asked for a leg without media"),
        }
    }

    /// Stop relaying the two legs' media (hold): each goes back to its player.
    pub fn unbridge(&self, svc: &Services, a: LegId, b: LegId) {
        if let (Some(sa), Some(sb)) = (
            self.get(a).and_then(Leg::stream),
            self.get(b).and_then(Leg::stream),
        ) {
            svc.media.unbridge(sa, sb);
        }
    }

    /// CANCEL a ringing leg, BYE an answered one. Idempotent.
    pub fn hang_up(&mut self, svc: &Services, id: LegId) {
        let Some(leg) = self.get_mut(id) else {
            return;
        };
        if let Some(b) = leg.browser.as_mut() {
            b.hang_up();
            leg.release_stream();
        }
        match leg.outbound.as_mut() {
            Some(o) => o.hang_up(),
            None if !leg.hung_up && leg.inbound.is_some() => {
                svc.ua.send(Command::Hangup { call: leg.call });
            }
            None => {}
        }
        leg.hung_up = true;
    }

    /// Call `target` as leg `id`. A leg that cannot even be tried (no route, no RTP port, a
    /// browser phone with no page open) is logged here, and the event the core should hear for
    /// it is returned: the drivers feed it back, so the core decides what an undialled leg
    /// means as for any failed one. A browser phone rings at once: `Ringing` is returned.
    pub async fn dial(
        &mut self,
        svc: &Arc<Services>,
        id: LegId,
        target: &Target,
        from_user: String,
    ) -> Option<LegEvent> {
        if let Target::Agent(agent_id) = target
            && let Some(agent) = svc.agents.get(agent_id)
            && AgentPhone::of(agent) == AgentPhone::WebRtc
        {
            let ctx = &self.phone;
            let number = ctx.number.clone().unwrap_or(from_user);
            return match BrowserLeg::ring(svc, agent_id, number, ctx.interaction, ctx.pushed) {
                Ok(leg) => {
                    self.insert(Leg::browser(id, leg));
                    Some(LegEvent::Ringing)
                }
                Err(failed) => Some(failed),
            };
        }
        let e = self.try_dial(svc, id, target, from_user).await.err()?;
        warn!(leg = ?id, error = %e, "leg not dialled");
        Some(LegEvent::Failed {
            status: None,
            cause: None,
        })
    }

    /// Call `target` as leg `id`; `Err` when it cannot even be tried (no route, no RTP port).
    async fn try_dial(
        &mut self,
        svc: &Arc<Services>,
        id: LegId,
        target: &Target,
        from_user: String,
    ) -> Result<(), DialError> {
        let spec = match target {
            Target::Customer(number) => customer_spec(svc, number, from_user).await?,
            Target::Agent(agent_id) => {
                let agent = svc.agents.get(agent_id).ok_or(DialError::Unroutable)?;
                match AgentPhone::of(agent) {
                    // Rung by `dial` before it gets here.
                    AgentPhone::WebRtc => return Err(DialError::Unroutable),
                    AgentPhone::Sip(uri) => {
                        let t = sip_target(&uri).await.ok_or(DialError::Unroutable)?;
                        DialSpec {
                            target: t.uri,
                            next_hop: t.next_hop,
                            transport: t.transport,
                            hop_host: t.host,
                            from_user,
                            extra_headers: auto_answer(),
                            credentials: None,
                            srtp: SrtpPolicy::Off,
                        }
                    }
                }
            }
            Target::Uri(uri) => {
                let t = sip_target(uri).await.ok_or(DialError::Unroutable)?;
                DialSpec {
                    target: t.uri,
                    next_hop: t.next_hop,
                    transport: t.transport,
                    hop_host: t.host,
                    from_user,
                    extra_headers: Vec::new(),
                    credentials: None,
                    srtp: SrtpPolicy::Off,
                }
            }
        };
        let leg = OutboundLeg::dial(svc, spec).map_err(|_| DialError::NoPort)?;
        self.insert(Leg::dialled(id, leg));
        Ok(())
    }
}

/// Why a leg could not even be dialled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DialError {
    #[error("the target does not resolve or is not a usable SIP URI")]
    Unroutable,
    #[error("no free RTP port")]
    NoPort,
}

/// The customer's INVITE goes to the trunk with the number as the Request-URI user, over the
/// trunk's transport: `sip:<number>@<proxy as configured>[;transport=tcp|tls]`.
async fn customer_spec(
    svc: &Services,
    number: &str,
    from_user: String,
) -> Result<DialSpec, DialError> {
    let proxy = &svc.cfg.trunk.proxy;
    let next_hop = resolve(&proxy.to_string())
        .await
        .ok_or(DialError::Unroutable)?;
    let user = &svc.cfg.trunk.username;
    let credentials =
        (!user.is_empty()).then(|| (user.clone(), svc.cfg.trunk.password.expose().to_owned()));
    let transport = match svc.cfg.trunk.transport {
        Transport::Udp => Proto::Udp,
        Transport::Tcp => Proto::Tcp,
        Transport::Tls => Proto::Tls,
    };
    let mut params = Params::default();
    if let Some(t) = transport.uri_param() {
        params.set("transport", Some(t.to_owned()));
    }
    let host = proxy.host.trim_start_matches('[').trim_end_matches(']');
    Ok(DialSpec {
        target: Uri {
            scheme: "sip".into(),
            user: Some(number.to_owned()),
            password: None,
            host: if host.contains(':') {
                format!("[{host}]")
            } else {
                host.to_owned()
            },
            port: Some(proxy.port),
            params,
            headers: None,
            opaque: None,
        },
        next_hop,
        transport,
        hop_host: host.to_owned(),
        from_user,
        extra_headers: Vec::new(),
        credentials,
        srtp: svc.trunk_srtp(),
    })
}

/// The call core's words for why the user agent could not deliver a dial (it knows no TLS).
fn fail_cause(e: TransportError) -> FailCause {
    match e {
        TransportError::Connect => FailCause::Unreachable,
        TransportError::NoResponse => FailCause::TrunkNoResponse,
        TransportError::Tls(TlsError::CertificateNotTrusted) => FailCause::TlsCertificateNotTrusted,
        TransportError::Tls(TlsError::CertificateExpired) => FailCause::TlsCertificateExpired,
        TransportError::Tls(TlsError::CertificateNameMismatch) => {
            FailCause::TlsCertificateNameMismatch
        }
        TransportError::Tls(TlsError::Handshake) => FailCause::TlsHandshake,
    }
}

/// The auto-answer hints understood by most desk phones and softphones.
fn auto_answer() -> Vec<(String, String)> {
    vec![
        ("Call-Info".into(), "<sip:hammond>;answer-after=0".into()),
        (
            "Alert-Info".into(),
            "<http://hammond/>;info=alert-autoanswer".into(),
        ),
    ]
}
