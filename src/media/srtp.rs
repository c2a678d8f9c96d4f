//! SRTP (RFC 3711) for one call leg: the two cryptographic contexts an SDES-keyed leg needs,
//! one that protects what we send with our key, one that checks and decrypts what the peer
//! sends with its key (RFC 4568 §6.1: each direction has its sender's key). The cipher work
//! is `rtc-srtp`'s, the sans-IO SRTP of the webrtc-rs stack (AES-CM + HMAC-SHA1 on ring);
//! what is ours is where it sits: every packet of a leg passes through [`Srtp`] inside its
//! `RtpSession`, prompts, telephone-events and bridged audio alike.
//!
//! - [`Srtp::protect`] works in place: the caller's buffer needs room for the auth tag
//!   ([`Srtp::overhead`] bytes past the RTP packet).
//! - [`Srtp::unprotect`] writes the RTP packet into a scratch buffer. A packet that fails
//!   authentication, is a replay (a 128-packet window, §3.3.2), or carries another MKI is an
//!   [`SrtpError`]: the session drops and counts it, it never panics.
//!
//! PURE: no sockets, no clocks. The library allocates one buffer per packet; the benchmark
//! in BENCHMARKS.md measures what SRTP costs per packet all told.

use std::sync::{Arc, LazyLock};

use rtc_shared::error::Error as RtcError;
use rtc_srtp::context::Context;
use rtc_srtp::crypto::{RTCCryptoProvider, default_provider};
use rtc_srtp::option::srtp_replay_protection;
use rtc_srtp::protection_profile::ProtectionProfile;

use crate::media::sdes::{Mki, Suite};
use crate::media::sdp::SrtpKeys;

/// The replay window for received packets (RFC 3711 §3.3.2 asks for at least 64).
pub const REPLAY_WINDOW: usize = 128;

/// The crypto provider: ring, built in. Deterministic operations only (no randomness is drawn
/// here: keys come in through [`SrtpKeys`]).
static PROVIDER: LazyLock<Option<Arc<dyn RTCCryptoProvider>>> =
    LazyLock::new(|| default_provider().ok());

/// Why SRTP refused a packet or a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SrtpError {
    /// The contexts could not be built from the negotiated keys (Hammond's fault: the key
    /// lengths are fixed by the suite).
    #[error("SRTP context could not be keyed")]
    Keying,
    /// The packet's authentication tag did not verify, it is too short to carry one, or it is
    /// not RTP: the peer's fault or an attacker's.
    #[error("SRTP packet not authentic")]
    Unauthenticated,
    /// A packet the replay window has already seen.
    #[error("SRTP packet replayed")]
    Replayed,
    /// The packet's MKI is not the one the peer's key announced.
    #[error("SRTP packet with an unknown MKI")]
    UnknownMki,
    /// Our packet could not be protected: the buffer has no room for the tag, or the key has
    /// protected 2^48 packets (§9.2).
    #[error("SRTP packet could not be protected")]
    Protect,
}

/// The SRTP state of one leg.
pub struct Srtp {
    keys: SrtpKeys,
    tx: Context,
    rx: Context,
}

impl std::fmt::Debug for Srtp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Srtp")
            .field("suite", &self.keys.suite)
            .finish_non_exhaustive()
    }
}

fn profile(suite: Suite) -> ProtectionProfile {
    match suite {
        Suite::AesCm128HmacSha1_80 => ProtectionProfile::Aes128CmHmacSha1_80,
        Suite::AesCm128HmacSha1_32 => ProtectionProfile::Aes128CmHmacSha1_32,
    }
}

fn context(suite: Suite, key: &[u8], salt: &[u8], rx: bool) -> Result<Context, SrtpError> {
    let provider = PROVIDER.as_ref().ok_or(SrtpError::Keying)?;
    let replay = rx.then(|| srtp_replay_protection(REPLAY_WINDOW));
    Context::new(key, salt, profile(suite), replay, None, provider.crypto())
        .map_err(|_| SrtpError::Keying)
}

impl Srtp {
    /// Contexts for a leg keyed as negotiated.
    pub fn new(keys: &SrtpKeys) -> Result<Self, SrtpError> {
        Ok(Self {
            tx: context(keys.suite, keys.local.key(), keys.local.salt(), false)?,
            rx: context(keys.suite, keys.remote.key(), keys.remote.salt(), true)?,
            keys: keys.clone(),
        })
    }

    /// Take a re-negotiation (re-INVITE): a context whose key did not change keeps its state
    /// (its rollover counter: §3.3.1, restarting it would reuse keystream); a new key gets a
    /// fresh context.
    pub fn rekey(&mut self, keys: &SrtpKeys) -> Result<(), SrtpError> {
        if keys.suite != self.keys.suite || keys.local != self.keys.local {
            self.tx = context(keys.suite, keys.local.key(), keys.local.salt(), false)?;
        }
        if keys.suite != self.keys.suite || keys.remote != self.keys.remote {
            self.rx = context(keys.suite, keys.remote.key(), keys.remote.salt(), true)?;
        }
        self.keys = keys.clone();
        Ok(())
    }

