//! One call leg's RTP state (RFC 3550), sans-IO: the outgoing stream's SSRC, sequence number
//! and timestamp (random initial values, §5.1), strict source latching of incoming packets, and
//! an inactivity timer.
//!
//! - Outgoing: [`RtpSession::write_frame`] once per 20 ms tick. The timestamp advances by 160 per
//!   frame period, skipped periods included; the sequence number advances per packet actually
//!   written. While we do not send (hold), nothing is written but the clock keeps running, and
//!   the first packet afterwards carries the marker bit (RFC 3551 §4.1).
//! - Incoming: [`RtpSession::accept`] takes packets only from the address the SDP named: no
//!   latching onto whoever sends first, which is how RTP bleed (CVE-2017-14099) hijacks media.
//! - Inactivity: [`RtpSession::poll_timeout`] / [`RtpSession::handle_timeout`] raise
//!   [`SessionEvent::Inactive`] after the configured time without an accepted packet, only
//!   while media is meant to flow both ways (not on hold).
//!
//! - SRTP (RFC 3711): when the SDP exchange keyed the leg ([`Negotiated::srtp`]), every packet
//!   written is protected and every datagram accepted must authenticate first (after the
//!   source check); one that does not is refused as [`Reject::Srtp`] and counted in
//!   [`Counters::unauthenticated`]. Callers leave [`RtpSession::overhead`] bytes of room.
//!
//! PURE: no sockets, no clocks (`now` is a parameter), no allocation per packet on plain RTP
//! (the SRTP library allocates one buffer per packet).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::idgen::IdGen;
use crate::media::g711::Codec;
use crate::media::rtp::{self, RtpError, RtpHeader, RtpPacket};
use crate::media::sdp::{Direction, Negotiated};
use crate::media::srtp::{Srtp, SrtpError};

/// Samples per 20 ms G.711 frame at 8 kHz: the timestamp step per frame period.
pub const SAMPLES_PER_FRAME: u32 = 160;

/// What an accepted packet carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadKind {
    /// Audio in the negotiated codec.
    Audio,
    /// RFC 4733 telephone-event on the negotiated PT: feed to `dtmf::rfc4733::Detector`.
    TelephoneEvent,
    /// Any other payload type (comfort noise, a codec we did not negotiate): ignore.
    Other,
}

/// An accepted incoming packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inbound<'a> {
    /// Audio, telephone-event or other.
    pub kind: PayloadKind,
    /// The parsed packet, borrowing the datagram.
    pub packet: RtpPacket<'a>,
    /// The sequence number is not newer than one already seen from this SSRC (reordered or
    /// duplicated): audio consumers may drop it.
    pub late: bool,
}

/// Why an incoming datagram was refused (counted in [`Counters::rejected`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Reject {
    /// The SDP named no address (hold with `c=0.0.0.0`), so no source is legitimate.
    #[error("no remote media address negotiated")]
    NoRemote,
    /// Sent from an address other than the one the SDP named (possible RTP bleed).
    #[error("RTP from an unexpected source")]
    WrongSource,
    /// We negotiated not to receive (sendonly or inactive).
    #[error("RTP while not receiving")]
    NotReceiving,
    /// Not a valid RTP packet.
    #[error(transparent)]
    Malformed(#[from] RtpError),
    /// An SRTP leg's packet that did not authenticate (or replayed, or a wrong MKI).
    #[error(transparent)]
    Srtp(#[from] SrtpError),
}

/// Something the call task must act on; drain with [`RtpSession::poll_event`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEvent {
    /// No packet was accepted for the inactivity time while media should flow: the peer is
    /// probably gone (hang up with a BYE).
    Inactive,
}

/// Packet counters for metrics and the end-of-call log line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Packets accepted.
    pub received: u64,
    /// Datagrams refused (wrong source, malformed, while not receiving).
    pub rejected: u64,
    /// Accepted packets that arrived late or duplicated.
    pub late: u64,
    /// Packets written for sending.
    pub sent: u64,
    /// Datagrams from the right source that SRTP refused (not authentic, replayed); also in
    /// `rejected`.
    pub unauthenticated: u64,
}

