//! The hand-written RTP header code that `media::rtp` had before it moved onto `rtp-rs`, kept
//! for two jobs:
//! - the A side of the same-run A/B ([`ab_parse_and_build`], `#[ignore]`: run it under
//!   callgrind as BENCHMARKS.md "RTP headers: rtp-rs A/B" says), and
//! - an oracle: `rtp-rs` through our module must accept and refuse exactly the datagrams this
//!   code did, with the same [`RtpError`] (a property test).
//!
//! Test-only: nothing here is built into Hammond.

use std::hint::black_box;

use proptest::prelude::*;

use super::{HEADER_LEN, RtpError, RtpHeader, RtpPacket, write_header, write_packet};

/// The old `RtpPacket::parse`, unchanged.
fn parse(buf: &[u8]) -> Result<RtpPacket<'_>, RtpError> {
    if buf.len() < HEADER_LEN {
        return Err(RtpError::TooShort { len: buf.len() });
    }
    let b0 = buf[0];
    let version = b0 >> 6;
    if version != 2 {
        return Err(RtpError::BadVersion(version));
    }
    let padding = b0 & 0x20 != 0;
    let extension = b0 & 0x10 != 0;
    let csrc_count = usize::from(b0 & 0x0F);
    let mut start = HEADER_LEN + 4 * csrc_count;
    if start > buf.len() {
        return Err(RtpError::CsrcTruncated);
    }
    if extension {
        let ext = buf
            .get(start..start + 4)
            .ok_or(RtpError::ExtensionTruncated)?;
        let words = usize::from(u16::from_be_bytes([ext[2], ext[3]]));
        start += 4 + 4 * words;
        if start > buf.len() {
            return Err(RtpError::ExtensionTruncated);
        }
    }
    let mut end = buf.len();
    if padding {
        let pad = usize::from(buf[end - 1]);
        if pad == 0 || pad > end - start {
            return Err(RtpError::BadPadding);
        }
        end -= pad;
    }
    Ok(RtpPacket {
        pt: buf[1] & 0x7F,
        marker: buf[1] & 0x80 != 0,
        seq: u16::from_be_bytes([buf[2], buf[3]]),
        ts: u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]),
        ssrc: u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]),
        payload: &buf[start..end],
    })
}

/// The old `write_header`, unchanged.
fn hand_write_header(buf: &mut [u8], hdr: &RtpHeader) -> usize {
    let Some(out) = buf.get_mut(..HEADER_LEN) else {
        return 0;
    };
    out[0] = 0x80;
    out[1] = (hdr.pt & 0x7F) | if hdr.marker { 0x80 } else { 0 };
    out[2..4].copy_from_slice(&hdr.seq.to_be_bytes());
    out[4..8].copy_from_slice(&hdr.ts.to_be_bytes());
    out[8..12].copy_from_slice(&hdr.ssrc.to_be_bytes());
    HEADER_LEN
}

/// The old `write_packet`, unchanged.
fn hand_write_packet(buf: &mut [u8], hdr: &RtpHeader, payload: &[u8]) -> usize {
    let len = HEADER_LEN + payload.len();
    if buf.len() < len {
        return 0;
    }
    hand_write_header(buf, hdr);
    buf[HEADER_LEN..len].copy_from_slice(payload);
    len
}

proptest! {
    #[test]
    fn rtp_rs_accepts_and_refuses_what_the_hand_code_did(
        bytes in proptest::collection::vec(any::<u8>(), 0..300)
    ) {
        prop_assert_eq!(RtpPacket::parse(&bytes), parse(&bytes));
    }

    /// Version 2 with every flag combination, short lengths: where the edge cases are.
    #[test]
    fn rtp_rs_agrees_on_v2_edge_cases(
        mut bytes in proptest::collection::vec(any::<u8>(), 12..48),
        cc in 0u8..4, ext: bool, pad: bool, ext_words in 0u8..8,
    ) {
        bytes[0] = 0x80 | (u8::from(pad) << 5) | (u8::from(ext) << 4) | cc;
        let at = HEADER_LEN + 4 * usize::from(cc) + 3;
        if let Some(b) = bytes.get_mut(at) {
            *b = ext_words; // the extension's length, where one would be
        }
        if let Some(b) = bytes.get_mut(at - 1) {
            *b = 0;
        }
        prop_assert_eq!(RtpPacket::parse(&bytes), parse(&bytes));
    }

    #[test]
    fn rtp_rs_writes_the_same_bytes(
        pt: u8, marker: bool, seq: u16, ts: u32, ssrc: u32,
        payload in proptest::collection::vec(any::<u8>(), 0..200), room in 0usize..220,
    ) {
        let h = RtpHeader { pt, marker, seq, ts, ssrc };
        let (mut a, mut b) = (vec![0u8; room], vec![0u8; room]);
        prop_assert_eq!(write_packet(&mut a, &h, &payload), hand_write_packet(&mut b, &h, &payload));
        prop_assert_eq!(&a, &b);
        prop_assert_eq!(write_header(&mut a, &h), hand_write_header(&mut b, &h));
        prop_assert_eq!(a, b);
    }
}

