//! One browser call's media (shell): a sans-IO `rtc` peer connection (webrtc-rs) for ICE and
//! DTLS, driven by a small tokio task, and the call's stream on the media clock for the audio.
//!
//! Hammond answers the page's offer as an ICE-lite agent with one host candidate (the
//! `[webrtc] address`, else `[sip] public_address`, on a port from `[media] rtp_ports`), the
//! DTLS server, and PCMU/PCMA plus telephone-event only (Chromium offers both G.711 codecs, so
//! nothing is transcoded; Opus is not offered back), with SRTP's AES-CM suites only (the ones
//! the media clock's SRTP speaks).
//!
//! Until DTLS-SRTP is up the task owns the call's socket: ICE checks and the handshake. Then it
//! exports the SRTP keys from the handshake (RFC 5764 §4.2, [`crate::media::dtls_srtp`]) and
//! hands the socket to the media clock with a stream keyed with them: the media thread receives
//! every datagram, decrypts and relays the browser's SRTP itself and encrypts what it sends, as
//! for an SDES-keyed SIP leg, so an RTP packet crosses no task and no extra socket. What is not
//! RTP the media thread sorts by its first byte (RFC 7983): STUN (consent freshness) and DTLS
//! (retransmissions, alerts, close_notify) come back to this task on the stream's sideband and
//! go into the peer connection; SRTCP is dropped there. The task keeps a duplicate of the
//! socket's descriptor, outside tokio's reactor, to send the peer connection's replies. So the
//! browser leg is, for the media clock, a stream like an outbound SIP leg's: `MediaClock::bridge`,
//! the inactivity timeout, DTMF and pacing are the same code.
//!
//! The task ends when its [`PeerHandle`] is dropped (it closes the peer connection, which sends
//! DTLS close_notify), or when the connection fails (ICE consent lost: a closed tab, a lost
//! network), which it reports as [`PeerEvent::Lost`].

use std::net::{SocketAddr, UdpSocket as StdUdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rtc::dtls::extension::extension_use_srtp::SrtpProtectionProfile;
use rtc::interceptor::Registry;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::configuration::media_engine::{
    MIME_TYPE_PCMA, MIME_TYPE_PCMU, MIME_TYPE_TELEPHONE_EVENT, MediaEngine,
};
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::event::RTCPeerConnectionEvent;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::peer_connection::transport::{
    CandidateConfig, CandidateHostConfig, RTCDtlsRole, RTCIceCandidate,
};
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::rtp_transceiver::RTCRtpSenderId;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters,
    RtpCodecKind,
};
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tracing::{Instrument, debug, info, warn};

use crate::clock;
use crate::idgen::IdGen;
use crate::media::Codec;
use crate::media::dtls_srtp::{self, DtlsRole};
use crate::media::leg::MediaLeg;
use crate::media::sdes::Suite;
use crate::media::sdp::{Direction, Negotiated, SrtpKeys};
use crate::rt::media_worker::{SIDEBAND_DEPTH, SideDatagram, Stream};
use crate::rt::services::Services;

/// How long the browser has from our answer to a working DTLS-SRTP connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// ICE consent (RFC 7675): no check from the browser for this long is "disconnected", and
/// for [`ICE_FAILED`] more the call's agent leg is lost (a closed tab, a lost network).
/// Chromium checks about every 2.5 s while a call is up.
const ICE_DISCONNECTED: Duration = Duration::from_secs(5);
/// See [`ICE_DISCONNECTED`].
const ICE_FAILED: Duration = Duration::from_secs(5);
/// Largest datagram taken from the socket.
const MAX_DATAGRAM: usize = 1500;
/// Once connected, the peer connection's timers are run at most this often. rtc's ICE agent
/// asks for a turn every 200 ms for as long as the call lasts (its check interval is a floor
/// of its timer), yet after the handshake its timers only judge consent (5 s without a
/// binding request is disconnected, 5 s more is failed): running them late by up to a second
/// changes nothing but when a closed tab is noticed, and 50 browser calls woke 250 times a
/// second for nothing (`bench/webrtc-ab`).
const CONNECTED_TICK: Duration = Duration::from_secs(1);