/// The RTP state of one call leg. Create it from the [`Negotiated`] outcome of the SDP
/// exchange; call [`RtpSession::apply`] after every re-INVITE.
#[derive(Debug)]
pub struct RtpSession {
    codec: Codec,
    dtmf_pt: Option<u8>,
    remote: Option<SocketAddr>,
    direction: Direction,
    // Outgoing stream.
    ssrc: u32,
    seq: u16,
    ts: u32,
    started: bool,
    force_marker: bool,
    // Incoming stream.
    in_ssrc: Option<u32>,
    in_max_seq: u16,
    // Inactivity.
    inactivity: Option<Duration>,
    last_activity: Instant,
    inactive_reported: bool,
    pending: Option<SessionEvent>,
    counters: Counters,
    /// SRTP contexts when the leg is keyed (boxed: the hot part of the session stays small).
    srtp: Option<Box<Srtp>>,
}

/// SRTP contexts for negotiated keys. The keys' lengths are fixed by their suite and the
/// provider is built in, so keying cannot fail.
fn keyed(negotiated: &Negotiated) -> Option<Box<Srtp>> {
    let keys = negotiated.srtp.as_ref()?;
    Some(Box::new(
        Srtp::new(keys).expect("fixed-length SDES keys key an SRTP context"),
    ))
}

impl RtpSession {
    /// A session for a negotiated leg. `ids` supplies the random SSRC, initial sequence number
    /// and timestamp; `inactivity` is the no-media timeout (`None` disables it).
    pub fn new(
        now: Instant,
        ids: &mut IdGen,
        negotiated: &Negotiated,
        inactivity: Option<Duration>,
    ) -> Self {
        let ssrc = ids.next_u32();
        let seq = (ids.next_u32() >> 16) as u16;
        let ts = ids.next_u32();
        Self {
            codec: negotiated.codec,
            dtmf_pt: negotiated.dtmf_pt,
            remote: negotiated.remote,
            direction: negotiated.direction,
            ssrc,
            seq,
            ts,
            started: false,
            force_marker: true,
            in_ssrc: None,
            in_max_seq: 0,
            inactivity,
            last_activity: now,
            inactive_reported: false,
            pending: None,
            counters: Counters::default(),
            srtp: keyed(negotiated),
        }
    }

    /// Whether the leg is SRTP (what it sends is protected, what it accepts must authenticate).
    pub fn is_srtp(&self) -> bool {
        self.srtp.is_some()
    }

    /// Bytes SRTP adds past an RTP packet this session writes (0 on plain RTP): leave this much
    /// room in send buffers.
    pub fn overhead(&self) -> usize {
        self.srtp.as_ref().map_or(0, |s| s.overhead())
    }

    /// The negotiated codec.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// The negotiated telephone-event payload type.
    pub fn dtmf_pt(&self) -> Option<u8> {
        self.dtmf_pt
    }

    /// Our outgoing SSRC (constant for the whole call).
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// Where to send the packets written by this session; `None` while we must not send
    /// (hold, `c=0.0.0.0`, or we are recvonly/inactive).
    pub fn destination(&self) -> Option<SocketAddr> {
        self.remote.filter(|_| self.direction.sends())
    }

    /// Our negotiated direction.
    pub fn direction(&self) -> Direction {
        self.direction
    }

    /// Packet counters so far.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Apply a re-negotiation (re-INVITE): codec, telephone-event PT, remote address and
    /// direction. The outgoing SSRC and sequence stay; the inactivity timer restarts at `now`.
    pub fn apply(&mut self, now: Instant, negotiated: &Negotiated) {
        match (self.srtp.as_mut(), negotiated.srtp.as_ref()) {
            (Some(s), Some(keys)) => s
                .rekey(keys)
                .expect("fixed-length SDES keys key an SRTP context"),
            (_, _) => self.srtp = keyed(negotiated),
        }
        self.codec = negotiated.codec;
        self.dtmf_pt = negotiated.dtmf_pt;
        self.direction = negotiated.direction;
        self.update_remote(now, negotiated.remote);
    }

