//! Relaying RTP between two call legs (customer ↔ agent), RFC 3550 §7 style but as a
//! re-originating endpoint rather than a translator: every packet is re-sent in the *outgoing*
//! leg's own stream (its SSRC, continuous sequence numbers, its timestamp space), so the
//! customer keeps hearing one SSRC for the whole call (prompts, then the agent).
//!
//! - Timestamps are mapped with an offset fixed at the first packet of each incoming SSRC; gaps
//!   (silence suppression, loss) are kept, and an SSRC change or a jump of more than
//!   [`MAX_TS_JUMP`] re-anchors the offset and sets the marker bit so the receiver resyncs.
//! - PCMU ↔ PCMA is transcoded per byte when the legs' codecs differ (via [`crate::media::g711`]).
//! - RFC 4733 telephone-events pass through with the outgoing leg's telephone-event PT, and are
//!   dropped if that leg negotiated none. Late (reordered) audio is dropped: renumbering it would
//!   make it look newer than it is.
//!
//! - An SRTP leg's packets arrive decrypted (its session unprotected them) and leave protected
//!   with the *outgoing* leg's context: SRTP on the customer's leg, plain RTP on the agent's,
//!   or any mix.
//!
//! PURE and allocation-free per packet on plain RTP: the caller supplies the output buffer.

use crate::media::g711::{self, Codec};
use crate::media::rtp::HEADER_LEN;
use crate::media::session::{Inbound, PayloadKind, RtpSession};

/// A timestamp jump (either way) beyond which the incoming stream is treated as restarted:
/// 10 s at 8 kHz.
pub const MAX_TS_JUMP: u32 = 80_000;

/// Why a packet was not relayed. None of these is an error worth more than a counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Dropped {
    /// A telephone-event, but the other leg negotiated no telephone-event PT.
    #[error("other leg has no telephone-event")]
    NoDtmfPt,
    /// Neither the codec nor telephone-event (e.g. comfort noise).
    #[error("payload type not relayed")]
    UnsupportedPayload,
    /// Reordered or duplicated audio.
    #[error("late audio")]
    Late,
    /// The other leg is on hold / not sending.
    #[error("other leg not sending")]
    NotSending,
    /// The output buffer cannot hold the packet.
    #[error("output buffer too small")]
    BufferTooSmall,
    /// The other leg's SRTP context could not protect it (its key is worn out).
    #[error("SRTP could not protect the packet")]
    Unprotectable,
}

/// One direction of a bridge: packets arriving on one leg, re-originated on the other's
/// stream. A bridge is two of these (the media clock keeps each with the stream whose arrivals
/// it carries).
#[derive(Debug, Clone, Copy, Default)]
pub struct OneWay {
    in_ssrc: Option<u32>,
    offset: u32,
    last_in_ts: u32,
}

fn transcode(from: Codec, to: Codec, input: &[u8], out: &mut [u8]) {
    match (from, to) {
        (Codec::Pcmu, Codec::Pcma) => {
            for (o, i) in out.iter_mut().zip(input) {
                *o = g711::ulaw_to_alaw(*i);
            }
        }
        (Codec::Pcma, Codec::Pcmu) => {
            for (o, i) in out.iter_mut().zip(input) {
                *o = g711::alaw_to_ulaw(*i);
            }
        }
        (Codec::Pcmu, Codec::Pcmu) | (Codec::Pcma, Codec::Pcma) => out.copy_from_slice(input),
    }
}

impl OneWay {
    /// A direction with no history: the first packet anchors the timestamp mapping.
    pub fn new() -> Self {
        Self::default()
    }