/// Why a browser's offer could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// The page's SDP is not an offer we can answer (no audio, no G.711): the page's fault.
    #[error("the offer cannot be answered: {0}")]
    Offer(String),
    /// No free port in `[media] rtp_ports`, or the socket could not be set up.
    #[error("no socket for the call: {0}")]
    Socket(String),
    /// The peer connection refused its own configuration (a bug).
    #[error("peer connection: {0}")]
    Internal(String),
}

/// What the peer task reports to the leg.
pub enum PeerEvent {
    /// DTLS-SRTP is up: media flows on this stream of the media clock.
    Connected(Arc<Stream>),
    /// The connection failed or closed (before or after `Connected`).
    Lost,
}

/// The leg's handle on its peer task. Dropping it ends the task (and the connection).
pub struct PeerHandle {
    pub events: mpsc::UnboundedReceiver<PeerEvent>,
    _stop: oneshot::Sender<()>,
}

/// Answer the page's `offer` (SDP text): bind the call's sockets, build the peer connection,
/// start its task, and return the handle and our answer (SDP text, with our host candidate:
/// the page needs no trickle).
pub fn answer(svc: &Arc<Services>, offer: &str) -> Result<(PeerHandle, String), PeerError> {
    let public = svc
        .ports
        .bind()
        .map_err(|e| PeerError::Socket(e.to_string()))?;
    let local = public
        .local_addr()
        .map_err(|e| PeerError::Socket(e.to_string()))?;
    let advertised = svc.cfg.webrtc.address.unwrap_or(svc.media_ip);
    // The task sends on this one (outside tokio: its sends are a few a second) and receives
    // on a duplicate until the media clock takes that over.
    let send = public;
    let public = send
        .try_clone()
        .map_err(|e| PeerError::Socket(e.to_string()))?;

    let now = clock::now();
    // The leg's own generator: the leg made from it once DTLS-SRTP is up draws the same SSRC
    // first, the one our answer announces.
    let ids = IdGen::seeded(svc.ids().next_u64());
    let ssrc = ids.clone().next_u32();
    let (pc, sender, sdp) = answering(now, offer, ssrc, SocketAddr::new(advertised, local.port()))?;
    let media = negotiated(&sdp)?;

    let public = UdpSocket::from_std(public).map_err(|e| PeerError::Socket(e.to_string()))?;
    let (tx, events) = mpsc::unbounded_channel();
    let (stop, stopped) = oneshot::channel();
    let (sideband, side_rx) = mpsc::channel(SIDEBAND_DEPTH);
    let task = Task {
        svc: svc.clone(),
        pc,
        sender,
        ssrc,
        public: Some(public),
        send,
        local,
        ids,
        sideband: Some(sideband),
        side_rx,
        last_from: None,
        media,
        events: tx,
        connected: false,
    };
    tokio::spawn(task.run(stopped).instrument(tracing::Span::current()));
    Ok((
        PeerHandle {
            events,
            _stop: stop,
        },
        sdp,
    ))
}

/// The peer connection answering `offer` (SDP text), sending as `ssrc`, with one host
/// `candidate`: it, its sender, and our answer (SDP text).
fn answering(
    now: Instant,
    offer: &str,
    ssrc: u32,
    candidate: SocketAddr,
) -> Result<(RTCPeerConnection, RTCRtpSenderId, String), PeerError> {
    let mut pc = build(now)?;
    let sender = pc
        .add_track(pcmu_track("hammond", "hammond-audio", ssrc))
        .map_err(internal)?;
    let offer = RTCSessionDescription::offer(g711_only(offer))
        .map_err(|e| PeerError::Offer(e.to_string()))?;
    pc.set_remote_description(now, offer)
        .map_err(|e| PeerError::Offer(e.to_string()))?;
    let host = CandidateHostConfig {
        base_config: CandidateConfig {
            network: "udp".to_owned(),
            address: candidate.ip().to_string(),
            port: candidate.port(),
            component: 1,
            ..Default::default()
        },
        ..Default::default()
    }
    .new_candidate_host()
    .map_err(internal)?;
    let init = RTCIceCandidate::from(&host).to_json().map_err(internal)?;
    pc.add_local_candidate(init).map_err(internal)?;
    let answer = pc
        .create_answer(None)
        .map_err(|e| PeerError::Offer(e.to_string()))?;
    pc.set_local_description(now, answer).map_err(internal)?;
    let sdp = pc
        .local_description()
        .ok_or_else(|| PeerError::Internal("no local description".into()))?
        .sdp;
    Ok((pc, sender, sdp))
}

