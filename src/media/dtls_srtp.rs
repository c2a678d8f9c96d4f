//! DTLS-SRTP keying (RFC 5764 §4.2): the SRTP master keys of a browser leg, cut from the keying
//! material its DTLS handshake exports (RFC 5705, label `EXTRACTOR-dtls_srtp`), so that the
//! media thread's [`Srtp`](crate::media::srtp::Srtp) protects and checks the browser's packets
//! itself, the same way it does for an SDES-keyed SIP leg.
//!
//! The material is four fields, in this order:
//!
//! ```text
//! client_write_SRTP_master_key[16] | server_write_SRTP_master_key[16]
//! client_write_SRTP_master_salt[14] | server_write_SRTP_master_salt[14]
//! ```
//!
//! Each side sends with its own *write* key, so which half is "ours" depends on the DTLS role:
//! Hammond answers as the DTLS server (`a=setup:passive`), so it sends with the server's key and
//! salt and checks the browser's packets with the client's. Keys or salts taken in the wrong
//! order fail every packet's authentication, both ways.
//!
//! PURE: bytes in, keys out.

use crate::media::sdes::{KEY_LEN, KEY_SALT_LEN, MasterKey, Suite};
use crate::media::sdp::SrtpKeys;

/// The RFC 5705 exporter label for DTLS-SRTP (RFC 5764 §4.2).
pub const EXPORTER_LABEL: &str = "EXTRACTOR-dtls_srtp";
/// Bytes of keying material the AES-CM suites need: a key and a salt for each side.
pub const KEYING_MATERIAL_LEN: usize = 2 * KEY_SALT_LEN;
/// Bytes of a master salt (112 bits).
const SALT_LEN: usize = KEY_SALT_LEN - KEY_LEN;

/// Our end of the DTLS association.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DtlsRole {
    Client,
    Server,
}

/// Why keying material could not be cut into keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyingError {
    /// The exporter gave another length than the suite needs (Hammond's fault).
    #[error("DTLS-SRTP keying material is {0} bytes, not {KEYING_MATERIAL_LEN}")]
    Length(usize),
}

/// The leg's SRTP keys from the exported `material`, for our DTLS `role`.
pub fn srtp_keys(suite: Suite, material: &[u8], role: DtlsRole) -> Result<SrtpKeys, KeyingError> {
    if material.len() != KEYING_MATERIAL_LEN {
        return Err(KeyingError::Length(material.len()));
    }
    let (keys, salts) = material.split_at(2 * KEY_LEN);
    let (client_key, server_key) = keys.split_at(KEY_LEN);
    let (client_salt, server_salt) = salts.split_at(SALT_LEN);
    let master = |key: &[u8], salt: &[u8]| {
        MasterKey::generate(|b| {
            b[..KEY_LEN].copy_from_slice(key);
            b[KEY_LEN..].copy_from_slice(salt);
        })
    };
    let client = master(client_key, client_salt);
    let server = master(server_key, server_salt);
    let (local, remote) = match role {
        DtlsRole::Server => (server, client),
        DtlsRole::Client => (client, server),
    };
    Ok(SrtpKeys {
        suite,
        local,
        remote,
        remote_mki: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::rtp::{self, RtpHeader};
    use crate::media::srtp::{Srtp, SrtpError};

    /// Material whose every byte says where it sits.
    fn material() -> Vec<u8> {
        (0..KEYING_MATERIAL_LEN as u8).collect()
    }

    /// RFC 5764 §4.2 byte by byte: the server sends with bytes 16..32 and salt 46..60, and
    /// checks the client's packets with 0..16 and salt 32..46.
    #[test]
    fn the_server_sends_with_the_server_write_key_and_salt() {
        let m = material();
        let k = srtp_keys(Suite::AesCm128HmacSha1_80, &m, DtlsRole::Server).unwrap();
        assert_eq!(k.local.key(), &m[16..32], "server_write_SRTP_master_key");
        assert_eq!(k.local.salt(), &m[46..60], "server_write_SRTP_master_salt");
        assert_eq!(k.remote.key(), &m[0..16], "client_write_SRTP_master_key");
        assert_eq!(k.remote.salt(), &m[32..46], "client_write_SRTP_master_salt");
        let c = srtp_keys(Suite::AesCm128HmacSha1_80, &m, DtlsRole::Client).unwrap();
        assert_eq!(
            (c.local.key(), c.local.salt()),
            (k.remote.key(), k.remote.salt())
        );
        assert_eq!(
            (c.remote.key(), c.remote.salt()),
            (k.local.key(), k.local.salt())
        );
    }

    /// The same split as the webrtc-rs stack makes for its own SRTP (the browser's side of the
    /// split is libsrtp's, which agrees with it: the Chromium tests carry audio both ways).
    #[test]
    fn agrees_with_rtc_srtp_for_both_roles() {
        let m = material();
        for (role, is_client) in [(DtlsRole::Server, false), (DtlsRole::Client, true)] {
            let mut cfg = rtc_srtp::config::Config {
                profile: rtc_srtp::protection_profile::ProtectionProfile::Aes128CmHmacSha1_80,
                ..Default::default()
            };
            assert_eq!(cfg.keying_material_len(), KEYING_MATERIAL_LEN);
            cfg.set_session_keys_from_keying_material(&m, is_client)
                .unwrap();
            let k = srtp_keys(Suite::AesCm128HmacSha1_80, &m, role).unwrap();
            assert_eq!(k.local.key(), &cfg.keys.local_master_key[..], "{role:?}");
            assert_eq!(k.local.salt(), &cfg.keys.local_master_salt[..], "{role:?}");
            assert_eq!(k.remote.key(), &cfg.keys.remote_master_key[..], "{role:?}");
            assert_eq!(
                k.remote.salt(),
                &cfg.keys.remote_master_salt[..],
                "{role:?}"
            );
        }
    }

    /// What the browser (the DTLS client) protects, Hammond (the server) accepts, and the other
    /// way; keys taken for the wrong role refuse it.
    #[test]
    fn client_and_server_keys_pair_up_and_the_wrong_role_does_not() {
        let m = material();
        let suite = Suite::AesCm128HmacSha1_80;
        let mut browser = Srtp::new(&srtp_keys(suite, &m, DtlsRole::Client).unwrap()).unwrap();
        let mut hammond = Srtp::new(&srtp_keys(suite, &m, DtlsRole::Server).unwrap()).unwrap();
        let mut confused = Srtp::new(&srtp_keys(suite, &m, DtlsRole::Client).unwrap()).unwrap();
        let seal = |s: &mut Srtp, seq: u16| {
            let mut b = vec![0u8; 12 + 160 + s.overhead()];
            let h = RtpHeader {
                pt: 0,
                marker: false,
                seq,
                ts: 160 * u32::from(seq),
                ssrc: 7,
            };
            let n = rtp::write_packet(&mut b, &h, &[0x55; 160]);
            let n = s.protect(&mut b, n).unwrap();
            b.truncate(n);
            b
        };
        let mut out = [0u8; 1500];
        let up = seal(&mut browser, 1);
        assert_eq!(
            confused.unprotect(&up, &mut out),
            Err(SrtpError::Unauthenticated)
        );
        assert!(hammond.unprotect(&up, &mut out).is_ok());
        let down = seal(&mut hammond, 1);
        assert!(browser.unprotect(&down, &mut out).is_ok());
    }

    #[test]
    fn material_of_another_length_is_refused() {
        let m = material();
        assert_eq!(
            srtp_keys(Suite::AesCm128HmacSha1_32, &m[..56], DtlsRole::Server).err(),
            Some(KeyingError::Length(56))
        );
    }
}
