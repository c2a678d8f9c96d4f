//! One call leg's media, composed: the RTP session, the player on its 20 ms pacer, and the
//! three DTMF detectors behind one de-duplicator. PURE: the call task feeds it datagrams, SIP
//! INFO bodies and time, and sends the packets it writes.
//!
//! The outgoing stream never gaps: when nothing is playing the player yields the codec's
//! silence, so PBX media timers stay happy and the RTP clock stays continuous.
//!
//! Bridged to another leg ([`MediaLeg::set_bridged`]), the leg's outgoing stream carries the
//! other leg's audio instead of its player's ([`MediaLeg::relay`]): the same SSRC, sequence and
//! timestamp space from the first prompt through the conversation and back to hold music. The
//! same constructor serves an inbound caller (from `sdp::negotiate`) and an outbound leg (from
//! `sdp::accept_answer`): a leg is a negotiated session, whichever side offered.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::amd::{self, AmdConfig, EndCue, GreetingEnd, Verdict};
use super::bridge::OneWay;
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
/// Room for one RTP packet we send: header + 160 bytes, and an SRTP tag (at most 10 bytes).
pub const MAX_PACKET: usize = 12 + 160 + 64;
/// The largest datagram an SRTP leg decrypts (the media clock receives up to an Ethernet MTU).
pub const MAX_DATAGRAM: usize = 1500;

/// What the call task must act on; drain with [`MediaLeg::poll_event`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaEvent {
    /// A key press, once, however many ways it arrived.
    DigitReceived { digit: Digit, method: DtmfMethod },
    /// The player's queue drained.
    PlaybackFinished,
    /// No RTP for the inactivity timeout.
    Inactive,
    /// Answering-machine detection ([`MediaLeg::screen`]) decided what answered.
    Screened(Verdict),
    /// After a machine verdict: the greeting is over (the message may be left now).
    GreetingEnded(EndCue),
}

/// Answering-machine detection on a leg's inbound audio: the verdict, then (a machine) the end
/// of its greeting. Boxed in the leg: most legs never screen, and the leg's hot state stays
/// small.
#[derive(Debug)]
struct Screening {
    cfg: AmdConfig,
    detector: amd::Detector,
    end: Option<GreetingEnd>,
}