/// The SRTP keys of `pc`'s established DTLS association, exported for the media clock (RFC
/// 5764 §4.2): we are the DTLS server, so we send with the server's write key.
fn exported_keys(
    pc: &mut RTCPeerConnection,
    sender: RTCRtpSenderId,
) -> Result<SrtpKeys, PeerError> {
    let exported = pc
        .rtp_sender(sender)
        .as_ref()
        .and_then(|s| s.transport())
        .and_then(|t| {
            t.export_keying_material(dtls_srtp::EXPORTER_LABEL, dtls_srtp::KEYING_MATERIAL_LEN)
        })
        .ok_or_else(|| PeerError::Internal("no DTLS-SRTP keying material".into()))?;
    let suite = match exported.srtp_profile {
        SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80 => Suite::AesCm128HmacSha1_80,
        SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_32 => Suite::AesCm128HmacSha1_32,
        other => {
            return Err(PeerError::Internal(format!(
                "SRTP profile {other:?} not offered"
            )));
        }
    };
    let role = if exported.is_client {
        DtlsRole::Client
    } else {
        DtlsRole::Server
    };
    let mut material = exported.material;
    let keys = dtls_srtp::srtp_keys(suite, &material, role).map_err(internal);
    zeroize::Zeroize::zeroize(&mut material);
    keys
}

/// A PCMU track of one stream, sending with `ssrc`: what each end of a G.711 call adds.
fn pcmu_track(stream: &str, track: &str, ssrc: u32) -> MediaStreamTrack {
    MediaStreamTrack::new(
        stream.into(),
        track.into(),
        track.into(),
        RtpCodecKind::Audio,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(ssrc),
                ..Default::default()
            },
            codec: pcmu().rtp_codec,
            ..Default::default()
        }],
    )
}

fn pcmu() -> RTCRtpCodecParameters {
    codec(MIME_TYPE_PCMU, 0)
}

fn codec(mime: &str, payload_type: u8) -> RTCRtpCodecParameters {
    RTCRtpCodecParameters {
        rtp_codec: RTCRtpCodec {
            mime_type: mime.to_owned(),
            clock_rate: 8000,
            channels: 1,
            sdp_fmtp_line: if mime == MIME_TYPE_TELEPHONE_EVENT {
                "0-16".to_owned()
            } else {
                String::new()
            },
            rtcp_feedback: vec![],
        },
        payload_type,
    }
}

/// An answering, ICE-lite peer connection that knows G.711 and telephone-event only. No
/// interceptors (NACK, TWCC, reports): G.711 at 20 ms needs none, and each costs per packet.
fn build(now: Instant) -> Result<RTCPeerConnection, PeerError> {
    let mut engine = MediaEngine::default();
    for c in [
        pcmu(),
        codec(MIME_TYPE_PCMA, 8),
        codec(MIME_TYPE_TELEPHONE_EVENT, 101),
    ] {
        engine
            .register_codec(c, RtpCodecKind::Audio)
            .map_err(internal)?;
    }
    let settings = SettingEngineBuilder::new()
        .with_lite(true)
        .with_answering_dtls_role(RTCDtlsRole::Server)
        .with_ice_timeouts(Some(ICE_DISCONNECTED), Some(ICE_FAILED), None)
        // The suites the media clock's SRTP runs (it keys them from the handshake); rtc would
        // otherwise prefer AES-GCM, which Chromium also offers.
        .with_srtp_protection_profiles(vec![
            SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80,
            SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_32,
        ])
        .build();
    RTCPeerConnectionBuilder::new()
        .with_configuration(RTCConfigurationBuilder::new().build())
        .with_setting_engine(settings)
        .with_media_engine(engine)
        .with_interceptor_registry(Registry::new())
        .build(now)
        .map_err(internal)
}