    /// Change only the remote address (`None`: the peer put us on hold with `c=0.0.0.0`).
    /// Incoming sequence tracking and the inactivity timer restart at `now`.
    pub fn update_remote(&mut self, now: Instant, remote: Option<SocketAddr>) {
        if remote != self.remote {
            self.in_ssrc = None;
        }
        self.remote = remote;
        self.last_activity = now;
        self.inactive_reported = false;
    }

    fn sending(&self) -> bool {
        self.destination().is_some()
    }

    /// The timestamp a frame sent one period after the last one would carry (for the bridge).
    pub fn next_timestamp(&self) -> u32 {
        if self.started {
            self.ts.wrapping_add(SAMPLES_PER_FRAME)
        } else {
            self.ts
        }
    }

    /// Set the marker bit on the next packet written: the stream's source changes (a bridge
    /// ended and the prompts resume), so the receiver should resync its jitter buffer rather
    /// than take the timestamp step for a late packet (RFC 3551 §4.1).
    pub fn mark_next(&mut self) {
        self.force_marker = true;
    }

    /// Write a packet of the negotiated codec into `buf` and return its length (0 when on hold
    /// or `buf` is too small: send nothing). Call once per 20 ms tick; `frames_elapsed` is the
    /// number of frame periods since the previous call (normally 1, more after skipped ticks;
    /// ignored on the first call). `marker` flags a talkspurt start; the first packet of the
    /// stream and the first after a hold get it anyway.
    pub fn write_frame(
        &mut self,
        buf: &mut [u8],
        payload: &[u8],
        marker: bool,
        frames_elapsed: u32,
    ) -> usize {
        let ts = if self.started {
            self.ts
                .wrapping_add(SAMPLES_PER_FRAME.wrapping_mul(frames_elapsed.max(1)))
        } else {
            self.ts
        };
        let pt = self.codec.payload_type();
        let len = rtp::HEADER_LEN + payload.len();
        // Too small a buffer: write nothing, but let the clock move like a skipped frame.
        let out = buf.get_mut(..len + self.overhead()).unwrap_or(&mut []);
        if self.write_header_at(out, pt, marker, ts) == 0 {
            return 0;
        }
        out[rtp::HEADER_LEN..len].copy_from_slice(payload);
        self.seal(out, len)
    }

    /// Write an RFC 4733 telephone-event packet (payload from `dtmf::rfc4733::encode_event`)
    /// and return its length; 0 when the peer negotiated no telephone-event, on hold, or `buf`
    /// is too small. All packets of one event carry the same `event_ts`: take it from
    /// [`RtpSession::next_timestamp`] before the first one, which sets `start` (the marker).
    /// Afterwards resume audio with `frames_elapsed` counting the frames the event lasted.
    pub fn write_event(
        &mut self,
        buf: &mut [u8],
        payload: &[u8; 4],
        event_ts: u32,
        start: bool,
    ) -> usize {
        let Some(pt) = self.dtmf_pt else { return 0 };
        let len = rtp::HEADER_LEN + payload.len();
        let out = buf.get_mut(..len + self.overhead()).unwrap_or(&mut []);
        if self.write_header_at(out, pt, start, event_ts) == 0 {
            return 0;
        }
        out[rtp::HEADER_LEN..len].copy_from_slice(payload);
        self.seal(out, len)
    }

    /// Finish the packet in `buf[..len]` (header from [`RtpSession::write_header_at`], payload
    /// written after it) for the wire: SRTP-protected in place on an SRTP leg (`buf` needs
    /// [`RtpSession::overhead`] bytes to spare), as is otherwise. Returns the length to send,
    /// 0 when it cannot be protected (send nothing).
    pub fn seal(&mut self, buf: &mut [u8], len: usize) -> usize {
        match self.srtp.as_mut() {
            None => len,
            Some(s) => s.protect(buf, len).unwrap_or(0),
        }
    }

