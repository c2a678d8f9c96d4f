//! One call leg's media, composed: the RTP session, the player on its 20 ms pacer, and the
//! three DTMF detectors behind one de-duplicator. PURE: the call task feeds it datagrams, SIP
//! INFO bodies and time, and sends the packets it writes.
//!
//! The outgoing stream never gaps: when nothing is playing the player yields the codec's
//! silence, so PBX media timers stay happy and the RTP clock stays continuous.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::dtmf::dedup::Dedup;
use super::dtmf::{Digit, DtmfMethod, inband, info, rfc4733};
use super::pacer::Pacer;
use super::player::{Player, PlayerEvent};
use super::prompts::PromptLibrary;
use super::sdp::Negotiated;
use super::session::{PayloadKind, RtpSession, SessionEvent};
use crate::idgen::IdGen;

/// The G.711 frame period.
pub const PTIME: Duration = Duration::from_millis(20);
/// Room for one RTP packet we send: header + 160 bytes.
pub const MAX_PACKET: usize = 12 + 160 + 64;

/// What the call task must act on; drain with [`MediaLeg::poll_event`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaEvent {
    /// A key press, once, however many ways it arrived.
    DigitReceived { digit: Digit, method: DtmfMethod },
    /// The player's queue drained.
    PlaybackFinished,
    /// No RTP for the inactivity timeout.
    Inactive,
}

/// Audio the caller sent, decoded, for voicemail recording.
pub type Pcm = [i16; 160];

/// Where in a leg the state that sending a frame and taking a datagram touch lies (byte
/// offsets), for a media clock that serves many legs and fetches the next ones' state while it
/// serves one: each leg is touched once per frame, so its state is never in the cache.
pub const HOT_OFFSETS: [usize; 10] = {
    use std::mem::offset_of;
    let session = offset_of!(MediaLeg, session);
    let inband = offset_of!(MediaLeg, inband);
    [
        offset_of!(MediaLeg, player),
        session,
        session + 64,
        offset_of!(MediaLeg, pacer),
        offset_of!(MediaLeg, events),
        inband,
        inband + 64,
        inband + 128,
        inband + 192,
        inband + 256,
    ]
};

/// One leg's media state.
pub struct MediaLeg {
    session: RtpSession,
    player: Player,
    pacer: Pacer,
    rfc4733: rfc4733::Detector,
    inband: inband::Detector,
    dedup: Dedup,
    /// Whether decoded caller audio is kept for [`Self::take_audio`] (voicemail).
    capture: bool,
    captured: Vec<i16>,
    events: VecDeque<MediaEvent>,
}

impl MediaLeg {
    /// Start the leg's media at `now`: the first packet is due at once.
    pub fn new(
        now: Instant,
        ids: &mut IdGen,
        negotiated: &Negotiated,
        prompts: Arc<PromptLibrary>,
        inactivity: Option<Duration>,
    ) -> Self {
        Self {
            session: RtpSession::new(now, ids, negotiated, inactivity),
            player: Player::new(negotiated.codec, prompts),
            pacer: Pacer::new(now, PTIME),
            rfc4733: rfc4733::Detector::new(),
            inband: inband::Detector::new(),
            dedup: Dedup::default(),
            capture: false,
            captured: Vec::new(),
            events: VecDeque::new(),
        }
    }

    /// The player, to enqueue prompts or stop them (barge-in).
    pub fn player(&mut self) -> &mut Player {
        &mut self.player
    }

    pub fn session(&self) -> &RtpSession {
        &self.session
    }

    /// The RTP session, for bridging (the relay writes into this leg's outgoing stream, so
    /// the caller keeps one SSRC from the prompts through to the agent).
    pub fn session_mut(&mut self) -> &mut RtpSession {
        &mut self.session
    }

    /// Apply a re-negotiated session (re-INVITE: hold, unhold, new address).
    pub fn renegotiate(&mut self, now: Instant, negotiated: &Negotiated) {
        self.session.apply(now, negotiated);
    }

    /// Frames the pacer had to skip because we fell too far behind (sent late = not sent).
    pub fn frames_skipped(&self) -> u64 {
        self.pacer.skipped()
    }

    /// Keep (or stop keeping) the caller's decoded audio, for voicemail.
    pub fn set_capture(&mut self, on: bool) {
        self.capture = on;
        if !on {
            self.captured.clear();
        }
    }

    /// Decoded caller audio captured since the last call.
    pub fn take_audio(&mut self) -> Vec<i16> {
        std::mem::take(&mut self.captured)
    }

    /// When the next frame is due (for a media clock that sends for many legs).
    pub fn next_frame_due(&self) -> Instant {
        self.pacer.next_due()
    }

    /// Move the first frame to `at` (a media clock spreading streams over its ticks); no-op
    /// once a frame was sent.
    pub fn start_at(&mut self, at: Instant) {
        self.pacer.start_at(at);
    }

    /// When the inactivity timer needs [`Self::handle_timeout`], if it runs.
    pub fn session_timeout(&self) -> Option<Instant> {
        self.session.poll_timeout()
    }

    /// Whether [`Self::poll_event`] has something.
    pub fn has_events(&self) -> bool {
        !self.events.is_empty()
    }