fn internal(e: impl std::fmt::Display) -> PeerError {
    PeerError::Internal(e.to_string())
}

/// The page's offer with only what Hammond's media clock speaks in its audio section: PCMU,
/// PCMA and telephone-event at 8 kHz. Chromium also offers telephone-event at 48 kHz with the
/// same format parameters, and the peer connection matches codecs by MIME type and parameters,
/// not clock rate: without this it could settle on the 48 kHz one, whose events the media
/// clock cannot relay. What is left is a valid subset of the offer (JSEP lets the answer
/// narrow it), so the browser sees no difference.
fn g711_only(offer: &str) -> String {
    let mut keep: Vec<String> = vec!["0".into(), "8".into()];
    for l in offer.lines() {
        if let Some((pt, name)) = l.strip_prefix("a=rtpmap:").and_then(|r| r.split_once(' ')) {
            let name = name.trim().to_ascii_lowercase();
            if ["pcmu/8000", "pcma/8000", "telephone-event/8000"]
                .iter()
                .any(|n| name == *n || name.starts_with(&format!("{n}/")))
            {
                keep.push(pt.to_owned());
            }
        }
    }
    let mut out = String::with_capacity(offer.len());
    let mut audio = false;
    for l in offer.lines() {
        if l.starts_with("m=") {
            audio = l.starts_with("m=audio");
            if audio {
                let mut f = l.split(' ');
                let head: Vec<&str> = f.by_ref().take(3).collect();
                let fmts: Vec<&str> = f.filter(|pt| keep.iter().any(|k| k == pt)).collect();
                out.push_str(&head.join(" "));
                for pt in fmts {
                    out.push(' ');
                    out.push_str(pt);
                }
                out.push_str("\r\n");
                continue;
            }
        }
        let per_pt = ["a=rtpmap:", "a=fmtp:", "a=rtcp-fb:"]
            .iter()
            .find_map(|p| l.strip_prefix(p))
            .and_then(|r| r.split([' ', '/']).next());
        if audio
            && let Some(pt) = per_pt
            && !keep.iter().any(|k| k == pt)
        {
            continue;
        }
        out.push_str(l);
        out.push_str("\r\n");
    }
    out
}

/// The codec and telephone-event payload type our answer settled on: the first G.711 format
/// of its audio line (the browser sends what the answer lists first).
fn negotiated(answer: &str) -> Result<Negotiated, PeerError> {
    let m = answer
        .lines()
        .find(|l| l.starts_with("m=audio"))
        .ok_or_else(|| PeerError::Offer("no audio in the offer".into()))?;
    let codec = m
        .split_whitespace()
        .skip(3)
        .find_map(|pt| match pt {
            "0" => Some(Codec::Pcmu),
            "8" => Some(Codec::Pcma),
            _ => None,
        })
        .ok_or_else(|| PeerError::Offer("the offer has neither PCMU nor PCMA".into()))?;
    let dtmf_pt = answer.lines().find_map(|l| {
        let rest = l.strip_prefix("a=rtpmap:")?;
        let (pt, name) = rest.split_once(' ')?;
        name.to_ascii_lowercase()
            .starts_with("telephone-event/8000")
            .then(|| pt.parse().ok())
            .flatten()
    });
    Ok(Negotiated {
        codec,
        dtmf_pt,
        remote: None,
        direction: Direction::SendRecv,
        answer_sdp: String::new(),
        srtp: None,
    })
}