impl Screening {
    /// Feed one decoded frame; the event it decides, and whether screening is over.
    fn handle_frame(&mut self, now: Instant, pcm: &[i16]) -> (Option<MediaEvent>, bool) {
        if let Some(end) = self.end.as_mut() {
            let cue = end.handle_frame(now, pcm);
            return (cue.map(MediaEvent::GreetingEnded), cue.is_some());
        }
        match self.detector.handle_frame(now, pcm) {
            Some(v @ Verdict::Machine(_)) => {
                self.end = Some(GreetingEnd::new(&self.cfg, now));
                (Some(MediaEvent::Screened(v)), false)
            }
            Some(v) => (Some(MediaEvent::Screened(v)), true),
            None => (None, false),
        }
    }
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
    /// Bridged: the player is paused and the outgoing stream carries what [`Self::relay`]
    /// writes into it.
    bridged: bool,
    /// Whether decoded caller audio is kept for [`Self::take_audio`] (voicemail).
    capture: bool,
    captured: Vec<i16>,
    /// Answering-machine detection, while it listens ([`Self::screen`]).
    screening: Option<Box<Screening>>,
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
            bridged: false,
            capture: false,
            captured: Vec::new(),
            screening: None,
            events: VecDeque::new(),
        }
    }

    /// Listen to the far end's audio from `now` for answering-machine detection: one
    /// [`MediaEvent::Screened`], then, for a machine, one [`MediaEvent::GreetingEnded`]. The
    /// detector's own deadline is the caller's to keep (no audio at all decides nothing here).
    pub fn screen(&mut self, now: Instant, cfg: AmdConfig) {
        self.screening = Some(Box::new(Screening {
            cfg,
            detector: amd::Detector::new(cfg, now),
            end: None,
        }));
    }

    /// Stop answering-machine detection (a verdict came another way, or the leg moves on).
    pub fn stop_screening(&mut self) {
        self.screening = None;
    }

    /// The player, to enqueue prompts or stop them (barge-in).
    pub fn player(&mut self) -> &mut Player {
        &mut self.player
    }

    pub fn session(&self) -> &RtpSession {
        &self.session
    }

    /// Apply a re-negotiated session (re-INVITE: hold, unhold, new address).
    pub fn renegotiate(&mut self, now: Instant, negotiated: &Negotiated) {
        self.session.apply(now, negotiated);
    }

    /// Bridge this leg to another (`true`) or give it back to its player (`false`).
    /// Idempotent. While bridged the player is paused where it was (what it had queued, hold
    /// music say, resumes after the bridge: `player().stop()` drops it) and its frames are not
    /// sent, but the pacer keeps time, so the player resumes on schedule and without a burst.
    /// The first frame after the bridge carries the marker bit.
    pub fn set_bridged(&mut self, on: bool) {
        if self.bridged != on {
            self.bridged = on;
            if !on {
                self.session.mark_next();
            }
        }
    }

    /// Whether the leg is bridged (see [`Self::set_bridged`]).
    pub fn bridged(&self) -> bool {
        self.bridged
    }

    /// While bridged to `to`: a datagram that arrived on this leg, re-originated on `to`'s
    /// outgoing stream through `way` (this leg's direction of the bridge: PCMU/PCMA converted,
    /// telephone-events passed with `to`'s payload type) and written into `buf`. Returns
    /// `(len, destination)` to send on `to`'s socket, or `None` when there is nothing to send.
    /// The datagram counts as this leg's activity (the inactivity timer) whether or not it is
    /// relayed; keys are not detected (they reach the other party as telephone-events).
    pub fn relay(
        &mut self,
        now: Instant,
        from: SocketAddr,
        bytes: &[u8],
        way: &mut OneWay,
        to: &mut Self,
        buf: &mut [u8],
    ) -> Option<(usize, SocketAddr)> {
        // Decrypted on the stack on an SRTP leg; plain RTP is read where it lies.
        let mut room: [u8; MAX_DATAGRAM];
        let scratch: &mut [u8] = if self.session.is_srtp() {
            room = [0; MAX_DATAGRAM];
            &mut room
        } else {
            &mut []
        };
        let inbound = self.session.accept(now, from, bytes, scratch).ok()?;
        let n = way
            .forward(&inbound, &self.session, &mut to.session, buf)
            .ok()?;
        Some((n, to.session.destination()?))
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
    /// then), so prompts keep their timing. While bridged nothing is produced (see
    /// [`Self::set_bridged`]); call it anyway, so the pacer keeps time.
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<(usize, SocketAddr)> {
        if self.bridged {
            // The other leg's audio fills the stream; the pacer only keeps time.
            while self.pacer.next_due() <= now {
                self.pacer.advance(now);
            }
            return None;
        }
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
        // Decrypted on the stack on an SRTP leg; plain RTP is read where it lies.
        let mut room: [u8; MAX_DATAGRAM];
        let scratch: &mut [u8] = if self.session.is_srtp() {
            room = [0; MAX_DATAGRAM];
            &mut room
        } else {
            &mut []
        };
        let Ok(inbound) = self.session.accept(now, from, bytes, scratch) else {
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
                if let Some(s) = self.screening.as_deref_mut() {
                    let (ev, over) = s.handle_frame(now, &pcm);
                    self.events.extend(ev);
                    if over {
                        self.screening = None;
                    }
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
            srtp: None,
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

    const PEER_A: &str = "10.0.0.1:4000";
    const PEER_B: &str = "10.0.0.2:5000";

    fn leg_to(
        t0: Instant,
        seed: u64,
        codec: Codec,
        dtmf_pt: u8,
        peer: &str,
        inactivity: Option<Duration>,
    ) -> MediaLeg {
        let n = Negotiated {
            codec,
            dtmf_pt: Some(dtmf_pt),
            remote: Some(peer.parse().unwrap()),
            direction: Direction::SendRecv,
            answer_sdp: String::new(),
            srtp: None,
        };
        MediaLeg::new(
            t0,
            &mut IdGen::seeded(seed),
            &n,
            Arc::new(PromptLibrary::default()),
            inactivity,
        )
    }

    /// The headers of the frames `leg` sends at `now`.
    fn frames(leg: &mut MediaLeg, now: Instant) -> Vec<crate::media::rtp::RtpHeader> {
        let mut buf = [0u8; MAX_PACKET];
        let mut out = Vec::new();
        while let Some((n, _)) = leg.poll_transmit(now, &mut buf) {
            out.push(RtpPacket::parse(&buf[..n]).unwrap().header());
        }
        out
    }

    fn packet(pt: u8, seq: u16, ts: u32, marker: bool, payload: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; 12 + payload.len()];
        let h = crate::media::rtp::RtpHeader {
            pt,
            marker,
            seq,
            ts,
            ssrc: 0xABCD,
        };
        let n = crate::media::rtp::write_packet(&mut b, &h, payload);
        b.truncate(n);
        b
    }

    /// Prompt → bridge → prompt on B's stream: one SSRC, no sequence gap, the timestamp one
    /// frame on at each change with the marker set; A's audio arrives converted to B's codec,
    /// A's key as a telephone-event in B's payload type (and not as a key of A's).
    #[test]
    fn a_bridged_leg_carries_the_other_legs_audio_in_its_own_stream() {
        let t0 = crate::clock::now();
        let mut a = leg_to(t0, 1, Codec::Pcmu, 101, PEER_A, None);
        let mut b = leg_to(t0, 2, Codec::Pcma, 96, PEER_B, None);
        let mut now = t0;
        let mut sent = Vec::new();
        for _ in 0..3 {
            frames(&mut a, now);
            sent.extend(frames(&mut b, now));
            now += PTIME;
        }
        a.set_bridged(true);
        b.set_bridged(true);
        assert!(frames(&mut b, now).is_empty(), "B's player is paused");
        let mut way = OneWay::new();
        let mut buf = [0u8; MAX_PACKET];
        let speech: Vec<u8> = (0..160u8).collect();
        let from_a: SocketAddr = PEER_A.parse().unwrap();
        let relayed = |a: &mut MediaLeg, b: &mut MediaLeg, way: &mut OneWay, bytes: &[u8]| {
            let mut buf = [0u8; MAX_PACKET];
            let (n, dest) = a.relay(now, from_a, bytes, way, b, &mut buf).unwrap();
            assert_eq!(dest, PEER_B.parse::<SocketAddr>().unwrap());
            let p = RtpPacket::parse(&buf[..n]).unwrap();
            (p.header(), p.payload.to_vec())
        };
        let (first, payload) = relayed(
            &mut a,
            &mut b,
            &mut way,
            &packet(0, 7, 1000, false, &speech),
        );
        let expect: Vec<u8> = speech
            .iter()
            .map(|&u| crate::media::g711::ulaw_to_alaw(u))
            .collect();
        assert_eq!((first.pt, payload), (8, expect), "PCMU converted to PCMA");
        let five = crate::media::dtmf::Digit::from_char('5').unwrap();
        let ev = crate::media::dtmf::rfc4733::encode_event(five, false, 10, 160);
        let (event, payload) = relayed(&mut a, &mut b, &mut way, &packet(101, 8, 1160, true, &ev));
        assert_eq!(
            (event.pt, event.marker, payload.as_slice()),
            (96, true, &ev[..])
        );
        sent.extend([first, event]);
        assert_eq!(a.poll_event(), None, "keys are not detected while bridged");
        assert_eq!(
            a.relay(
                now,
                "10.6.6.6:1".parse().unwrap(),
                &packet(0, 9, 1320, false, &speech),
                &mut way,
                &mut b,
                &mut buf
            ),
            None,
            "strict latching still applies"
        );
        now += PTIME;
        assert!(frames(&mut b, now).is_empty());
        b.set_bridged(false);
        b.set_bridged(false);
        now += PTIME;
        let resumed = frames(&mut b, now);
        assert_eq!(
            resumed.len(),
            1,
            "one frame: the pacer kept time, no catch-up burst"
        );
        sent.extend(resumed);
        sent.extend(frames(&mut b, now + PTIME));
        assert!(sent.iter().all(|h| h.ssrc == sent[0].ssrc), "one SSRC");
        let seqs: Vec<u16> = sent
            .iter()
            .map(|h| h.seq.wrapping_sub(sent[0].seq))
            .collect();
        assert_eq!(seqs, [0, 1, 2, 3, 4, 5, 6], "no sequence gap");
        let tss: Vec<u32> = sent.iter().map(|h| h.ts.wrapping_sub(sent[0].ts)).collect();
        assert_eq!(tss, [0, 160, 320, 480, 640, 800, 960]);
        let marks: Vec<bool> = sent.iter().map(|h| h.marker).collect();
        assert_eq!(marks, [true, false, false, true, true, true, false]);
    }

    /// While bridged, the leg whose own peer stopped sending times out; the other, whose peer
    /// keeps sending (relayed away), does not.
    #[test]
    fn a_bridged_leg_whose_peer_is_silent_goes_inactive() {
        let t0 = crate::clock::now();
        let secs = Duration::from_secs;
        let mut a = leg_to(t0, 1, Codec::Pcmu, 101, PEER_A, Some(secs(1)));
        let mut b = leg_to(t0, 2, Codec::Pcmu, 101, PEER_B, Some(secs(1)));
        a.set_bridged(true);
        b.set_bridged(true);
        let mut way = OneWay::new();
        let mut buf = [0u8; MAX_PACKET];
        let mut events = (Vec::new(), Vec::new());
        for i in 0..100u16 {
            let now = t0 + PTIME * u32::from(i);
            let p = packet(0, i, u32::from(i) * 160, false, &[0xFF; 160]);
            a.relay(now, PEER_A.parse().unwrap(), &p, &mut way, &mut b, &mut buf);
            for (leg, out) in [(&mut a, &mut events.0), (&mut b, &mut events.1)] {
                leg.handle_timeout(now);
                out.extend(std::iter::from_fn(|| leg.poll_event()).map(|e| (e, now - t0)));
            }
        }
        assert_eq!(events.0, []);
        assert_eq!(events.1, [(MediaEvent::Inactive, secs(1))]);
    }

    /// An outbound leg (customer or agent) is built the same way, from our offer and the far
    /// end's answer: it plays to the address and in the codec the answer named, and takes the
    /// answerer's keys, before any bridge.
    #[test]
    fn an_answered_outbound_leg_plays_and_listens_like_an_inbound_one() {
        use crate::media::sdp::{LocalMedia, LocalOrigin, accept_answer, build_offer};
        let t0 = crate::clock::now();
        let mut ids = IdGen::seeded(5);
        let local = LocalMedia::new("127.0.0.1".parse().unwrap(), 20_000);
        let offer = build_offer(&local, &mut LocalOrigin::new(&mut ids));
        let answer = "v=0\r\no=agent 9 9 IN IP4 10.0.0.9\r\ns=-\r\nc=IN IP4 10.0.0.9\r\nt=0 0\r\n\
                      m=audio 7000 RTP/AVP 8 101\r\na=rtpmap:101 telephone-event/8000\r\n";
        let negotiated = accept_answer(&offer, answer).unwrap();
        let mut leg = MediaLeg::new(
            t0,
            &mut ids,
            &negotiated,
            Arc::new(PromptLibrary::default()),
            Some(Duration::from_secs(30)),
        );
        let mut buf = [0u8; MAX_PACKET];
        let (n, dest) = leg.poll_transmit(t0, &mut buf).unwrap();
        let p = RtpPacket::parse(&buf[..n]).unwrap();
        assert_eq!(dest, "10.0.0.9:7000".parse::<SocketAddr>().unwrap());
        assert_eq!((p.pt, p.payload[0]), (8, Codec::Pcma.silence_byte()));
        let five = crate::media::dtmf::Digit::from_char('5').unwrap();
        let ev = crate::media::dtmf::rfc4733::encode_event(five, true, 10, 800);
        leg.handle_datagram(t0, dest, &packet(101, 1, 160, true, &ev));
        assert_eq!(
            leg.poll_event(),
            Some(MediaEvent::DigitReceived {
                digit: five,
                method: DtmfMethod::Rfc4733
            })
        );
        assert_eq!(leg.session_timeout(), Some(t0 + Duration::from_secs(30)));
    }

    /// The customer's leg is SRTP, the agent's plain RTP. Prompts leave protected with the
    /// customer's key; the customer's SRTP arrives decrypted and is relayed to the agent in the
    /// clear; the agent's audio is relayed to the customer protected with the customer leg's
    /// own context; and a forged or plain packet on the SRTP leg is dropped and counted.
    #[test]
    fn an_srtp_leg_protects_prompts_and_relayed_audio_and_drops_forgeries() {
        use crate::media::sdes::{MasterKey, Suite};
        use crate::media::sdp::SrtpKeys;
        use crate::media::session::{Reject, RtpSession};
        use crate::media::srtp::SrtpError;
        let t0 = crate::clock::now();
        let k = |seed: u8| MasterKey::generate(|b| b.fill(seed));
        let keys = |l, r| SrtpKeys {
            suite: Suite::AesCm128HmacSha1_80,
            local: k(l),
            remote: k(r),
            remote_mki: None,
        };
        let srtp = |peer: &str, l, r| Negotiated {
            codec: Codec::Pcmu,
            dtmf_pt: Some(101),
            remote: Some(peer.parse().unwrap()),
            direction: Direction::SendRecv,
            answer_sdp: String::new(),
            srtp: Some(keys(l, r)),
        };
        let lib = Arc::new(PromptLibrary::default());
        let mut a = MediaLeg::new(t0, &mut IdGen::seeded(1), &srtp(PEER_A, 1, 2), lib, None);
        let mut b = leg_to(t0, 2, Codec::Pcmu, 101, PEER_B, None);
        // The customer's phone: sends with key 2, expects key 1; we pose as it at PEER_A.
        let ours: SocketAddr = "10.0.0.100:20000".parse().unwrap();
        let mut phone = RtpSession::new(
            t0,
            &mut IdGen::seeded(3),
            &srtp(&ours.to_string(), 2, 1),
            None,
        );
        let mut buf = [0u8; MAX_PACKET];
        let mut scratch = [0u8; MAX_DATAGRAM];

        let (n, dest) = a.poll_transmit(t0, &mut buf).unwrap();
        assert_eq!((n, dest), (12 + 160 + 10, PEER_A.parse().unwrap()));
        assert_ne!(
            buf[12..172],
            [Codec::Pcmu.silence_byte(); 160],
            "not G.711 on the wire"
        );
        let heard = phone.accept(t0, ours, &buf[..n], &mut scratch).unwrap();
        assert_eq!(heard.packet.payload, &[Codec::Pcmu.silence_byte(); 160][..]);

        a.set_bridged(true);
        b.set_bridged(true);
        let speech: Vec<u8> = (0..160u8).collect();
        let mut wire = [0u8; MAX_PACKET];
        let n = phone.write_frame(&mut wire, &speech, false, 1);
        assert_eq!(n, 182);
        let (mut ab, mut ba) = (OneWay::new(), OneWay::new());
        let (m, dest) = a
            .relay(
                t0,
                PEER_A.parse().unwrap(),
                &wire[..n],
                &mut ab,
                &mut b,
                &mut buf,
            )
            .unwrap();
        assert_eq!((m, dest), (172, PEER_B.parse().unwrap()));
        assert_eq!(
            &buf[12..m],
            &speech[..],
            "the agent hears the customer in the clear"
        );

        let agent = packet(0, 1, 160, false, &speech);
        let (m, dest) = b
            .relay(
                t0,
                PEER_B.parse().unwrap(),
                &agent,
                &mut ba,
                &mut a,
                &mut buf,
            )
            .unwrap();
        assert_eq!((m, dest), (182, PEER_A.parse().unwrap()));
        assert_ne!(&buf[12..172], &speech[..]);
        let heard = phone.accept(t0, ours, &buf[..m], &mut scratch).unwrap();
        assert_eq!(
            heard.packet.payload,
            &speech[..],
            "the customer decrypts the agent"
        );

        // Plain RTP and a forged tag at the SRTP leg: dropped, counted, nothing relayed.
        let mut forged = wire;
        forged[n - 1] ^= 0x80;
        for bad in [&agent[..], &forged[..n]] {
            assert_eq!(
                a.relay(t0, PEER_A.parse().unwrap(), bad, &mut ab, &mut b, &mut buf),
                None
            );
            a.set_bridged(false);
            a.handle_datagram(t0, PEER_A.parse().unwrap(), bad);
            a.set_bridged(true);
        }
        let c = a.session().counters();
        assert_eq!((c.received, c.unauthenticated, c.rejected), (1, 4, 4));
        assert_eq!(
            phone.accept(t0, ours, &agent, &mut scratch).map(|_| ()),
            Err(Reject::Srtp(SrtpError::Unauthenticated))
        );
    }

    /// A prompt of the shipped library as a far end's 8 kHz audio.
    fn wav(id: &str) -> Vec<i16> {
        let path = format!("{}/prompts/audio/{id}.wav", env!("CARGO_MANIFEST_DIR"));
        let mut r = hound::WavReader::open(path).unwrap();
        r.samples::<i16>().map(Result::unwrap).collect()
    }

    /// Issue 21: the customer's audio arriving as PCMU RTP reaches the answering-machine
    /// detector: a recorded greeting then the beep gives `Screened(Machine)` and then
    /// `GreetingEnded(Beep)`; a short "hello" then silence, `Screened(Human)` and nothing more;
    /// a leg not screening reports neither.
    #[test]
    fn screening_hears_the_far_ends_rtp() {
        let peer: SocketAddr = PEER_A.parse().unwrap();
        let run = |audio: &[i16], screen: bool| {
            let t0 = crate::clock::now();
            let mut leg = leg_to(t0, 1, Codec::Pcmu, 101, PEER_A, None);
            if screen {
                leg.screen(t0, AmdConfig::default());
            }
            let mut events = Vec::new();
            let tail = vec![0_i16; 8 * 3000];
            for (i, frame) in audio.chunks(160).chain(tail.chunks(160)).enumerate() {
                let mut pcm = [0_i16; 160];
                pcm[..frame.len()].copy_from_slice(frame);
                let mut ulaw = [0_u8; 160];
                crate::media::g711::ulaw_encode_slice(&pcm, &mut ulaw);
                let n = u16::try_from(i).unwrap();
                let now = t0 + PTIME * u32::from(n + 1);
                leg.handle_datagram(now, peer, &packet(0, n, u32::from(n) * 160, false, &ulaw));
                events.extend(std::iter::from_fn(|| leg.poll_event()));
            }
            events
        };
        let mut machine = wav("voicemail_intro");
        machine.extend(vec![0; 8 * 300]);
        machine.extend(wav("beep"));
        let events = run(&machine, true);
        assert!(
            matches!(
                events[..],
                [
                    MediaEvent::Screened(Verdict::Machine(_)),
                    MediaEvent::GreetingEnded(EndCue::Beep)
                ]
            ),
            "{events:?}"
        );
        let mut hello = vec![0; 8 * 300];
        hello.extend(wav("digit_1"));
        assert_eq!(run(&hello, true), [MediaEvent::Screened(Verdict::Human)]);
        assert_eq!(run(&machine, false), []);
    }
}