    /// Fire the inactivity timer if due.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.session.handle_timeout(now);
        while let Some(ev) = self.session.poll_event() {
            match ev {
                SessionEvent::Inactive => self.events.push_back(MediaEvent::Inactive),
            }
        }
    }

    /// The next packet due at `now`, written into `buf`: `(len, destination)`. Call until it
    /// returns `None`. Frames are produced on schedule even while on hold (nothing is sent
    /// then), so prompts keep their timing.
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<(usize, SocketAddr)> {
        loop {
            if self.pacer.next_due() > now {
                return None;
            }
            let tick = self.pacer.advance(now);
            let frame = self.player.next_frame();
            while let Some(PlayerEvent::PlaybackFinished) = self.player.poll_event() {
                self.events.push_back(MediaEvent::PlaybackFinished);
            }
            let dest = self
                .session
                .destination()
                .filter(|_| self.session.direction().sends());
            let elapsed = u32::try_from(tick.skipped + 1).unwrap_or(u32::MAX);
            if let Some(dest) = dest {
                let n =
                    self.session
                        .write_frame(buf, &frame.payload, frame.talkspurt_start, elapsed);
                return Some((n, dest));
            }
            // On hold: no packet, but the session still sees the tick, so its timestamp clock
            // keeps running and the first packet after the hold carries the marker.
            self.session
                .write_frame(&mut [], &frame.payload, frame.talkspurt_start, elapsed);
        }
    }

    /// A datagram arrived on the leg's RTP socket.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        let Ok(inbound) = self.session.accept(now, from, bytes) else {
            return;
        };
        let packet = inbound.packet;
        match inbound.kind {
            PayloadKind::TelephoneEvent => {
                if let Some(d) = self
                    .rfc4733
                    .handle(packet.ts, packet.marker, packet.payload)
                {
                    self.digit(now, d, DtmfMethod::Rfc4733);
                }
            }
            PayloadKind::Audio if !inbound.late && packet.payload.len() == 160 => {
                // On the stack, not in the leg: the leg is cold memory, the stack is not.
                let mut pcm: Pcm = [0; 160];
                self.session.codec().decode(packet.payload, &mut pcm);
                if self.capture {
                    self.captured.extend_from_slice(&pcm);
                }
                if let Some(c) = self.inband.push_frame(&pcm)
                    && let Some(d) = Digit::from_char(c)
                {
                    self.digit(now, d, DtmfMethod::Inband);
                }
            }
            PayloadKind::Audio | PayloadKind::Other => {}
        }
    }

    /// A SIP INFO arrived for this leg (already answered 200).
    pub fn handle_info(&mut self, now: Instant, content_type: &str, body: &[u8]) {
        if let Ok(d) = info::parse(content_type, body) {
            self.digit(now, d, DtmfMethod::Info);
        }
    }

    pub fn poll_event(&mut self) -> Option<MediaEvent> {
        self.events.pop_front()
    }

    fn digit(&mut self, now: Instant, digit: Digit, method: DtmfMethod) {
        if self.dedup.accept(now, digit, method) {
            self.events
                .push_back(MediaEvent::DigitReceived { digit, method });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::g711::Codec;
    use crate::media::rtp::RtpPacket;
    use crate::media::sdp::Direction;

    fn neg(direction: Direction) -> Negotiated {
        Negotiated {
            codec: Codec::Pcmu,
            dtmf_pt: Some(101),
            remote: Some("10.0.0.9:7000".parse().unwrap()),
            direction,
            answer_sdp: String::new(),
        }
    }

    /// Hold (we answered recvonly) sends nothing; after unhold the first packet has the marker
    /// and a timestamp that kept running through the hold, the sequence continues.
    #[test]
    fn hold_keeps_the_clock_and_marks_the_first_packet_after() {
        let t0 = crate::clock::now();
        let mut leg = MediaLeg::new(
            t0,
            &mut IdGen::seeded(7),
            &neg(Direction::SendRecv),
            Arc::new(PromptLibrary::default()),
            None,
        );
        let mut buf = [0u8; MAX_PACKET];
        let mut sent = Vec::new();
        let mut now = t0;
        let mut tick = |leg: &mut MediaLeg, now: Instant, sent: &mut Vec<_>| {
            while let Some((n, _)) = leg.poll_transmit(now, &mut buf) {
                sent.push(RtpPacket::parse(&buf[..n]).unwrap().header());
            }
        };
        for _ in 0..5 {
            tick(&mut leg, now, &mut sent);
            now += PTIME;
        }
        leg.renegotiate(now, &neg(Direction::RecvOnly));
        for _ in 0..50 {
            tick(&mut leg, now, &mut sent);
            now += PTIME;
        }
        assert_eq!(sent.len(), 5, "nothing sent on hold");
        leg.renegotiate(now, &neg(Direction::SendRecv));
        tick(&mut leg, now, &mut sent);
        let (before, after) = (sent[4], sent[5]);
        assert!(after.marker);
        assert_eq!(after.seq, before.seq.wrapping_add(1));
        assert_eq!(after.ts.wrapping_sub(before.ts), 51 * 160);
        assert_eq!(after.ssrc, before.ssrc);
    }
}