struct Task {
    svc: Arc<Services>,
    pc: RTCPeerConnection,
    sender: RTCRtpSenderId,
    /// The SSRC our answer announces.
    ssrc: u32,
    /// The call's socket, for receiving, until the media clock takes it.
    public: Option<UdpSocket>,
    /// The same socket (a duplicate descriptor), for what the peer connection sends.
    send: StdUdpSocket,
    local: SocketAddr,
    /// For the leg's RTP state (its SSRC is already in our answer).
    ids: IdGen,
    /// The media clock's end of the sideband, until it takes the socket.
    sideband: Option<mpsc::Sender<SideDatagram>>,
    /// STUN and DTLS the media clock passes back once it has the socket.
    side_rx: mpsc::Receiver<SideDatagram>,
    /// Where the browser's last datagram came from: its end of the selected pair once the
    /// handshake completes over it.
    last_from: Option<SocketAddr>,
    media: Negotiated,
    events: mpsc::UnboundedSender<PeerEvent>,
    connected: bool,
}

impl Task {
    async fn run(mut self, mut stopped: oneshot::Receiver<()>) {
        let deadline = clock::now() + CONNECT_TIMEOUT;
        let mut from_browser = vec![0u8; MAX_DATAGRAM];
        let mut last_tick = clock::now();
        loop {
            if !self.drain() {
                break;
            }
            let timeout = self.pc.poll_timeout();
            let wake = if self.connected {
                timeout.map(|t| t.max(last_tick + CONNECTED_TICK))
            } else {
                Some(timeout.map_or(deadline, |t| t.min(deadline)))
            };
            tokio::select! {
                _ = &mut stopped => {
                    debug!("browser leg released; closing its peer connection");
                    let _ = self.pc.close();
                    self.flush();
                    return;
                }
                r = recv_from(self.public.as_ref(), &mut from_browser) => match r {
                    Ok((n, peer)) => self.read(peer, BytesMut::from(&from_browser[..n])),
                    Err(e) => debug!(error = %e, "browser socket"),
                },
                Some(d) = self.side_rx.recv() => self.read(d.from, BytesMut::from(&d.bytes[..])),
                () = crate::rt::callback_task::sleep_until(wake) => {
                    let now = clock::now();
                    if !self.connected && now >= deadline {
                        warn!("the browser did not connect in time");
                        let _ = self.events.send(PeerEvent::Lost);
                        return;
                    }
                    last_tick = now;
                    if let Err(e) = self.pc.handle_timeout(now) {
                        debug!(error = %e, "peer connection timeout");
                    }
                }
            }
        }
        let _ = self.events.send(PeerEvent::Lost);
    }

    /// A datagram from the browser, for the peer connection.
    fn read(&mut self, from: SocketAddr, message: BytesMut) {
        self.last_from = Some(from);
        let msg = TaggedBytesMut {
            now: clock::now(),
            transport: TransportContext {
                local_addr: self.local,
                peer_addr: from,
                ecn: None,
                transport_protocol: TransportProtocol::UDP,
            },
            message,
        };
        if let Err(e) = self.pc.handle_read(msg) {
            debug!(error = %e, "datagram from the browser refused");
        }
    }

    /// Send what the peer connection has to send and act on its events. `false` once the
    /// connection is over.
    fn drain(&mut self) -> bool {
        self.flush();
        while let Some(ev) = self.pc.poll_event() {
            if let RTCPeerConnectionEvent::OnConnectionStateChangeEvent(state) = ev {
                debug!(%state, "browser connection");
                match state {
                    RTCPeerConnectionState::Connected if !self.connected => {
                        if let Err(e) = self.start_media() {
                            warn!(error = %e, "browser leg's media not started");
                            return false;
                        }
                    }
                    RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed => {
                        info!(%state, "browser connection lost");
                        return false;
                    }
                    _ => {}
                }
            }
        }
        // Nothing of the media comes this way (the media clock has it): drop what might.
        while self.pc.poll_read().is_some() {}
        // Sends caused by the reads above.
        self.flush();
        true
    }