    /// Low level, for the bridge: write a 12-byte header with our SSRC, the next sequence
    /// number, payload type `pt` and timestamp `ts` into `buf`, and record `ts` as the stream's
    /// current timestamp (if newer). Returns 12, or 0 (nothing to send; the clock still moves to `ts`)
    /// when on hold or `buf` is too small. The caller writes the payload at `buf[12..]`.
    pub fn write_header_at(&mut self, buf: &mut [u8], pt: u8, marker: bool, ts: u32) -> usize {
        // Telephone-events repeat their start timestamp: never move the clock backwards.
        if !self.started || (ts.wrapping_sub(self.ts) as i32) > 0 {
            self.ts = ts;
        }
        self.started = true;
        if !self.sending() || buf.len() < rtp::HEADER_LEN {
            self.force_marker |= !self.sending();
            return 0;
        }
        let hdr = RtpHeader {
            pt,
            marker: marker || self.force_marker,
            seq: self.seq,
            ts,
            ssrc: self.ssrc,
        };
        self.force_marker = false;
        self.seq = self.seq.wrapping_add(1);
        self.counters.sent += 1;
        rtp::write_header(buf, &hdr)
    }

    /// Check and classify a datagram received on this leg's RTP socket. Only packets from the
    /// SDP-named address are accepted; on an SRTP leg only packets that authenticate, decrypted
    /// into `scratch` (as long as the datagram; unused on plain RTP, pass `&mut []`). Each
    /// accepted packet restarts the inactivity timer.
    pub fn accept<'a>(
        &mut self,
        now: Instant,
        from: SocketAddr,
        bytes: &'a [u8],
        scratch: &'a mut [u8],
    ) -> Result<Inbound<'a>, Reject> {
        let r = self.check(from, bytes, scratch);
        match &r {
            Ok(inb) => {
                self.counters.received += 1;
                self.counters.late += u64::from(inb.late);
                self.last_activity = now;
                self.inactive_reported = false;
            }
            Err(e) => {
                self.counters.rejected += 1;
                self.counters.unauthenticated += u64::from(matches!(e, Reject::Srtp(_)));
            }
        }
        r
    }

    fn check<'a>(
        &mut self,
        from: SocketAddr,
        bytes: &'a [u8],
        scratch: &'a mut [u8],
    ) -> Result<Inbound<'a>, Reject> {
        let remote = self.remote.ok_or(Reject::NoRemote)?;
        if from != remote {
            return Err(Reject::WrongSource);
        }
        if !self.direction.receives() {
            return Err(Reject::NotReceiving);
        }
        let bytes = match self.srtp.as_mut() {
            Some(s) => s.unprotect(bytes, scratch)?,
            None => bytes,
        };
        let packet = RtpPacket::parse(bytes)?;
        let kind = if packet.pt == self.codec.payload_type() {
            PayloadKind::Audio
        } else if Some(packet.pt) == self.dtmf_pt {
            PayloadKind::TelephoneEvent
        } else {
            PayloadKind::Other
        };
        let late = if self.in_ssrc == Some(packet.ssrc) {
            // §A.1-style comparison modulo 2^16: not newer than the highest seen = late.
            let newer = (packet.seq.wrapping_sub(self.in_max_seq) as i16) > 0;
            if newer {
                self.in_max_seq = packet.seq;
            }
            !newer
        } else {
            self.in_ssrc = Some(packet.ssrc);
            self.in_max_seq = packet.seq;
            false
        };
        Ok(Inbound { kind, packet, late })
    }

    fn watching(&self) -> bool {
        self.inactivity.is_some()
            && !self.inactive_reported
            && self.remote.is_some()
            && self.direction == Direction::SendRecv
    }

    /// When [`RtpSession::handle_timeout`] must next be called; `None` while the inactivity
    /// timer is not running (disabled, on hold, or already reported).
    pub fn poll_timeout(&self) -> Option<Instant> {
        let limit = self.inactivity?;
        self.watching().then(|| self.last_activity + limit)
    }

    /// Call when the deadline from [`RtpSession::poll_timeout`] passes. Early or spurious calls
    /// are no-ops. Raises [`SessionEvent::Inactive`] once per silent period.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(deadline) = self.poll_timeout()
            && now >= deadline
        {
            self.inactive_reported = true;
            self.pending = Some(SessionEvent::Inactive);
        }
    }

    /// The next event to act on; drain after every `handle_*` call.
    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        self.pending.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEER: &str = "10.0.0.9:7000";

    fn neg(direction: Direction, remote: Option<&str>) -> Negotiated {
        Negotiated {
            codec: Codec::Pcmu,
            dtmf_pt: Some(101),
            remote: remote.map(|r| r.parse().unwrap()),
            direction,
            answer_sdp: String::new(),
            srtp: None,
        }
    }

    fn session(t0: Instant) -> RtpSession {
        RtpSession::new(
            t0,
            &mut IdGen::seeded(3),
            &neg(Direction::SendRecv, Some(PEER)),
            Some(Duration::from_secs(30)),
        )
    }

    fn pkt(pt: u8, seq: u16, ssrc: u32) -> Vec<u8> {
        let mut b = vec![0u8; 200];
        let h = RtpHeader {
            pt,
            marker: false,
            seq,
            ts: u32::from(seq) * 160,
            ssrc,
        };
        let n = rtp::write_packet(&mut b, &h, &[0xFF; 160]);
        b.truncate(n);
        b
    }

    #[test]
    fn outgoing_stream_timestamps_sequence_and_marker() {
        let t0 = crate::clock::now();
        let mut s = session(t0);
        let mut buf = [0u8; 200];
        let mut sent = Vec::new();
        for (marker, elapsed) in [(false, 1), (false, 1), (false, 3), (true, 1)] {
            let n = s.write_frame(&mut buf, &[0xFF; 160], marker, elapsed);
            assert_eq!(n, 172);
            sent.push(RtpPacket::parse(&buf[..n]).unwrap().header());
        }
        assert!(sent.iter().all(|h| h.ssrc == s.ssrc() && h.pt == 0));
        let seqs: Vec<u16> = sent
            .iter()
            .map(|h| h.seq.wrapping_sub(sent[0].seq))
            .collect();
        assert_eq!(seqs, [0, 1, 2, 3]);
        let tss: Vec<u32> = sent.iter().map(|h| h.ts.wrapping_sub(sent[0].ts)).collect();
        assert_eq!(tss, [0, 160, 640, 800], "skipped frames advance the clock");
        let marks: Vec<bool> = sent.iter().map(|h| h.marker).collect();
        assert_eq!(marks, [true, false, false, true]);
        // Different seeds give different random bases.
        let other = RtpSession::new(
            t0,
            &mut IdGen::seeded(4),
            &neg(Direction::SendRecv, Some(PEER)),
            None,
        );
        assert_ne!(other.ssrc(), s.ssrc());
    }

    #[test]
    fn small_buffer_writes_nothing_but_keeps_the_clock() {
        let t0 = crate::clock::now();
        let mut s = session(t0);
        let mut buf = [0u8; 200];
        let n = s.write_frame(&mut buf, &[1; 160], false, 1);
        let first = RtpPacket::parse(&buf[..n]).unwrap().header();
        assert_eq!(s.write_frame(&mut buf[..100], &[1; 160], false, 1), 0);
        let n = s.write_frame(&mut buf, &[1; 160], false, 1);
        let h = RtpPacket::parse(&buf[..n]).unwrap().header();
        assert_eq!(
            (h.seq, h.ts),
            (first.seq.wrapping_add(1), first.ts.wrapping_add(320))
        );
    }

    #[test]
    fn outgoing_telephone_event() {
        use crate::media::dtmf::{Digit, rfc4733};
        let t0 = crate::clock::now();
        let mut s = session(t0);
        let mut buf = [0u8; 200];
        let n = s.write_frame(&mut buf, &[0xFF; 160], false, 1);
        let audio = RtpPacket::parse(&buf[..n]).unwrap().header();
        let ts = s.next_timestamp();
        let five = Digit::from_char('5').unwrap();
        let mut det = rfc4733::Detector::new();
        let mut digits = Vec::new();
        for (i, end) in [(1u16, false), (2, false), (3, true), (3, true), (3, true)] {
            let n = s.write_event(
                &mut buf,
                &rfc4733::encode_event(five, end, 10, i * 160),
                ts,
                i == 1 && !end,
            );
            assert_eq!(n, 16);
            let p = RtpPacket::parse(&buf[..n]).unwrap();
            assert_eq!(
                (p.pt, p.ts, p.marker),
                (101, audio.ts.wrapping_add(160), i == 1)
            );
            digits.extend(det.handle(p.ts, p.marker, p.payload));
        }
        assert_eq!(digits, [five]);
        let n = s.write_frame(&mut buf, &[0xFF; 160], false, 3);
        let after = RtpPacket::parse(&buf[..n]).unwrap().header();
        assert_eq!(after.ts, audio.ts.wrapping_add(160 * 4));
        assert_eq!(after.seq, audio.seq.wrapping_add(6));
        let mut no_dtmf = session(t0);
        no_dtmf.apply(
            t0,
            &Negotiated {
                dtmf_pt: None,
                ..neg(Direction::SendRecv, Some(PEER))
            },
        );
        assert_eq!(no_dtmf.write_event(&mut buf, &[0; 4], 0, true), 0);
    }

    #[test]
    fn hold_sends_nothing_but_keeps_the_clock() {
        let t0 = crate::clock::now();
        let mut s = session(t0);
        let mut buf = [0u8; 200];
        let n = s.write_frame(&mut buf, &[0; 160], false, 1);
        let first = RtpPacket::parse(&buf[..n]).unwrap().header();
        s.update_remote(t0, None);
        assert_eq!(s.destination(), None);
        assert_eq!(s.write_frame(&mut buf, &[0; 160], false, 1), 0);
        assert_eq!(s.write_frame(&mut buf, &[0; 160], false, 1), 0);
        s.update_remote(t0, Some(PEER.parse().unwrap()));
        let n = s.write_frame(&mut buf, &[0; 160], false, 1);
        let h = RtpPacket::parse(&buf[..n]).unwrap().header();
        assert_eq!(h.seq, first.seq.wrapping_add(1), "no sequence gap");
        assert_eq!(h.ts, first.ts.wrapping_add(480));
        assert!(h.marker, "resumption marks a new talkspurt");
        // recvonly (we answered a sendonly offer): nothing to send either.
        s.apply(t0, &neg(Direction::RecvOnly, Some(PEER)));
        assert_eq!(s.write_frame(&mut buf, &[0; 160], false, 1), 0);
        assert_eq!(s.counters().sent, 2);
    }

    #[test]
    fn strict_latching_and_classification() {
        let t0 = crate::clock::now();
        let mut s = session(t0);
        let peer: SocketAddr = PEER.parse().unwrap();
        let evil: SocketAddr = "10.6.6.6:7000".parse().unwrap();
        let other_port: SocketAddr = "10.0.0.9:7002".parse().unwrap();
        let p = pkt(0, 10, 1);
        assert_eq!(s.accept(t0, evil, &p, &mut []), Err(Reject::WrongSource));
        assert_eq!(
            s.accept(t0, other_port, &p, &mut []),
            Err(Reject::WrongSource)
        );
        let inb = s.accept(t0, peer, &p, &mut []).unwrap();
        assert_eq!((inb.kind, inb.late), (PayloadKind::Audio, false));
        assert_eq!(inb.packet.payload.len(), 160);
        assert_eq!(
            s.accept(t0, peer, &pkt(101, 11, 1), &mut []).unwrap().kind,
            PayloadKind::TelephoneEvent
        );
        assert_eq!(
            s.accept(t0, peer, &pkt(13, 12, 1), &mut []).unwrap().kind,
            PayloadKind::Other
        );
        assert_eq!(
            s.accept(t0, peer, &[0x80, 0], &mut []),
            Err(Reject::Malformed(RtpError::TooShort { len: 2 }))
        );
        // Still refused after many good packets: no re-latching.
        assert_eq!(
            s.accept(t0, evil, &pkt(0, 13, 1), &mut []),
            Err(Reject::WrongSource)
        );
        s.update_remote(t0, None);
        assert_eq!(
            s.accept(t0, peer, &pkt(0, 14, 1), &mut []),
            Err(Reject::NoRemote)
        );
        let c = s.counters();
        assert_eq!((c.received, c.rejected), (3, 5));
    }

    #[test]
    fn late_and_duplicate_packets_are_counted() {
        let t0 = crate::clock::now();
        let mut s = session(t0);
        let peer: SocketAddr = PEER.parse().unwrap();
        let lates: Vec<bool> = [
            (65534, 1),
            (65535, 1),
            (1, 1),
            (0, 1),
            (1, 1),
            (2, 1),
            (500, 2),
            (499, 2),
        ]
        .iter()
        .map(|&(seq, ssrc)| {
            s.accept(t0, peer, &pkt(0, seq, ssrc), &mut [])
                .unwrap()
                .late
        })
        .collect();
        assert_eq!(lates, [false, false, false, true, true, false, false, true]);
        assert_eq!(s.counters().late, 3);
    }

    #[test]
    fn inactivity_in_virtual_time() {
        let t0 = crate::clock::now();
        let mut s = session(t0);
        let peer: SocketAddr = PEER.parse().unwrap();
        let sec = Duration::from_secs;
        assert_eq!(s.poll_timeout(), Some(t0 + sec(30)));
        s.accept(t0 + sec(10), peer, &pkt(0, 1, 1), &mut [])
            .unwrap();
        assert_eq!(s.poll_timeout(), Some(t0 + sec(40)));
        // Packets from elsewhere do not keep the call alive.
        let _ = s.accept(
            t0 + sec(20),
            "10.6.6.6:1".parse().unwrap(),
            &pkt(0, 2, 1),
            &mut [],
        );
        s.handle_timeout(t0 + sec(39));
        assert_eq!(s.poll_event(), None, "early call is a no-op");
        s.handle_timeout(t0 + sec(40));
        assert_eq!(s.poll_event(), Some(SessionEvent::Inactive));
        assert_eq!(s.poll_timeout(), None, "reported once");
        s.handle_timeout(t0 + sec(80));
        assert_eq!(s.poll_event(), None);
        // Media resumes: the timer re-arms.
        s.accept(t0 + sec(90), peer, &pkt(0, 3, 1), &mut [])
            .unwrap();
        assert_eq!(s.poll_timeout(), Some(t0 + sec(120)));
    }

    #[test]
    fn no_inactivity_while_on_hold() {
        let t0 = crate::clock::now();
        let sec = Duration::from_secs;
        for (dir, remote) in [
            (Direction::RecvOnly, Some(PEER)), // peer sendonly (music on hold, maybe silent)
            (Direction::Inactive, Some(PEER)),
            (Direction::SendOnly, Some(PEER)),
            (Direction::RecvOnly, None), // c=0.0.0.0
        ] {
            let mut s = session(t0);
            s.apply(t0 + sec(5), &neg(dir, remote));
            assert_eq!(s.poll_timeout(), None, "{dir:?} {remote:?}");
            s.handle_timeout(t0 + sec(3600));
            assert_eq!(s.poll_event(), None);
            // Taken off hold: the timer starts from the re-INVITE.
            s.apply(t0 + sec(100), &neg(Direction::SendRecv, Some(PEER)));
            assert_eq!(s.poll_timeout(), Some(t0 + sec(130)));
        }
        let mut off = RtpSession::new(
            t0,
            &mut IdGen::seeded(1),
            &neg(Direction::SendRecv, Some(PEER)),
            None,
        );
        assert_eq!(off.poll_timeout(), None);
        off.handle_timeout(t0 + sec(1000));
        assert_eq!(off.poll_event(), None);
    }
}
