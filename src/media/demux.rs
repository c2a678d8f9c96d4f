//! What a datagram on a browser leg's socket is, from its first bytes (RFC 7983 §7, which
//! updates RFC 5764 §5.1.2; RTP and RTCP told apart as RFC 5761 §4 says). A WebRTC peer sends
//! STUN, DTLS, SRTP and SRTCP on one port: the media thread keeps the SRTP and hands STUN (ICE
//! checks, consent freshness) and DTLS (the handshake, alerts, close_notify) to the call's peer
//! connection.
//!
//! PURE: a look at two bytes.

/// The protocol of a datagram on a multiplexed port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// First byte 0–3.
    Stun,
    /// 20–63.
    Dtls,
    /// 128–191 with an RTP payload type.
    Rtp,
    /// 128–191 with a second byte of 192–223 (RTCP packet types 192–223, RFC 5761 §4).
    Rtcp,
    /// Anything else (ZRTP 16–19, TURN channels 64–79, empty, unassigned): dropped.
    Other,
}

/// Classify `bytes` (RFC 7983 §7).
pub fn classify(bytes: &[u8]) -> Kind {
    match bytes {
        [0..=3, ..] => Kind::Stun,
        [20..=63, ..] => Kind::Dtls,
        [128..=191, 192..=223, ..] => Kind::Rtcp,
        [128..=191, _, ..] => Kind::Rtp,
        _ => Kind::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_byte_ranges() {
        // A STUN binding request (type 0x0001), a DTLS handshake record (22), alert (21),
        // application data (23).
        assert_eq!(classify(&[0x00, 0x01, 0x00, 0x00]), Kind::Stun);
        assert_eq!(
            classify(&[0x01, 0x01]),
            Kind::Stun,
            "a binding success response"
        );
        assert_eq!(classify(&[3]), Kind::Stun);
        for b in [20u8, 21, 22, 23, 63] {
            assert_eq!(classify(&[b, 0xfe, 0xfd]), Kind::Dtls, "{b}");
        }
        for b in [4u8, 16, 19, 64, 79, 127, 192, 255] {
            assert_eq!(classify(&[b, 0]), Kind::Other, "{b}");
        }
        assert_eq!(classify(&[]), Kind::Other);
    }

    #[test]
    fn rtp_and_rtcp_by_their_second_byte() {
        // PCMU (0), PCMA (8), telephone-event (126), each with and without the marker bit.
        for pt in [0u8, 8, 126] {
            assert_eq!(classify(&[0x80, pt]), Kind::Rtp, "{pt}");
            assert_eq!(classify(&[0x80, 0x80 | pt]), Kind::Rtp, "{pt} marked");
        }
        // SR 200, RR 201, SDES 202, BYE 203, APP 204, RTPFB 205, PSFB 206; with padding and a
        // report count in the first byte.
        for pt in 200u8..=206 {
            assert_eq!(classify(&[0x81, pt]), Kind::Rtcp, "{pt}");
            assert_eq!(classify(&[0xa1, pt]), Kind::Rtcp, "{pt}");
        }
        assert_eq!(classify(&[0x80, 192]), Kind::Rtcp);
        assert_eq!(classify(&[0x80, 223]), Kind::Rtcp);
        assert_eq!(classify(&[0x80]), Kind::Other, "a runt is nothing");
    }
}