    fn flush(&mut self) {
        while let Some(out) = self.pc.poll_write() {
            if let Err(e) = self.send.send_to(&out.message, out.transport.peer_addr) {
                debug!(error = %e, "send to the browser");
            }
        }
    }

    /// DTLS-SRTP is up: key the leg's SRTP with the handshake's keys and hand the leg and the
    /// socket to the media clock.
    fn start_media(&mut self) -> Result<(), PeerError> {
        let (Some(public), Some(sideband)) = (self.public.take(), self.sideband.take()) else {
            return Ok(());
        };
        let remote = self
            .last_from
            .ok_or_else(|| PeerError::Internal("connected before any datagram".into()))?;
        let keys = exported_keys(&mut self.pc, self.sender)?;
        // Out of tokio's reactor: from now on only the media thread reads it.
        let sock = public
            .into_std()
            .map_err(|e| PeerError::Socket(e.to_string()))?;
        let mut media = self.media.clone();
        media.remote = Some(remote);
        media.srtp = Some(keys);
        let leg = MediaLeg::new(
            clock::now(),
            &mut self.ids,
            &media,
            self.svc.prompts.clone(),
            Some(self.svc.cfg.media.rtp_timeout),
        );
        debug_assert_eq!(leg.session().ssrc(), self.ssrc);
        let stream = Stream::new(leg);
        self.svc.media.start_webrtc_stream(&stream, sock, sideband);
        self.connected = true;
        info!(codec = ?media.codec, %remote, "browser leg connected (DTLS-SRTP up)");
        let _ = self.events.send(PeerEvent::Connected(stream));
        Ok(())
    }
}

