//! Fuzz `media::rtp::RtpPacket::parse` and RFC 4733 telephone-events: parsing may fail but never
//! panic; a parsed packet's payload lies inside the datagram, and writing its header back and
//! parsing again gives the same header and payload. Every payload also goes through
//! `rfc4733::Event::parse` and a `Detector` (as if it were the telephone-event PT).
//!
//! `RUSTC_BOOTSTRAP=1 cargo fuzz run rtp -- -max_total_time=300` from the repository root.
#![no_main]

use hammond::media::dtmf::rfc4733::{Detector, Event};
use hammond::media::rtp::{RtpPacket, write_packet};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut detector = Detector::new();
    if let Ok(p) = RtpPacket::parse(data) {
        assert!(p.payload.len() <= data.len(), "payload longer than the datagram");
        let hdr = p.header();
        let mut buf = vec![0u8; 12 + p.payload.len()];
        let n = write_packet(&mut buf, &hdr, p.payload);
        let again = RtpPacket::parse(&buf[..n]).expect("a written packet parses");
        assert_eq!(again.header(), hdr, "header round trip");
        assert_eq!(again.payload, p.payload, "payload round trip");
        if let Some(ev) = Event::parse(p.payload) {
            let _ = ev.digit();
        }
        let _ = detector.handle(p.ts, p.marker, p.payload);
    }
    // The raw bytes as a stream of 4-byte telephone-event payloads with rising timestamps.
    for (i, chunk) in data.chunks(4).enumerate() {
        let _ = Event::parse(chunk);
        let _ = detector.handle(u32::try_from(i / 3).unwrap_or(0) * 160, i == 0, chunk);
    }
});