    /// The suite in use.
    pub fn suite(&self) -> Suite {
        self.keys.suite
    }

    /// Bytes [`Srtp::protect`] adds to a packet (the auth tag; we send no MKI).
    pub fn overhead(&self) -> usize {
        self.keys.suite.auth_tag_len()
    }

    /// Protect the RTP packet in `buf[..len]` in place (payload encrypted, tag appended) and
    /// return the SRTP packet's length. `buf` must have [`Srtp::overhead`] bytes to spare.
    pub fn protect(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        let out_len = len + self.overhead();
        if buf.len() < out_len {
            return Err(SrtpError::Protect);
        }
        let sealed = self
            .tx
            .encrypt_rtp(&buf[..len])
            .map_err(|_| SrtpError::Protect)?;
        if sealed.len() != out_len {
            return Err(SrtpError::Protect);
        }
        buf[..out_len].copy_from_slice(&sealed);
        Ok(out_len)
    }

    /// Check and decrypt the SRTP packet `packet`, writing the RTP packet into `out` (which
    /// must be as long as `packet`); returns it.
    pub fn unprotect<'o>(
        &mut self,
        packet: &[u8],
        out: &'o mut [u8],
    ) -> Result<&'o [u8], SrtpError> {
        let tag = self.overhead();
        let mki = self.keys.remote_mki.map_or(([0; 4], 0), Mki::bytes);
        if packet.len() < crate::media::rtp::HEADER_LEN + mki.1 + tag || out.len() < packet.len() {
            return Err(SrtpError::Unauthenticated);
        }
        // §3.1: the MKI sits between the encrypted portion and the tag, outside the MAC.
        let body = packet.len() - tag - mki.1;
        if packet[body..body + mki.1] != mki.0[4 - mki.1..] {
            return Err(SrtpError::UnknownMki);
        }
        let input: &[u8] = if mki.1 == 0 {
            packet
        } else {
            out[..body].copy_from_slice(&packet[..body]);
            out[body..body + tag].copy_from_slice(&packet[body + mki.1..]);
            &out[..body + tag]
        };
        let plain = self.rx.decrypt_rtp(input).map_err(|e| match e {
            RtcError::SrtpSsrcDuplicated(..) => SrtpError::Replayed,
            _ => SrtpError::Unauthenticated,
        })?;
        out[..plain.len()].copy_from_slice(&plain);
        Ok(&out[..plain.len()])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::rtp::{self, RtpHeader, RtpPacket};
    use crate::media::sdes::MasterKey;

    fn key(seed: u8) -> MasterKey {
        MasterKey::generate(|b| {
            b.iter_mut()
                .enumerate()
                .for_each(|(i, x)| *x = seed.wrapping_mul(37) ^ i as u8)
        })
    }

    /// The two ends of one leg: `a` sends with key 1, `b` with key 2.
    fn pair(suite: Suite) -> (Srtp, Srtp) {
        let ab = |l, r| SrtpKeys {
            suite,
            local: key(l),
            remote: key(r),
            remote_mki: None,
        };
        (Srtp::new(&ab(1, 2)).unwrap(), Srtp::new(&ab(2, 1)).unwrap())
    }

    fn packet(seq: u16, payload: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; 12 + payload.len() + 10];
        let h = RtpHeader {
            pt: 0,
            marker: false,
            seq,
            ts: u32::from(seq) * 160,
            ssrc: 0xCAFE,
        };
        let n = rtp::write_packet(&mut b, &h, payload);
        b.truncate(n);
        b
    }

    fn seal(s: &mut Srtp, plain: &[u8]) -> Vec<u8> {
        let mut buf = plain.to_vec();
        buf.resize(plain.len() + s.overhead(), 0);
        let n = s.protect(&mut buf, plain.len()).unwrap();
        buf.truncate(n);
        buf
    }

    /// libsrtp's known answer for AES_CM_128_HMAC_SHA1_80 (srtp_driver.c): the same key and
    /// packet give the same bytes on the wire, so we interoperate with it.
    #[test]
    fn matches_libsrtp_known_answer() {
        let master: [u8; 30] = [
            0xe1, 0xf9, 0x7a, 0x0d, 0x3e, 0x01, 0x8b, 0xe0, 0xd6, 0x4f, 0xa3, 0x2c, 0x06, 0xde,
            0x41, 0x39, 0x0e, 0xc6, 0x75, 0xad, 0x49, 0x8a, 0xfe, 0xeb, 0xb6, 0x96, 0x0b, 0x3a,
            0xab, 0xe6,
        ];
        let k = MasterKey::generate(|b| b.copy_from_slice(&master));
        let keys = SrtpKeys {
            suite: Suite::AesCm128HmacSha1_80,
            local: k.clone(),
            remote: k,
            remote_mki: None,
        };
        let mut plain = vec![
            0x80, 0x0f, 0x12, 0x34, 0xde, 0xca, 0xfb, 0xad, 0xca, 0xfe, 0xba, 0xbe,
        ];
        plain.extend([0xab; 16]);
        let wire = [
            0x80, 0x0f, 0x12, 0x34, 0xde, 0xca, 0xfb, 0xad, 0xca, 0xfe, 0xba, 0xbe, 0x4e, 0x55,
            0xdc, 0x4c, 0xe7, 0x99, 0x78, 0xd8, 0x8c, 0xa4, 0xd2, 0x15, 0x94, 0x9d, 0x24, 0x02,
            0xb7, 0x8d, 0x6a, 0xcc, 0x99, 0xea, 0x17, 0x9b, 0x8d, 0xbb,
        ];
        let mut s = Srtp::new(&keys).unwrap();
        assert_eq!(seal(&mut s, &plain), wire);
        let mut out = [0u8; 64];
        assert_eq!(s.unprotect(&wire, &mut out).unwrap(), &plain[..]);
    }

    #[test]
    fn round_trip_both_suites_and_what_is_refused() {
        for suite in Suite::ALL {
            let (mut a, mut b) = pair(suite);
            let speech: Vec<u8> = (0..160u8).collect();
            let plain = packet(7, &speech);
            let wire = seal(&mut a, &plain);
            assert_eq!(wire.len(), plain.len() + suite.auth_tag_len());
            assert_eq!(wire[..12], plain[..12], "the header stays readable");
            assert_ne!(wire[12..172], plain[12..], "the payload does not");
            let mut out = [0u8; 1500];
            assert_eq!(b.unprotect(&wire, &mut out).unwrap(), &plain[..]);
            assert_eq!(b.unprotect(&wire, &mut out), Err(SrtpError::Replayed));
            // A flipped payload bit, a flipped tag bit, plain RTP, a runt, our own key.
            let next = seal(&mut a, &packet(8, &speech));
            for (i, bad) in [(20usize, next.clone()), (next.len() - 1, next.clone())] {
                let mut bad = bad;
                bad[i] ^= 1;
                assert_eq!(b.unprotect(&bad, &mut out), Err(SrtpError::Unauthenticated));
            }
            assert_eq!(
                b.unprotect(&packet(9, &speech), &mut out),
                Err(SrtpError::Unauthenticated)
            );
            assert_eq!(
                b.unprotect(&next[..13], &mut out),
                Err(SrtpError::Unauthenticated)
            );
            let mut own = seal(&mut b, &packet(10, &speech));
            assert_eq!(b.unprotect(&own, &mut out), Err(SrtpError::Unauthenticated));
            own.clear();
            assert_eq!(b.unprotect(&next, &mut out).map(<[u8]>::len), Ok(172));
            let parsed = RtpPacket::parse(&out[..172]).unwrap();
            assert_eq!((parsed.seq, parsed.payload), (8, &speech[..]));
            let mut small = vec![0u8; plain.len()];
            small.copy_from_slice(&plain);
            assert_eq!(a.protect(&mut small, plain.len()), Err(SrtpError::Protect));
        }
    }

    /// The peer's key has an MKI: its packets carry it between payload and tag.
    #[test]
    fn peer_mki_is_checked_and_stripped() {
        let (mut a, _) = pair(Suite::AesCm128HmacSha1_80);
        let mut b = Srtp::new(&SrtpKeys {
            suite: Suite::AesCm128HmacSha1_80,
            local: key(2),
            remote: key(1),
            remote_mki: Some(Mki {
                value: 0x0102,
                len: 2,
            }),
        })
        .unwrap();
        let plain = packet(1, &[0x55; 160]);
        let wire = seal(&mut a, &plain);
        let with_mki = |mki: [u8; 2]| {
            let body = wire.len() - 10;
            [&wire[..body], &mki[..], &wire[body..]].concat()
        };
        let mut out = [0u8; 1500];
        assert_eq!(
            b.unprotect(&with_mki([9, 9]), &mut out),
            Err(SrtpError::UnknownMki)
        );
        assert_eq!(
            b.unprotect(&with_mki([1, 2]), &mut out).unwrap(),
            &plain[..]
        );
    }

    /// A re-INVITE that keeps the keys keeps the contexts (the replay window remembers); a new
    /// peer key takes effect at once.
    #[test]
    fn rekey_keeps_unchanged_contexts() {
        let (mut a, mut b) = pair(Suite::AesCm128HmacSha1_32);
        let first = seal(&mut a, &packet(1, &[1; 160]));
        let mut out = [0u8; 1500];
        b.unprotect(&first, &mut out).unwrap();
        let same = b.keys.clone();
        b.rekey(&same).unwrap();
        assert_eq!(b.unprotect(&first, &mut out), Err(SrtpError::Replayed));
        let new_peer = SrtpKeys {
            remote: key(3),
            ..same
        };
        b.rekey(&new_peer).unwrap();
        assert_eq!(
            b.unprotect(&seal(&mut a, &packet(2, &[1; 160])), &mut out),
            Err(SrtpError::Unauthenticated)
        );
        assert_eq!(format!("{b:?}"), "Srtp { suite: AesCm128HmacSha1_32, .. }");
    }
}