/// A datagram from the call's socket while the task still reads it; never, after.
async fn recv_from(
    sock: Option<&UdpSocket>,
    buf: &mut [u8],
) -> std::io::Result<(usize, SocketAddr)> {
    match sock {
        Some(s) => s.recv_from(buf).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANSWER: &str = "v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 8 0 126\r\nc=IN IP4 0.0.0.0\r\n\
        a=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:126 telephone-event/8000\r\n";

    #[test]
    fn the_answer_decides_codec_and_telephone_event() {
        let n = negotiated(ANSWER).unwrap();
        assert_eq!(n.codec, Codec::Pcma, "the first G.711 format listed");
        assert_eq!(
            n.dtmf_pt,
            Some(126),
            "the browser's payload type, passed through"
        );
        let pcmu = ANSWER.replace("SAVPF 8 0 126", "SAVPF 0 8");
        assert_eq!(negotiated(&pcmu).unwrap().codec, Codec::Pcmu);
    }

    /// Chromium's audio offer, as it sends it (the codecs part).
    const CHROMIUM_OFFER: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
        a=group:BUNDLE 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126\r\n\
        c=IN IP4 0.0.0.0\r\na=mid:0\r\na=sendrecv\r\na=rtcp-mux\r\n\
        a=rtpmap:111 opus/48000/2\r\na=rtcp-fb:111 transport-cc\r\na=fmtp:111 minptime=10;useinbandfec=1\r\n\
        a=rtpmap:63 red/48000/2\r\na=fmtp:63 111/111\r\na=rtpmap:9 G722/8000\r\n\
        a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:13 CN/8000\r\n\
        a=rtpmap:110 telephone-event/48000\r\na=fmtp:110 0-15\r\n\
        a=rtpmap:126 telephone-event/8000\r\na=fmtp:126 0-15\r\n";

    #[test]
    fn only_g711_and_8khz_telephone_event_are_left_of_the_offer() {
        let o = g711_only(CHROMIUM_OFFER);
        assert!(o.contains("m=audio 9 UDP/TLS/RTP/SAVPF 0 8 126\r\n"), "{o}");
        for gone in [
            "opus",
            "red/",
            "G722",
            "CN/",
            "telephone-event/48000",
            "a=fmtp:110",
            "a=rtcp-fb:111",
        ] {
            assert!(!o.contains(gone), "{gone} left in {o}");
        }
        for kept in [
            "a=rtpmap:126 telephone-event/8000",
            "a=fmtp:126 0-15",
            "a=mid:0",
            "a=rtcp-mux",
        ] {
            assert!(o.contains(kept), "{kept} missing in {o}");
        }
    }

    /// The offer Chromium makes is answered with PCMU first and its 8 kHz telephone-event.
    #[test]
    fn chromium_s_offer_settles_on_pcmu_and_its_telephone_event() {
        let now = crate::clock::now();
        let mut pc = build(now).unwrap();
        let _ = pc.add_track(pcmu_track("h", "h", 9));
        let offer = RTCSessionDescription::offer(g711_only(&with_ice(CHROMIUM_OFFER))).unwrap();
        pc.set_remote_description(now, offer).unwrap();
        let sdp = pc.create_answer(None).unwrap().sdp;
        let n = negotiated(&sdp).unwrap();
        assert_eq!(n.codec, Codec::Pcmu, "{sdp}");
        assert_eq!(n.dtmf_pt, Some(126), "{sdp}");
    }

    /// A DTLS-SRTP handshake between a browser-like `rtc` peer connection (the DTLS client,
    /// offering, full ICE) and ours, datagrams carried in memory: the keys we export open what
    /// the browser's own SRTP sends and seal what it opens. Keys taken in the wrong role or
    /// order (RFC 5764 §4.2) fail both.
    #[test]
    fn the_exported_keys_speak_the_browser_s_srtp_both_ways() {
        use crate::media::rtp::{self, RtpHeader, RtpPacket};
        use crate::media::srtp::Srtp;
        use rtc::peer_connection::message::{RTCMessage, TaggedRTCMessage};

        let b_addr: SocketAddr = "10.0.0.1:5000".parse().unwrap();
        let h_addr: SocketAddr = "10.0.0.2:6000".parse().unwrap();
        let mut now = clock::now();
        let mut browser = build(now).unwrap();
        let b_sender = browser.add_track(pcmu_track("b", "b", 0xB0B)).unwrap();
        let host = CandidateHostConfig {
            base_config: CandidateConfig {
                network: "udp".into(),
                address: b_addr.ip().to_string(),
                port: b_addr.port(),
                component: 1,
                ..Default::default()
            },
            ..Default::default()
        }
        .new_candidate_host()
        .unwrap();
        browser
            .add_local_candidate(RTCIceCandidate::from(&host).to_json().unwrap())
            .unwrap();
        let offer = browser.create_offer(None).unwrap();
        browser.set_local_description(now, offer).unwrap();
        let offer = browser.local_description().unwrap().sdp;
        let (mut ours, sender, answer) = answering(now, &offer, 0x5EED, h_addr).unwrap();
        browser
            .set_remote_description(now, RTCSessionDescription::answer(answer).unwrap())
            .unwrap();

        let tagged = |now, local, peer, message: BytesMut| TaggedBytesMut {
            now,
            transport: TransportContext {
                local_addr: local,
                peer_addr: peer,
                ecn: None,
                transport_protocol: TransportProtocol::UDP,
            },
            message,
        };
        let connected = |pc: &mut RTCPeerConnection, up: &mut bool| {
            while let Some(ev) = pc.poll_event() {
                if let RTCPeerConnectionEvent::OnConnectionStateChangeEvent(s) = ev {
                    *up |= s == RTCPeerConnectionState::Connected;
                }
            }
        };
        let (mut b_up, mut h_up) = (false, false);
        for _ in 0..2000 {
            while let Some(out) = browser.poll_write() {
                let _ = ours.handle_read(tagged(now, h_addr, b_addr, out.message));
            }
            while let Some(out) = ours.poll_write() {
                let _ = browser.handle_read(tagged(now, b_addr, h_addr, out.message));
            }
            connected(&mut browser, &mut b_up);
            connected(&mut ours, &mut h_up);
            if b_up && h_up {
                break;
            }
            now += Duration::from_millis(10);
            let _ = browser.handle_timeout(now);
            let _ = ours.handle_timeout(now);
        }
        assert!(b_up && h_up, "connected: browser {b_up}, ours {h_up}");
        let keys = exported_keys(&mut ours, sender).unwrap();
        let mut srtp = Srtp::new(&keys).unwrap();
        while ours.poll_write().is_some() {}
        while browser.poll_write().is_some() {}

        // The browser speaks: its SRTP opens with our keys.
        let speech: Vec<u8> = (0..160u8).collect();
        let packet = rtc::rtp::Packet {
            header: rtc::rtp::header::Header {
                version: 2,
                payload_type: 0,
                sequence_number: 7,
                timestamp: 1120,
                ssrc: 0xB0B,
                ..Default::default()
            },
            payload: bytes::Bytes::from(speech.clone()),
        };
        browser
            .rtp_sender(b_sender)
            .unwrap()
            .write_rtp(now, packet)
            .unwrap();
        let wire = browser.poll_write().expect("the browser's SRTP").message;
        let mut out = [0u8; 1500];
        let plain = srtp.unprotect(&wire, &mut out).expect("our keys open it");
        let p = RtpPacket::parse(plain).unwrap();
        assert_eq!((p.ssrc, p.seq, p.payload), (0xB0B, 7, &speech[..]));

        // We speak: the browser's SRTP opens what ours sealed.
        let h = RtpHeader {
            pt: 0,
            marker: false,
            seq: 1,
            ts: 160,
            ssrc: 0x5EED,
        };
        let mut b = vec![0u8; 12 + 160 + srtp.overhead()];
        let n = rtp::write_packet(&mut b, &h, &[0x33; 160]);
        let n = srtp.protect(&mut b, n).unwrap();
        browser
            .handle_read(tagged(now, b_addr, h_addr, BytesMut::from(&b[..n])))
            .unwrap();
        let mut heard = None;
        while let Some(TaggedRTCMessage { message, .. }) = browser.poll_read() {
            if let RTCMessage::RtpPacket(_, p) = message {
                heard = Some(p);
            }
        }
        let heard = heard.expect("the browser opened our SRTP");
        assert_eq!(heard.header.ssrc, 0x5EED);
        assert_eq!(&heard.payload[..], &[0x33; 160][..]);
    }

    /// What Chromium's offer also carries (ICE and DTLS attributes), for the peer connection.
    fn with_ice(offer: &str) -> String {
        offer.replace(
            "a=mid:0\r\n",
            "a=mid:0\r\na=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\n\
             a=fingerprint:sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF\r\n\
             a=setup:actpass\r\n",
        )
    }

    #[test]
    fn an_offer_without_g711_is_the_page_s_fault() {
        let opus = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\n";
        assert!(matches!(negotiated(opus), Err(PeerError::Offer(_))));
        assert!(matches!(negotiated("v=0\r\n"), Err(PeerError::Offer(_))));
    }

    /// A browser's offer is answered with G.711 and telephone-event only,
    /// ICE-lite, DTLS passive and our host candidate.
    #[test]
    fn a_browser_offer_is_answered_ice_lite_with_g711() {
        let now = clock::now();
        let mut browser = build(now).unwrap();
        let _ = browser.add_track(pcmu_track("b", "b", 7));
        let offer = browser.create_offer(None).unwrap();
        let mut pc = build(now).unwrap();
        pc.set_remote_description(now, offer).unwrap();
        let answer = pc.create_answer(None).unwrap();
        let sdp = answer.sdp.clone();
        assert!(sdp.contains("a=ice-lite"), "{sdp}");
        assert!(sdp.contains("a=setup:passive"), "{sdp}");
        assert!(sdp.contains("PCMU/8000"), "{sdp}");
        assert!(!sdp.to_ascii_lowercase().contains("opus"), "{sdp}");
        assert_eq!(negotiated(&sdp).unwrap().codec, Codec::Pcmu);
    }
}
