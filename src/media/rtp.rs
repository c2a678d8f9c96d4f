//! RTP fixed header (RFC 3550 §5.1): zero-allocation parsing of a received datagram and writing
//! of a packet into a caller's buffer. Handles the CSRC list, the header extension (§5.3.1) and
//! padding; only version 2 is accepted. Every length is checked: malformed input is an
//! [`RtpError`], never a panic. No sockets here.
//!
//! We do not use the `rtp-rs` crate: the header is 12 bytes and two functions, and owning them
//! keeps the error type ours and the build lean.

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
            // §5.3.1: 16-bit profile id, 16-bit length in 32-bit words, then the words.
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
            // §5.1: the last octet counts the padding octets, itself included.
            let pad = usize::from(buf[end - 1]);
            if pad == 0 || pad > end - start {
                return Err(RtpError::BadPadding);
            }
            end -= pad;
        }
        Ok(Self {
            pt: buf[1] & 0x7F,
            marker: buf[1] & 0x80 != 0,
            seq: u16::from_be_bytes([buf[2], buf[3]]),
            ts: u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]),
            ssrc: u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]),
            payload: &buf[start..end],
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

/// Write the 12-byte fixed header (no CSRCs, extension or padding) into `buf[..12]`.
/// Returns 12, or 0 if `buf` is too short. Use it when the payload is produced in place
/// (e.g. transcoding straight into `buf[12..]`).
pub fn write_header(buf: &mut [u8], hdr: &RtpHeader) -> usize {
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

/// Write a complete packet (header + payload) into `buf` and return its length, ready to send.
/// Returns 0 if `buf` is shorter than `12 + payload.len()` (size buffers for 1500 bytes and this
/// cannot happen for G.711 frames). Does not allocate.
pub fn write_packet(buf: &mut [u8], hdr: &RtpHeader, payload: &[u8]) -> usize {
    let len = HEADER_LEN + payload.len();
    if buf.len() < len {
        return 0;
    }
    write_header(buf, hdr);
    buf[HEADER_LEN..len].copy_from_slice(payload);
    len
}

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
