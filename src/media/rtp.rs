//! RTP fixed header (RFC 3550 §5.1): zero-allocation parsing of a received datagram and writing
//! of a packet into a caller's buffer, on the `rtp-rs` crate (`RtpReader`, `RtpPacketBuilder`),
//! as the design card names it. Handles the CSRC list, the header extension (§5.3.1) and
//! padding; only version 2 is accepted. Every length is checked: malformed input is an
//! [`RtpError`], never a panic. No sockets here.
//!
//! This module keeps the error type ours (callers count and log [`RtpError`], never
//! `rtp_rs`'s) and the plain-field [`RtpPacket`] the media path reads. The hand-written code it
//! replaced is kept in the tests (`hand`) as the A side of the same-run A/B in BENCHMARKS.md
//! ("RTP headers: rtp-rs A/B") and as an oracle: both must accept and refuse the same datagrams.

use rtp_rs::{RtpPacketBuilder, RtpReader, RtpReaderError, Seq};

/// Length of the fixed RTP header.
pub const HEADER_LEN: usize = 12;

/// Why a datagram is not a valid RTP packet (always the sender's fault).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RtpError {
    /// Shorter than the fixed header.
    #[error("RTP packet too short ({len} bytes)")]
    TooShort {
        /// Datagram length.
        len: usize,
    },
    /// Version field is not 2.
    #[error("RTP version {0} (expected 2)")]
    BadVersion(u8),
    /// The CSRC list runs past the end.
    #[error("RTP CSRC list truncated")]
    CsrcTruncated,
    /// The header extension runs past the end.
    #[error("RTP header extension truncated")]
    ExtensionTruncated,
    /// The padding count is zero or longer than the payload.
    #[error("RTP padding invalid")]
    BadPadding,
}

/// The header fields we set when sending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    /// Payload type (7 bits).
    pub pt: u8,
    /// Marker bit (start of a talkspurt, §5.1 / RFC 3551 §4.1).
    pub marker: bool,
    /// Sequence number.
    pub seq: u16,
    /// Timestamp (8 kHz units for G.711).
    pub ts: u32,
    /// Synchronisation source.
    pub ssrc: u32,
}

/// A parsed RTP packet borrowing the datagram it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpPacket<'a> {
    /// Payload type (7 bits).
    pub pt: u8,
    /// Marker bit.
    pub marker: bool,
    /// Sequence number.
    pub seq: u16,
    /// Timestamp.
    pub ts: u32,
    /// Synchronisation source.
    pub ssrc: u32,
    /// The payload, without CSRCs, extension or padding.
    pub payload: &'a [u8],
}

impl<'a> RtpPacket<'a> {
    /// Parse a received datagram. Call once per datagram; it does not allocate.
    pub fn parse(buf: &'a [u8]) -> Result<Self, RtpError> {
        let r = RtpReader::new(buf).map_err(|e| RtpError::from_reader(buf, &e))?;
        Ok(Self {
            pt: r.payload_type(),
            marker: r.mark(),
            seq: r.sequence_number().into(),
            ts: r.timestamp(),
            ssrc: r.ssrc(),
            payload: r.payload(),
        })
    }

    /// The header fields of this packet.
    pub fn header(&self) -> RtpHeader {
        RtpHeader {
            pt: self.pt,
            marker: self.marker,
            seq: self.seq,
            ts: self.ts,
            ssrc: self.ssrc,
        }
    }
}

impl RtpError {
    /// Our reading of an `rtp-rs` refusal. `HeadersTruncated` does not say which header ran
    /// out, so `buf` tells: the CSRC list, else the extension (rtp-rs needed more than there
    /// is), else the padding flag with no octet left for the padding count.
    #[cold]
    fn from_reader(buf: &[u8], e: &RtpReaderError) -> Self {
        match *e {
            RtpReaderError::BufferTooShort(len) => Self::TooShort { len },
            RtpReaderError::UnsupportedVersion(v) => Self::BadVersion(v),
            RtpReaderError::PaddingLengthInvalid(_) => Self::BadPadding,
            RtpReaderError::HeadersTruncated { header_len, .. } => {
                let csrc_end = HEADER_LEN + 4 * usize::from(buf[0] & 0x0F);
                if csrc_end > buf.len() {
                    Self::CsrcTruncated
                } else if header_len > buf.len() {
                    Self::ExtensionTruncated
                } else {
                    Self::BadPadding
                }
            }
        }
    }
}

/// The builder for `hdr`: version 2, no CSRCs, extension or padding. The payload type is masked
/// to 7 bits (the builder refuses more; the bit above is the marker).
fn builder<'a>(hdr: &RtpHeader) -> RtpPacketBuilder<'a> {
    RtpPacketBuilder::new()
        .payload_type(hdr.pt & 0x7F)
        .marked(hdr.marker)
        .sequence(Seq::from(hdr.seq))
        .timestamp(hdr.ts)
        .ssrc(hdr.ssrc)
}

/// Write the 12-byte fixed header (no CSRCs, extension or padding) into `buf[..12]`.
/// Returns 12, or 0 if `buf` is too short. Use it when the payload is produced in place
/// (e.g. transcoding straight into `buf[12..]`).
pub fn write_header(buf: &mut [u8], hdr: &RtpHeader) -> usize {
    // `build_into` would size and validate a builder that cannot be invalid (the type is
    // masked; no CSRC, extension or padding): it writes exactly 12 bytes, so the unchecked
    // write into exactly that slice cannot index past it, and skips a quarter of the cost.
    buf.get_mut(..HEADER_LEN)
        .map_or(0, |out| builder(hdr).build_into_unchecked(out))
}

