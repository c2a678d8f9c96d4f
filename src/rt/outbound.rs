//! One outbound call leg (the customer's phone through the trunk, the agent's SIP phone, a
//! transfer target): its RTP socket and our SDP offer until it answers, then its media stream on
//! the media clock. The SIP side lives in the user agent; this is the driver's handle on it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;

use super::media_worker::Stream;
use super::ports::PortsExhausted;
use super::services::Services;
use crate::media::leg::MediaLeg;
use crate::media::sdp::{
    self, LocalMedia, LocalOrigin, Negotiated, OfferState, SdpError, SessionDescription, SrtpPolicy,
};
use crate::sip::msg::{Uri, parse_uri};
use crate::sip::ua::{CallId, Command, Dial, Proto, SipEvent};

/// Where and how to dial.
pub struct DialSpec {
    pub target: Uri,
    pub next_hop: SocketAddr,
    /// The transport to the next hop: the trunk's `transport`, or what a URI asks for.
    pub transport: Proto,
    /// The next hop's host as configured or written (TLS checks its certificate against it).
    pub hop_host: String,
    pub from_user: String,
    pub extra_headers: Vec<(String, String)>,
    pub credentials: Option<(String, String)>,
    /// SRTP on this leg (`[sip.trunk] srtp` for the customer's, off for the others).
    pub srtp: SrtpPolicy,
}

pub struct OutboundLeg {
    pub call: CallId,
    /// The RTP socket, until the answer hands it to the media clock.
    sock: Option<std::net::UdpSocket>,
    offer: OfferState,
    /// Our side of the leg's SDP and its `o=` line, for answering the far end's re-INVITEs.
    local: LocalMedia,
    origin: LocalOrigin,
    pub events: mpsc::UnboundedReceiver<SipEvent>,
    svc: Arc<Services>,
    ended: bool,
}

impl OutboundLeg {
    /// Bind an RTP port, register the leg, and send the INVITE.
    pub fn dial(svc: &Arc<Services>, spec: DialSpec) -> Result<Self, PortsExhausted> {
        let sock = svc.ports.bind()?;
        let port = sock.local_addr().map(|a| a.port()).unwrap_or_default();
        let mut local = svc.local_media(port);
        local.crypto = svc.local_crypto(spec.srtp);
        let mut origin = LocalOrigin::new(&mut svc.ids());
        let offer = sdp::build_offer(&local, &mut origin);
        let call = svc.ua.new_call_id();
        let (tx, events) = mpsc::unbounded_channel();
        // Registered before the INVITE leaves, so no response can be missed.
        svc.legs.register(call, tx);
        svc.ua.send(Command::Dial(Box::new(Dial {
            call,
            target: spec.target,
            next_hop: spec.next_hop,
            transport: spec.transport,
            hop_host: spec.hop_host,
            from_user: spec.from_user,
            sdp: offer.sdp().as_bytes().to_vec(),
            extra_headers: spec.extra_headers,
            credentials: spec.credentials,
        })));
        Ok(Self {
            call,
            sock: Some(sock),
            offer,
            local,
            origin,
            events,
            svc: svc.clone(),
            ended: false,
        })
    }

    /// The leg was answered with `sdp`: its media starts on the media clock (silence until
    /// something is played to it).
    pub fn answered(&mut self, now: Instant, sdp: &[u8]) -> Result<Arc<Stream>, SdpError> {
        let text = std::str::from_utf8(sdp).map_err(|_| SdpError::Missing("UTF-8 SDP"))?;
        let negotiated = sdp::accept_answer(&self.offer, text)?;
        let sock = self
            .sock
            .take()
            .ok_or(SdpError::Missing("a first answer"))?;
        let leg = MediaLeg::new(
            now,
            &mut self.svc.ids(),
            &negotiated,
            self.svc.prompts.clone(),
            Some(self.svc.cfg.media.rtp_timeout),
        );
        let stream = Stream::new(leg);
        self.svc.media.start_stream(&stream, sock);
        Ok(stream)
    }

    /// The far end sent a re-INVITE with `sdp` (RFC 3264 §8: hold, resume, a new address):
    /// answer it with the session as it now is, applied to `stream`. Returns what was
    /// negotiated, or `None` when the offer was unusable and the current session was repeated.
    pub fn answer_reinvite(
        &mut self,
        now: Instant,
        sdp: &[u8],
        stream: Option<&Arc<Stream>>,
    ) -> Option<Negotiated> {
        let offer = std::str::from_utf8(sdp)
            .ok()
            .and_then(|s| SessionDescription::parse(s).ok());
        let negotiated = offer.and_then(|o| sdp::negotiate(&o, &self.local, &mut self.origin).ok());
        let answer = match &negotiated {
            Some(n) => {
                if let Some(s) = stream {
                    s.leg().renegotiate(now, n);
                }
                n.answer_sdp.clone()
            }
            None => {
                let mut only = self.local.clone();
                if let Some(s) = stream {
                    only.codecs = vec![s.leg().session().codec()];
                }
                sdp::build_offer(&only, &mut self.origin).sdp().to_owned()
            }
        };
        self.svc.ua.send(Command::AnswerReInvite {
            call: self.call,
            sdp: answer.into_bytes(),
        });
        negotiated
    }

    /// The leg ended on its own (failure, BYE): nothing left to hang up.
    pub fn mark_ended(&mut self) {
        self.ended = true;
    }

    /// CANCEL while ringing, BYE once answered. Idempotent.
    pub fn hang_up(&mut self) {
        if !self.ended {
            self.ended = true;
            self.svc.ua.send(Command::Hangup { call: self.call });
        }
    }
}

impl Drop for OutboundLeg {
    fn drop(&mut self) {
        self.hang_up();
        self.svc.legs.remove(self.call);
    }
}

/// A host:port string to a socket address (IP literal or DNS).
pub async fn resolve(hostport: &str) -> Option<SocketAddr> {
    if let Ok(a) = hostport.parse() {
        return Some(a);
    }
    tokio::net::lookup_host(hostport).await.ok()?.next()
}

/// Where a SIP URI is reached.
pub struct SipTarget {
    pub uri: Uri,
    pub next_hop: SocketAddr,
    /// `sips:` or `;transport=tls` is TLS, `;transport=tcp` TCP, else UDP.
    pub transport: Proto,
    /// The URI's host, without brackets.
    pub host: String,
}

/// A SIP URI (an agent's phone, a transfer target) and where to send its INVITE.
pub async fn sip_target(endpoint: &str) -> Option<SipTarget> {
    let uri = parse_uri(endpoint).ok()?;
    let transport = Proto::of_uri(&uri);
    let host = uri
        .host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let bracketed = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.clone()
    };
    let port = uri.port.unwrap_or(transport.default_port());
    let next_hop = resolve(&format!("{bracketed}:{port}")).await?;
    Some(SipTarget {
        uri,
        next_hop,
        transport,
        host,
    })
}