    /// Re-send `inbound` (accepted by `src`, the session it arrived on) on `dst`'s stream,
    /// writing the packet into `buf`. Returns its length (send it to `dst.destination()`), or
    /// why it was dropped. Call for every packet `src` accepts while the legs are bridged.
    pub fn forward(
        &mut self,
        inbound: &Inbound<'_>,
        src: &RtpSession,
        dst: &mut RtpSession,
        buf: &mut [u8],
    ) -> Result<usize, Dropped> {
        let pkt = &inbound.packet;
        let pt = match inbound.kind {
            PayloadKind::Audio if inbound.late => return Err(Dropped::Late),
            PayloadKind::Audio => dst.codec().payload_type(),
            PayloadKind::TelephoneEvent => dst.dtmf_pt().ok_or(Dropped::NoDtmfPt)?,
            PayloadKind::Other => return Err(Dropped::UnsupportedPayload),
        };
        let len = HEADER_LEN + pkt.payload.len();
        if buf.len() < len + dst.overhead() {
            return Err(Dropped::BufferTooSmall);
        }
        if dst.destination().is_none() {
            return Err(Dropped::NotSending);
        }
        let jump = pkt.ts.wrapping_sub(self.last_in_ts);
        let resync = self.in_ssrc != Some(pkt.ssrc)
            || (jump > MAX_TS_JUMP && jump.wrapping_neg() > MAX_TS_JUMP);
        if resync {
            self.in_ssrc = Some(pkt.ssrc);
            self.offset = dst.next_timestamp().wrapping_sub(pkt.ts);
        }
        if resync || (jump as i32) > 0 {
            self.last_in_ts = pkt.ts;
        }
        let ts = pkt.ts.wrapping_add(self.offset);
        let room = len + dst.overhead();
        if dst.write_header_at(&mut buf[..room], pt, pkt.marker || resync, ts) == 0 {
            return Err(Dropped::NotSending);
        }
        let out = &mut buf[HEADER_LEN..len];
        match inbound.kind {
            PayloadKind::Audio => transcode(src.codec(), dst.codec(), pkt.payload, out),
            PayloadKind::TelephoneEvent | PayloadKind::Other => out.copy_from_slice(pkt.payload),
        }
        // The destination leg's own SRTP context (and key) protects it.
        match dst.seal(buf, len) {
            0 => Err(Dropped::Unprotectable),
            n => Ok(n),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::idgen::IdGen;
    use crate::media::rtp::{self, RtpHeader, RtpPacket};
    use crate::media::sdp::{Direction, Negotiated};
    use std::net::SocketAddr;
    use std::time::Instant;

    const A_PEER: &str = "10.0.0.1:4000";
    const B_PEER: &str = "10.0.0.2:5000";

    fn leg(t0: Instant, seed: u64, codec: Codec, dtmf_pt: Option<u8>, peer: &str) -> RtpSession {
        let n = Negotiated {
            codec,
            dtmf_pt,
            remote: Some(peer.parse().unwrap()),
            direction: Direction::SendRecv,
            answer_sdp: String::new(),
            srtp: None,
        };
        RtpSession::new(t0, &mut IdGen::seeded(seed), &n, None)
    }

    struct Rig {
        t0: Instant,
        a: RtpSession,
        b: RtpSession,
        ab: OneWay,
        ba: OneWay,
    }

    impl Rig {
        fn new(a: (Codec, Option<u8>), b: (Codec, Option<u8>)) -> Self {
            let t0 = crate::clock::now();
            Self {
                t0,
                a: leg(t0, 1, a.0, a.1, A_PEER),
                b: leg(t0, 2, b.0, b.1, B_PEER),
                ab: OneWay::new(),
                ba: OneWay::new(),
            }
        }

        /// Send a packet from A's peer and relay it to B; returns B's packet header + payload.
        fn a_to_b(
            &mut self,
            h: RtpHeader,
            payload: &[u8],
        ) -> Result<(RtpHeader, Vec<u8>), Dropped> {
            let mut wire = [0u8; 400];
            let n = rtp::write_packet(&mut wire, &h, payload);
            let from: SocketAddr = A_PEER.parse().unwrap();
            let inb = self.a.accept(self.t0, from, &wire[..n], &mut []).unwrap();
            let mut out = [0u8; 400];
            let m = self.ab.forward(&inb, &self.a, &mut self.b, &mut out)?;
            let p = RtpPacket::parse(&out[..m]).unwrap();
            Ok((p.header(), p.payload.to_vec()))
        }
    }

    fn h(pt: u8, seq: u16, ts: u32, ssrc: u32, marker: bool) -> RtpHeader {
        RtpHeader {
            pt,
            marker,
            seq,
            ts,
            ssrc,
        }
    }

    #[test]
    fn continuous_sequence_across_ssrc_changes_and_gaps() {
        let mut r = Rig::new((Codec::Pcmu, Some(101)), (Codec::Pcmu, Some(101)));
        let mut out = Vec::new();
        for (seq, ts, ssrc) in [
            (100, 1000, 7),
            (101, 1160, 7),
            (105, 1800, 7),
            (9, 50, 8),
            (10, 210, 8),
        ] {
            out.push(
                r.a_to_b(h(0, seq, ts, ssrc, false), &[0x55; 160])
                    .unwrap()
                    .0,
            );
        }
        let base = out[0];
        assert!(out.iter().all(|p| p.ssrc == r.b.ssrc() && p.pt == 0));
        let seqs: Vec<u16> = out.iter().map(|p| p.seq.wrapping_sub(base.seq)).collect();
        assert_eq!(seqs, [0, 1, 2, 3, 4], "B's sequence is continuous");
        let tss: Vec<u32> = out.iter().map(|p| p.ts.wrapping_sub(base.ts)).collect();
        assert_eq!(
            tss,
            [0, 160, 800, 960, 1120],
            "gap kept; new SSRC continues one frame later"
        );
        let marks: Vec<bool> = out.iter().map(|p| p.marker).collect();
        assert_eq!(marks, [true, false, false, true, false]);
    }

    #[test]
    fn continues_the_prompt_stream() {
        let mut r = Rig::new((Codec::Pcmu, None), (Codec::Pcmu, None));
        let mut buf = [0u8; 200];
        let n = r.b.write_frame(&mut buf, &[0xFF; 160], false, 1);
        let prompt = RtpPacket::parse(&buf[..n]).unwrap().header();
        let (p, _) = r.a_to_b(h(0, 1, 123_456, 9, false), &[0xFF; 160]).unwrap();
        assert_eq!(p.seq, prompt.seq.wrapping_add(1));
        assert_eq!(p.ts, prompt.ts.wrapping_add(160));
        assert_eq!(p.ssrc, prompt.ssrc);
        // And the prompt stream resumes after the relayed audio.
        let n = r.b.write_frame(&mut buf, &[0xFF; 160], false, 1);
        let after = RtpPacket::parse(&buf[..n]).unwrap().header();
        assert_eq!(
            (after.seq, after.ts),
            (p.seq.wrapping_add(1), p.ts.wrapping_add(160))
        );
    }

    #[test]
    fn big_timestamp_jump_resyncs() {
        let mut r = Rig::new((Codec::Pcmu, None), (Codec::Pcmu, None));
        let (first, _) = r.a_to_b(h(0, 1, 1000, 9, false), &[0; 160]).unwrap();
        let (second, _) = r
            .a_to_b(h(0, 2, 1000 + 5_000_000, 9, false), &[0; 160])
            .unwrap();
        assert_eq!(second.ts, first.ts.wrapping_add(160));
        assert!(second.marker);
    }

    #[test]
    fn transcodes_between_pcmu_and_pcma() {
        let mut r = Rig::new((Codec::Pcmu, None), (Codec::Pcma, None));
        let input: Vec<u8> = (0..160u8).collect();
        let (p, payload) = r.a_to_b(h(0, 1, 0, 1, false), &input).unwrap();
        assert_eq!(p.pt, 8);
        let expect: Vec<u8> = input.iter().map(|&u| g711::ulaw_to_alaw(u)).collect();
        assert_eq!(payload, expect);

        let mut r = Rig::new((Codec::Pcma, None), (Codec::Pcmu, None));
        let (p, payload) = r.a_to_b(h(8, 1, 0, 1, false), &[0xD5; 160]).unwrap();
        assert_eq!(p.pt, 0);
        assert_eq!(payload, vec![g711::alaw_to_ulaw(0xD5); 160]);
    }

    #[test]
    fn telephone_events_use_the_other_legs_pt_or_are_dropped() {
        let ev = crate::media::dtmf::rfc4733::encode_event(
            crate::media::dtmf::Digit::from_char('5').unwrap(),
            false,
            10,
            160,
        );
        let mut r = Rig::new((Codec::Pcmu, Some(101)), (Codec::Pcmu, Some(96)));
        let (audio, _) = r.a_to_b(h(0, 1, 8000, 1, false), &[0; 160]).unwrap();
        let (e1, pl) = r.a_to_b(h(101, 2, 8160, 1, true), &ev).unwrap();
        let (e2, _) = r.a_to_b(h(101, 3, 8160, 1, false), &ev).unwrap();
        assert_eq!((e1.pt, e1.marker, pl.as_slice()), (96, true, &ev[..]));
        assert_eq!(e1.ts, audio.ts.wrapping_add(160));
        assert_eq!(e2.ts, e1.ts, "event timestamp stays constant");
        assert_eq!(e2.seq, e1.seq.wrapping_add(1));

        let mut r = Rig::new((Codec::Pcmu, Some(101)), (Codec::Pcmu, None));
        assert_eq!(r.a_to_b(h(101, 1, 0, 1, true), &ev), Err(Dropped::NoDtmfPt));
        assert_eq!(
            r.a_to_b(h(13, 2, 0, 1, false), &[0]),
            Err(Dropped::UnsupportedPayload)
        );
    }

    #[test]
    fn late_audio_hold_and_small_buffers() {
        let mut r = Rig::new((Codec::Pcmu, None), (Codec::Pcmu, None));
        r.a_to_b(h(0, 10, 1600, 1, false), &[0; 160]).unwrap();
        assert_eq!(
            r.a_to_b(h(0, 9, 1440, 1, false), &[0; 160]),
            Err(Dropped::Late)
        );

        let mut wire = [0u8; 200];
        let n = rtp::write_packet(&mut wire, &h(0, 11, 1760, 1, false), &[0; 160]);
        let inb =
            r.a.accept(r.t0, A_PEER.parse().unwrap(), &wire[..n], &mut [])
                .unwrap();
        let mut small = [0u8; 100];
        assert_eq!(
            r.ab.forward(&inb, &r.a, &mut r.b, &mut small),
            Err(Dropped::BufferTooSmall)
        );
        r.b.update_remote(r.t0, None);
        let mut out = [0u8; 200];
        assert_eq!(
            r.ab.forward(&inb, &r.a, &mut r.b, &mut out),
            Err(Dropped::NotSending)
        );
    }

    #[test]
    fn both_directions_are_independent() {
        let mut r = Rig::new((Codec::Pcmu, None), (Codec::Pcma, None));
        let mut wire = [0u8; 200];
        let n = rtp::write_packet(&mut wire, &h(8, 1, 777, 42, false), &[0xD5; 160]);
        let inb =
            r.b.accept(r.t0, B_PEER.parse().unwrap(), &wire[..n], &mut [])
                .unwrap();
        let mut out = [0u8; 200];
        let m = r.ba.forward(&inb, &r.b, &mut r.a, &mut out).unwrap();
        let p = RtpPacket::parse(&out[..m]).unwrap();
        assert_eq!((p.pt, p.ssrc), (0, r.a.ssrc()));
        let (to_b, _) = r.a_to_b(h(0, 1, 5, 43, false), &[0xFF; 160]).unwrap();
        assert_eq!(to_b.ssrc, r.b.ssrc());
    }
}