/// Write a complete packet (header + payload) into `buf` and return its length, ready to send.
/// Returns 0 if `buf` is shorter than `12 + payload.len()` (size buffers for 1500 bytes and this
/// cannot happen for G.711 frames). Does not allocate.
pub fn write_packet(buf: &mut [u8], hdr: &RtpHeader, payload: &[u8]) -> usize {
    // Exactly `12 + payload.len()` bytes, as in `write_header`.
    buf.get_mut(..HEADER_LEN + payload.len()).map_or(0, |out| {
        builder(hdr).payload(payload).build_into_unchecked(out)
    })
}

#[cfg(test)]
mod hand;

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hdr() -> RtpHeader {
        RtpHeader {
            pt: 0,
            marker: true,
            seq: 0xBEEF,
            ts: 0xDEAD_0001,
            ssrc: 0x1234_5678,
        }
    }

    #[test]
    fn build_and_parse() {
        let mut buf = [0u8; 200];
        let n = write_packet(&mut buf, &hdr(), &[0xFF; 160]);
        assert_eq!(n, 172);
        let p = RtpPacket::parse(&buf[..n]).unwrap();
        assert_eq!(p.header(), hdr());
        assert_eq!(p.payload, &[0xFF; 160][..]);
        assert_eq!(write_packet(&mut buf[..100], &hdr(), &[0; 160]), 0);
    }

    #[test]
    fn csrc_extension_and_padding_are_skipped() {
        let mut pkt = vec![0xB2, 101, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3]; // V=2 P=1 X=1 CC=2
        pkt.extend_from_slice(&[1, 1, 1, 1, 2, 2, 2, 2]); // two CSRCs
        pkt.extend_from_slice(&[0xBE, 0xDE, 0, 1, 9, 9, 9, 9]); // one-word extension
        pkt.extend_from_slice(&[5, 0x8A, 0, 160]); // payload
        pkt.extend_from_slice(&[0, 0, 3]); // three octets of padding
        let p = RtpPacket::parse(&pkt).unwrap();
        assert_eq!(p.pt, 101);
        assert!(!p.marker);
        assert_eq!(p.payload, &[5, 0x8A, 0, 160]);
    }

    #[test]
    fn malformed_packets_are_errors() {
        assert_eq!(
            RtpPacket::parse(&[0x80; 11]),
            Err(RtpError::TooShort { len: 11 })
        );
        let mut p = [0u8; 12];
        p[0] = 0x40;
        assert_eq!(RtpPacket::parse(&p), Err(RtpError::BadVersion(1)));
        p[0] = 0x81; // one CSRC, none present
        assert_eq!(RtpPacket::parse(&p), Err(RtpError::CsrcTruncated));
        p[0] = 0x90; // extension flag, no extension
        assert_eq!(RtpPacket::parse(&p), Err(RtpError::ExtensionTruncated));
        let mut q = [0u8; 16];
        q[0] = 0x90;
        q[14] = 0xFF; // extension claims 255 words
        assert_eq!(RtpPacket::parse(&q), Err(RtpError::ExtensionTruncated));
        let mut r = [0u8; 14];
        r[0] = 0xA0;
        r[13] = 3; // padding longer than the payload
        assert_eq!(RtpPacket::parse(&r), Err(RtpError::BadPadding));
        r[13] = 0;
        assert_eq!(RtpPacket::parse(&r), Err(RtpError::BadPadding));
        r[13] = 2; // exactly the payload: empty payload is fine
        assert_eq!(RtpPacket::parse(&r).unwrap().payload, &[] as &[u8]);
        let mut s = [0u8; 12];
        s[0] = 0xA0; // padding flag, no octet after the header for the count
        s[11] = 1;
        assert_eq!(RtpPacket::parse(&s), Err(RtpError::BadPadding));
        s[0] = 0xB0; // and an extension that does not fit: the extension is what runs out
        assert_eq!(RtpPacket::parse(&s), Err(RtpError::ExtensionTruncated));
        s[0] = 0xB1; // and a CSRC that does not fit: the CSRC list runs out first
        assert_eq!(RtpPacket::parse(&s), Err(RtpError::CsrcTruncated));
    }

    proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = RtpPacket::parse(&bytes);
        }

        #[test]
        fn parse_v2_headers_never_panics(mut bytes in proptest::collection::vec(any::<u8>(), 12..100)) {
            bytes[0] = 0x80 | (bytes[0] & 0x3F);
            if let Ok(p) = RtpPacket::parse(&bytes) {
                prop_assert!(p.payload.len() <= bytes.len() - HEADER_LEN);
            }
        }

        #[test]
        fn build_parse_round_trip(pt in 0u8..128, marker: bool, seq: u16, ts: u32, ssrc: u32,
                                  payload in proptest::collection::vec(any::<u8>(), 0..300)) {
            let h = RtpHeader { pt, marker, seq, ts, ssrc };
            let mut buf = [0u8; 400];
            let n = write_packet(&mut buf, &h, &payload);
            prop_assert_eq!(n, HEADER_LEN + payload.len());
            let p = RtpPacket::parse(&buf[..n]).unwrap();
            prop_assert_eq!(p.header(), h);
            prop_assert_eq!(p.payload, &payload[..]);
        }
    }
}
