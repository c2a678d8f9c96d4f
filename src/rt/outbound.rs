//! One outbound call leg (the customer's phone through the trunk, or the agent's phone): its
//! RTP socket, our SDP offer, and — once answered — its RTP session. The SIP side lives in the
//! user agent; this is the owning task's handle on it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::ports::PortsExhausted;
use super::services::Services;
use crate::media::sdp::{self, LocalOrigin, OfferState, SdpError};
use crate::media::session::RtpSession;
use crate::sip::msg::Uri;
use crate::sip::ua::{CallId, Command, Dial, SipEvent};

/// Where and how to dial.
pub struct DialSpec {
    pub target: Uri,
    pub next_hop: SocketAddr,
    pub from_user: String,
    pub extra_headers: Vec<(String, String)>,
    pub credentials: Option<(String, String)>,
}

pub struct OutboundLeg {
    pub call: CallId,
    pub sock: UdpSocket,
    offer: OfferState,
    pub session: Option<RtpSession>,
    pub events: mpsc::UnboundedReceiver<SipEvent>,
    svc: Arc<Services>,
    ended: bool,
}

impl OutboundLeg {
    /// Bind an RTP port, register the leg, and send the INVITE.
    pub async fn dial(svc: &Arc<Services>, spec: DialSpec) -> Result<Self, PortsExhausted> {
        let sock = svc.ports.bind()?;
        let sock = UdpSocket::from_std(sock).map_err(|_| svc.ports.exhausted())?;
        let port = sock.local_addr().map(|a| a.port()).unwrap_or_default();
        let local = svc.local_media(port);
        let mut origin = LocalOrigin::new(&mut svc.ids());
        let offer = sdp::build_offer(&local, &mut origin);
        let call = svc.ua.new_call_id();
        let (tx, events) = mpsc::unbounded_channel();
        svc.legs.register(call, tx);
        svc.ua.send(Command::Dial(Box::new(Dial {
            call,
            target: spec.target,
            next_hop: spec.next_hop,
            from_user: spec.from_user,
            sdp: offer.sdp().as_bytes().to_vec(),
            extra_headers: spec.extra_headers,
            credentials: spec.credentials,
        })));
        Ok(Self {
            call,
            sock,
            offer,
            session: None,
            events,
            svc: svc.clone(),
            ended: false,
        })
    }

    /// The leg was answered with `sdp`: start its RTP session.
    pub fn answered(&mut self, now: Instant, sdp: &[u8]) -> Result<(), SdpError> {
        let text = std::str::from_utf8(sdp).map_err(|_| SdpError::Missing("UTF-8 SDP"))?;
        let negotiated = sdp::accept_answer(&self.offer, text)?;
        let inactivity = Some(self.svc.cfg.media.rtp_timeout);
        self.session = Some(RtpSession::new(
            now,
            &mut self.svc.ids(),
            &negotiated,
            inactivity,
        ));
        Ok(())
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