/// The datagrams of the A/B, as a media leg sees them.
fn ab_packets(kind: &str) -> Vec<Vec<u8>> {
    let pcmu = |seq: u16, extra: &[u8], b0: u8| {
        let mut p = vec![b0, 0, 0, 0, 0, 0, 0, 0, 0x12, 0x34, 0x56, 0x78];
        p[2..4].copy_from_slice(&seq.to_be_bytes());
        p[4..8].copy_from_slice(&(u32::from(seq) * 160).to_be_bytes());
        p.extend_from_slice(extra);
        p.extend((0..160u8).map(|i| i ^ 0x5A)); // 20 ms of PCMU
        p
    };
    // Two CSRCs and a one-word RFC 8285 one-byte extension (an audio level, say).
    let csrc_ext = [1, 1, 1, 1, 2, 2, 2, 2, 0xBE, 0xDE, 0, 1, 0x10, 0x7F, 0, 0];
    match kind {
        "pcmu" => (0..8).map(|s| pcmu(s, &[], 0x80)).collect(),
        "csrc-ext" => (0..8).map(|s| pcmu(s, &csrc_ext, 0x92)).collect(),
        "event" => (0..8u8)
            .map(|i| {
                // RFC 4733 digit 1, start marker on the first, end bit on the last.
                let end = if i == 7 { 0x80 } else { 0 };
                let dur = (u16::from(i) + 1) * 160;
                let mut p = vec![0x80, 101 | if i == 0 { 0x80 } else { 0 }, 0, i];
                p.extend_from_slice(&[0, 0, 0x0A, 0, 0x12, 0x34, 0x56, 0x78]);
                p.extend_from_slice(&[1, end | 10, (dur >> 8) as u8, dur as u8]);
                p
            })
            .collect(),
        other => panic!("RTP_AB={other}: pcmu, event or csrc-ext"),
    }
}

// One function per side and step, never inlined, so that callgrind's inclusive count per
// function is the cost of exactly that step (`callgrind_annotate --inclusive=yes`).

#[inline(never)]
fn ab_parse_hand(b: &[u8]) -> Result<RtpPacket<'_>, RtpError> {
    parse(black_box(b))
}

#[inline(never)]
fn ab_parse_rtprs(b: &[u8]) -> Result<RtpPacket<'_>, RtpError> {
    RtpPacket::parse(black_box(b))
}

/// The send path (`RtpSession::write_frame`, the bridge): a 12-byte header, payload after it.
#[inline(never)]
fn ab_header_hand(out: &mut [u8], h: &RtpHeader) -> usize {
    hand_write_header(black_box(out), black_box(h))
}

#[inline(never)]
fn ab_header_rtprs(out: &mut [u8], h: &RtpHeader) -> usize {
    write_header(black_box(out), black_box(h))
}

/// A whole packet, header and payload.
#[inline(never)]
fn ab_packet_hand(out: &mut [u8], h: &RtpHeader, payload: &[u8]) -> usize {
    hand_write_packet(black_box(out), black_box(h), black_box(payload))
}

#[inline(never)]
fn ab_packet_rtprs(out: &mut [u8], h: &RtpHeader, payload: &[u8]) -> usize {
    write_packet(black_box(out), black_box(h), black_box(payload))
}

/// Parse every packet, then write its header and the whole packet again, `rounds` times: the
/// per-packet work of receiving and re-originating (the bridge) with one side's code.
#[inline(never)]
fn ab_side(
    rounds: usize,
    pkts: &[Vec<u8>],
    parse: fn(&[u8]) -> Result<RtpPacket<'_>, RtpError>,
    header: fn(&mut [u8], &RtpHeader) -> usize,
    packet: fn(&mut [u8], &RtpHeader, &[u8]) -> usize,
) -> u64 {
    let mut out = [0u8; 1500];
    let mut sum = 0u64;
    for _ in 0..rounds {
        for p in pkts {
            let Ok(pkt) = parse(p) else { continue };
            let h = pkt.header();
            sum += header(&mut out, &h) as u64;
            sum += packet(&mut out, &h, pkt.payload) as u64;
            sum += u64::from(out[HEADER_LEN - 1]);
        }
    }
    sum
}

/// The same-run A/B: hand-written code against `rtp-rs`, on `RTP_AB` = `pcmu` (default),
/// `event` or `csrc-ext` packets, `RTP_AB_ROUNDS` (default 20,000) × 8 packets per side.
/// Under callgrind this gives instructions per call of each `ab_*` function (see
/// BENCHMARKS.md); on its own it prints a (noisy) time per packet. Both sides must agree.
#[test]
#[ignore = "a benchmark: run by hand, in release, under callgrind (BENCHMARKS.md)"]
fn ab_parse_and_build() {
    let kind = std::env::var("RTP_AB").unwrap_or_else(|_| "pcmu".into());
    let rounds = std::env::var("RTP_AB_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(20_000);
    let pkts = ab_packets(&kind);
    for p in &pkts {
        assert_eq!(
            ab_parse_hand(p),
            ab_parse_rtprs(p),
            "{kind}: both sides parse alike"
        );
    }
    // The benchmark's wall clock, through the one real clock (pure code reads none itself).
    let t0 = crate::clock::now();
    let a = ab_side(rounds, &pkts, ab_parse_hand, ab_header_hand, ab_packet_hand);
    let t1 = crate::clock::now();
    let b = ab_side(
        rounds,
        &pkts,
        ab_parse_rtprs,
        ab_header_rtprs,
        ab_packet_rtprs,
    );
    let t2 = t1.elapsed();
    assert_eq!(a, b, "{kind}: both sides write the same packets");
    let per = |d: std::time::Duration| d.as_nanos() as f64 / (rounds * pkts.len()) as f64;
    println!(
        "{kind}: {} packets a side; hand {:.1} ns, rtp-rs {:.1} ns per packet (parse + header + packet)",
        rounds * pkts.len(),
        per(t1 - t0),
        per(t2)
    );
}

/// The hot path around the headers, for the A/B across builds (callgrind counts are exact, so
/// this test run on the commit before rtp-rs and on this one compares like with like): one
/// 20 ms frame of a talking caller in the workflow (a PCMU datagram in, through parsing, G.711
/// decoding and the in-band DTMF detector; the player's frame out), and one of a bridged call
/// (a datagram relayed each way, PCMU → PCMA and back).
mod leg {
    use std::hint::black_box;
    use std::net::SocketAddr;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use crate::idgen::IdGen;
    use crate::media::bridge::OneWay;
    use crate::media::g711::{self, Codec};
    use crate::media::leg::{MAX_PACKET, MediaLeg, PTIME};
    use crate::media::prompts::PromptLibrary;
    use crate::media::rtp::{RtpHeader, write_packet};
    use crate::media::sdp::{Direction, Negotiated};

    const PEER_A: &str = "10.0.0.1:4000";
    const PEER_B: &str = "10.0.0.2:5000";

    fn leg(t0: Instant, seed: u64, codec: Codec, peer: &str) -> MediaLeg {
        let n = Negotiated {
            codec,
            dtmf_pt: Some(101),
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
            None,
        )
    }

    /// `n` 20 ms frames of a 300 Hz + 1.1 kHz voice-band signal (no DTMF pair), as datagrams.
    fn talk(n: u16, codec: Codec) -> Vec<Vec<u8>> {
        (0..n)
            .map(|seq| {
                let mut payload = [0u8; 160];
                for (i, b) in payload.iter_mut().enumerate() {
                    let t = f64::from(u32::from(seq) * 160 + i as u32) / 8000.0;
                    let x = 6000.0 * (2.0 * std::f64::consts::PI * 300.0 * t).sin()
                        + 3000.0 * (2.0 * std::f64::consts::PI * 1100.0 * t).sin();
                    *b = match codec {
                        Codec::Pcmu => g711::ulaw_encode(x as i16),
                        Codec::Pcma => g711::alaw_encode(x as i16),
                    };
                }
                let h = RtpHeader {
                    pt: codec.payload_type(),
                    marker: seq == 0,
                    seq,
                    ts: u32::from(seq) * 160,
                    ssrc: 0xABCD,
                };
                let mut b = vec![0u8; 172];
                write_packet(&mut b, &h, &payload);
                b
            })
            .collect()
    }

    #[inline(never)]
    fn ab_leg_talking(
        leg: &mut MediaLeg,
        t0: Instant,
        from: SocketAddr,
        pkts: &[Vec<u8>],
    ) -> usize {
        let mut buf = [0u8; MAX_PACKET];
        let mut sent = 0;
        let mut now = t0;
        for p in pkts {
            leg.handle_datagram(now, from, black_box(p));
            while let Some((n, _)) = leg.poll_transmit(now, &mut buf) {
                sent += black_box(n);
            }
            while leg.poll_event().is_some() {}
            now += PTIME;
        }
        sent
    }

    #[inline(never)]
    fn ab_leg_bridged(
        legs: (&mut MediaLeg, &mut MediaLeg),
        t0: Instant,
        pkts: (&[Vec<u8>], &[Vec<u8>]),
    ) -> usize {
        let (a, b) = legs;
        let (from_a, from_b): (SocketAddr, SocketAddr) =
            (PEER_A.parse().unwrap(), PEER_B.parse().unwrap());
        let (mut ab, mut ba) = (OneWay::new(), OneWay::new());
        let mut buf = [0u8; MAX_PACKET];
        let mut sent = 0;
        let mut now = t0;
        for (pa, pb) in pkts.0.iter().zip(pkts.1) {
            sent += a
                .relay(now, from_a, black_box(pa), &mut ab, b, &mut buf)
                .map_or(0, |r| r.0);
            sent += b
                .relay(now, from_b, black_box(pb), &mut ba, a, &mut buf)
                .map_or(0, |r| r.0);
            // The players are paused; the pacers keep time.
            while a.poll_transmit(now, &mut buf).is_some()
                || b.poll_transmit(now, &mut buf).is_some()
            {}
            now += PTIME;
        }
        sent
    }

    /// `RTP_AB_FRAMES` (default 3,000) frames of each; under callgrind,
    /// `--toggle-collect=*::ab_leg_talking` (or `ab_leg_bridged`) ÷ frames is the cost of one.
    #[test]
    #[ignore = "a benchmark: run by hand, in release, under callgrind (BENCHMARKS.md)"]
    fn ab_media_leg_per_frame() {
        let frames: u16 = std::env::var("RTP_AB_FRAMES")
            .ok()
            .and_then(|r| r.parse().ok())
            .unwrap_or(3_000);
        let t0 = crate::clock::now();
        let pcmu = talk(frames, Codec::Pcmu);
        let mut caller = leg(t0, 1, Codec::Pcmu, PEER_A);
        let sent = ab_leg_talking(&mut caller, t0, PEER_A.parse().unwrap(), &pcmu);
        assert_eq!(
            sent,
            usize::from(frames) * 172,
            "one frame out per frame in"
        );
        assert_eq!(caller.session().counters().received, u64::from(frames));

        let pcma = talk(frames, Codec::Pcma);
        let t1 = t0 + Duration::from_secs(3600);
        let (mut a, mut b) = (
            leg(t1, 2, Codec::Pcmu, PEER_A),
            leg(t1, 3, Codec::Pcma, PEER_B),
        );
        a.set_bridged(true);
        b.set_bridged(true);
        let relayed = ab_leg_bridged((&mut a, &mut b), t1, (&pcmu, &pcma));
        assert_eq!(
            relayed,
            2 * usize::from(frames) * 172,
            "every frame relayed both ways"
        );
        println!("{frames} frames talking, {frames} bridged both ways");
    }
}
