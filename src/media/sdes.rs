//! SDES keying for SRTP (RFC 4568): the SDP `a=crypto` attribute, parsed and written, for the
//! two suites we speak, `AES_CM_128_HMAC_SHA1_80` and `AES_CM_128_HMAC_SHA1_32` (RFC 4568 §6.2).
//!
//! ```text
//! a=crypto:<tag> <crypto-suite> inline:<base64 key||salt>[|<lifetime>][|<MKI>:<length>] [<session-params>]
//! ```
//!
//! - Each side's `a=crypto` carries the key *that side* sends with (§6.1): the answerer picks
//!   one of the offered lines by tag and answers with the same tag and suite and its own key.
//! - A line whose suite we do not know is [`SdesError::UnknownSuite`] (skip it, another line
//!   may do); a malformed one is [`SdesError::Malformed`]; session parameters that would weaken
//!   or change SRTP as we run it (`UNENCRYPTED_SRTP`, `UNAUTHENTICATED_SRTP`, a non-zero `KDR`,
//!   `FEC_KEY`) or several keys are [`SdesError::Unsupported`] (§6.3: refuse the line).
//! - Keys never reach a log: [`MasterKey`]'s `Debug` is redacted, the only way to the bytes is
//!   [`CryptoAttr::write_value`] (into our own SDP), and [`redact`] masks `inline:` keys in any
//!   SDP text before it is logged.
//!
//! PURE: the key bytes come in from the caller (the shell fills them from the OS RNG, never the
//! seeded protocol-id generator); no sockets, no clocks.

use std::borrow::Cow;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// Length of an AES-128 master key plus its 112-bit master salt (RFC 3711 §8.2).
pub const KEY_SALT_LEN: usize = 30;
/// Bytes of the master key (AES-128).
pub const KEY_LEN: usize = 16;
/// Longest `a=crypto` value we look at: a line with two keys and every session parameter is
/// well under it.
pub const MAX_CRYPTO_LEN: usize = 512;
/// Largest tag (§9.1: 1*9DIGIT).
pub const MAX_TAG: u32 = 999_999_999;

/// An SRTP crypto suite we support (RFC 4568 §6.2.1, §6.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Suite {
    /// AES counter mode, 128-bit key, HMAC-SHA1 with an 80-bit tag (the default of RFC 3711).
    AesCm128HmacSha1_80,
    /// The same with a 32-bit tag (RFC 3711 §5.2: fine for voice).
    AesCm128HmacSha1_32,
}

impl Suite {
    /// Both suites, in the order we prefer and offer them.
    pub const ALL: [Self; 2] = [Self::AesCm128HmacSha1_80, Self::AesCm128HmacSha1_32];

    /// The suite's name as written in `a=crypto`.
    pub fn name(self) -> &'static str {
        match self {
            Self::AesCm128HmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            Self::AesCm128HmacSha1_32 => "AES_CM_128_HMAC_SHA1_32",
        }
    }

    /// The suite named `name` (case-sensitive, §9.2), if we support it.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Bytes of the authentication tag each SRTP packet carries.
    pub fn auth_tag_len(self) -> usize {
        match self {
            Self::AesCm128HmacSha1_80 => 10,
            Self::AesCm128HmacSha1_32 => 4,
        }
    }

    /// Index of this suite in [`Suite::ALL`].
    pub fn index(self) -> usize {
        match self {
            Self::AesCm128HmacSha1_80 => 0,
            Self::AesCm128HmacSha1_32 => 1,
        }
    }
}

/// An SRTP master key and salt (30 bytes). `Debug` never shows them; dropping zeroes them.
#[derive(Clone, PartialEq, Eq)]
pub struct MasterKey([u8; KEY_SALT_LEN]);

impl MasterKey {
    /// A key whose bytes `fill` writes: in production from the OS RNG (`rt` does this), in
    /// tests from anything repeatable.
    pub fn generate(fill: impl FnOnce(&mut [u8])) -> Self {
        let mut k = [0u8; KEY_SALT_LEN];
        fill(&mut k);
        Self(k)
    }

    /// The 16-byte AES master key.
    pub fn key(&self) -> &[u8] {
        &self.0[..KEY_LEN]
    }

    /// The 14-byte master salt.
    pub fn salt(&self) -> &[u8] {
        &self.0[KEY_LEN..]
    }

    fn base64(&self) -> String {
        STANDARD.encode(self.0)
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(REDACTED)")
    }
}

impl Drop for MasterKey {
    fn drop(&mut self) {
        // The bytes do not outlive the key in this copy of it.
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

/// A Master Key Identifier carried in every SRTP packet of the key (RFC 3711 §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mki {
    /// The identifier's value.
    pub value: u32,
    /// Its length on the wire, 1 to 4 bytes (we refuse longer ones).
    pub len: u8,
}

impl Mki {
    /// The identifier as it appears in a packet (big-endian, `len` bytes).
    pub fn bytes(self) -> ([u8; 4], usize) {
        let len = usize::from(self.len);
        let mut out = [0u8; 4];
        out[4 - len..].copy_from_slice(&self.value.to_be_bytes()[4 - len..]);
        (out, len)
    }
}

/// One `a=crypto` attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CryptoAttr {
    /// The tag that the answer repeats (§6.1).
    pub tag: u32,
    /// The crypto suite.
    pub suite: Suite,
    /// The key the line's sender protects its packets with.
    pub key: MasterKey,
    /// Packets the key may protect (`2^31` when written `2^31`), if given.
    pub lifetime: Option<u64>,
    /// The key's MKI, if its packets carry one.
    pub mki: Option<Mki>,
}

/// Why an `a=crypto` value was not taken. All are the peer's doing; none fails a whole SDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SdesError {
    /// Not the grammar of RFC 4568 §9.
    #[error("malformed a=crypto: {0}")]
    Malformed(&'static str),
    /// A crypto suite we do not implement (another line may offer one we do).
    #[error("a=crypto suite not supported")]
    UnknownSuite,
    /// Well-formed, but asks for something we do not do.
    #[error("a=crypto not supported: {0}")]
    Unsupported(&'static str),
}

fn decimal(s: &str, what: &'static str) -> Result<u64, SdesError> {
    if s.is_empty() || s.len() > 19 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SdesError::Malformed(what));
    }
    s.parse().map_err(|_| SdesError::Malformed(what))
}

impl CryptoAttr {
    /// Parse the value of an `a=crypto` attribute (what follows `a=crypto:`).
    pub fn parse(value: &str) -> Result<Self, SdesError> {
        use SdesError::{Malformed, Unsupported};
        if value.len() > MAX_CRYPTO_LEN {
            return Err(Malformed("too long"));
        }
        let mut fields = value.split_ascii_whitespace();
        let tag = fields.next().ok_or(Malformed("no tag"))?;
        let tag = decimal(tag, "tag")?;
        let tag = u32::try_from(tag)
            .ok()
            .filter(|t| (1..=MAX_TAG).contains(t))
            .ok_or(Malformed("tag"))?;
        let suite = fields.next().ok_or(Malformed("no crypto suite"))?;
        let key_params = fields.next().ok_or(Malformed("no key parameters"))?;
        let suite = Suite::from_name(suite).ok_or(SdesError::UnknownSuite)?;
        if key_params.contains(';') {
            // §6.1: several keys, told apart by MKI; we hold one key per direction.
            return Err(Unsupported("several master keys"));
        }
        let info = key_params
            .strip_prefix("inline:")
            .ok_or(Unsupported("key method other than inline"))?;
        let mut parts = info.split('|');
        let b64 = parts.next().unwrap_or_default();
        let mut key = [0u8; KEY_SALT_LEN];
        match STANDARD.decode_slice(b64, &mut key) {
            Ok(KEY_SALT_LEN) => {}
            Ok(_) | Err(_) => return Err(Malformed("key||salt is not 30 bytes of base64")),
        }
        let key = MasterKey(key);
        let (mut lifetime, mut mki) = (None, None);
        for part in parts {
            if let Some((v, len)) = part.split_once(':') {
                if mki.is_some() {
                    return Err(Malformed("MKI given twice"));
                }
                let len = decimal(len, "MKI length")?;
                let v = decimal(v, "MKI value")?;
                match len {
                    1..=4 if v >= 1u64 << (8 * len) => return Err(Malformed("MKI value")),
                    1..=4 => {
                        mki = Some(Mki {
                            value: u32::try_from(v).map_err(|_| Malformed("MKI value"))?,
                            len: u8::try_from(len).map_err(|_| Malformed("MKI length"))?,
                        });
                    }
                    5..=128 => return Err(Unsupported("MKI longer than 4 bytes")),
                    _ => return Err(Malformed("MKI length")),
                }
            } else {
                if lifetime.is_some() || mki.is_some() {
                    return Err(Malformed("lifetime out of place"));
                }
                let n = match part.strip_prefix("2^") {
                    Some(exp) => {
                        let e = decimal(exp, "lifetime")?;
                        // §6.2.1: at most 2^48 packets for SRTP.
                        1u64.checked_shl(u32::try_from(e).unwrap_or(64))
                            .filter(|_| e <= 48)
                            .ok_or(Malformed("lifetime"))?
                    }
                    None => decimal(part, "lifetime")?,
                };
                if n == 0 {
                    return Err(Malformed("lifetime"));
                }
                lifetime = Some(n);
            }
        }
        for param in fields {
            let (name, v) = param.split_once('=').unwrap_or((param, ""));
            match name {
                "UNENCRYPTED_SRTP" => return Err(Unsupported("UNENCRYPTED_SRTP")),
                "UNAUTHENTICATED_SRTP" => return Err(Unsupported("UNAUTHENTICATED_SRTP")),
                "FEC_KEY" => return Err(Unsupported("FEC_KEY")),
                "KDR" if v != "0" => return Err(Unsupported("a key derivation rate")),
                // We send no RTCP; FEC order and the window size hint change nothing for us.
                _ => {}
            }
        }
        Ok(Self {
            tag,
            suite,
            key,
            lifetime,
            mki,
        })
    }

    /// A line for our own SDP: `tag`, `suite` and our `key`, no lifetime or MKI.
    pub fn ours(tag: u32, suite: Suite, key: MasterKey) -> Self {
        Self {
            tag,
            suite,
            key,
            lifetime: None,
            mki: None,
        }
    }

    /// Append the attribute's value (`<tag> <suite> inline:<key>[...]`) to `out`. This writes
    /// the key: only into an SDP body we send, never into a log.
    pub fn write_value(&self, out: &mut String) {
        use fmt::Write as _;
        let _ = write!(
            out,
            "{} {} inline:{}",
            self.tag,
            self.suite.name(),
            self.key.base64()
        );
        if let Some(l) = self.lifetime {
            if l.is_power_of_two() {
                let _ = write!(out, "|2^{}", l.trailing_zeros());
            } else {
                let _ = write!(out, "|{l}");
            }
        }
        if let Some(m) = self.mki {
            let _ = write!(out, "|{}:{}", m.value, m.len);
        }
    }
}

/// `text` (an SDP body, a SIP message) with every `inline:` key masked, for logs.
pub fn redact(text: &str) -> Cow<'_, str> {
    const INLINE: &str = "inline:";
    if !text.contains(INLINE) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(INLINE) {
        let (before, after) = rest.split_at(at + INLINE.len());
        out.push_str(before);
        out.push_str("REDACTED");
        let end = after
            .find(|c: char| c.is_ascii_whitespace() || c == '|' || c == ';')
            .unwrap_or(after.len());
        rest = &after[end..];
    }
    out.push_str(rest);
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4568 §6.2 / §9.2 examples.
    const RFC_80: &str =
        "1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^20|1:4";
    const RFC_32: &str =
        "2 AES_CM_128_HMAC_SHA1_32 inline:NzB4d1BINUAvLEw6UzF3WSJ+PSdFcGdUJShpX1Zj|2^20|1:32";

    fn key(seed: u8) -> MasterKey {
        MasterKey::generate(|b| {
            b.iter_mut()
                .enumerate()
                .for_each(|(i, x)| *x = seed ^ i as u8)
        })
    }

    #[test]
    fn parses_the_rfc_examples() {
        let a = CryptoAttr::parse(RFC_80).unwrap();
        assert_eq!((a.tag, a.suite), (1, Suite::AesCm128HmacSha1_80));
        assert_eq!(a.lifetime, Some(1 << 20));
        assert_eq!(a.mki, Some(Mki { value: 1, len: 4 }));
        assert_eq!(&a.key.key()[..4], b"YS__");
        assert_eq!(a.key.salt().len(), 14);
        // A 32-byte MKI is legal but more than we carry.
        assert_eq!(
            CryptoAttr::parse(RFC_32),
            Err(SdesError::Unsupported("MKI longer than 4 bytes"))
        );
        let b = CryptoAttr::parse(&RFC_32.replace("1:32", "7:1")).unwrap();
        assert_eq!((b.tag, b.suite), (2, Suite::AesCm128HmacSha1_32));
        assert_eq!(b.mki.unwrap().bytes(), ([0, 0, 0, 7], 1));
    }

    #[test]
    fn what_baresip_and_asterisk_send() {
        for v in [
            "1 AES_CM_128_HMAC_SHA1_80 inline:fK8bHd3kJu8dJv3O0gsYZxaH0vSgp3Sd3ElrJcuy",
            "1 AES_CM_128_HMAC_SHA1_80 inline:fK8bHd3kJu8dJv3O0gsYZxaH0vSgp3Sd3ElrJcuy|2^31",
            "3 AES_CM_128_HMAC_SHA1_32 inline:fK8bHd3kJu8dJv3O0gsYZxaH0vSgp3Sd3ElrJcuy KDR=0 WSH=64",
        ] {
            let a = CryptoAttr::parse(v).unwrap_or_else(|e| panic!("{v}: {e}"));
            assert_eq!(a.mki, None);
        }
    }

    #[test]
    fn round_trips_what_we_write() {
        for suite in Suite::ALL {
            let mut a = CryptoAttr::ours(42, suite, key(9));
            let mut s = String::new();
            a.write_value(&mut s);
            assert!(!s.contains('|'));
            assert_eq!(CryptoAttr::parse(&s).unwrap(), a);
            a.lifetime = Some(1 << 31);
            a.mki = Some(Mki { value: 300, len: 2 });
            s.clear();
            a.write_value(&mut s);
            assert!(s.ends_with("|2^31|300:2"), "{s}");
            assert_eq!(CryptoAttr::parse(&s).unwrap(), a);
        }
    }

    #[test]
    fn refuses_what_is_not_ours_or_not_valid() {
        use SdesError::*;
        let k = "inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz";
        for (v, want) in [
            (String::new(), Malformed("no tag")),
            ("1".into(), Malformed("no crypto suite")),
            (
                "1 AES_CM_128_HMAC_SHA1_80".into(),
                Malformed("no key parameters"),
            ),
            (format!("0 AES_CM_128_HMAC_SHA1_80 {k}"), Malformed("tag")),
            (
                format!("1000000000 AES_CM_128_HMAC_SHA1_80 {k}"),
                Malformed("tag"),
            ),
            (format!("x AES_CM_128_HMAC_SHA1_80 {k}"), Malformed("tag")),
            (format!("1 AES_256_CM_HMAC_SHA1_80 {k}"), UnknownSuite),
            (format!("1 aes_cm_128_hmac_sha1_80 {k}"), UnknownSuite),
            (format!("1 F8_128_HMAC_SHA1_80 {k}"), UnknownSuite),
            (
                "1 AES_CM_128_HMAC_SHA1_80 inline:x".into(),
                Malformed("key||salt is not 30 bytes of base64"),
            ),
            (
                "1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVzAAAA"
                    .into(),
                Malformed("key||salt is not 30 bytes of base64"),
            ),
            (
                "1 AES_CM_128_HMAC_SHA1_80 uri:http://x".into(),
                Unsupported("key method other than inline"),
            ),
            (
                format!("1 AES_CM_128_HMAC_SHA1_80 {k};{k}"),
                Unsupported("several master keys"),
            ),
            (
                format!("1 AES_CM_128_HMAC_SHA1_80 {k}|2^49"),
                Malformed("lifetime"),
            ),
            (
                format!("1 AES_CM_128_HMAC_SHA1_80 {k}|2^99999999999999999999"),
                Malformed("lifetime"),
            ),
            (
                format!("1 AES_CM_128_HMAC_SHA1_80 {k}|0"),
                Malformed("lifetime"),
            ),
            (
                format!("1 AES_CM_128_HMAC_SHA1_80 {k}|1:0"),
                Malformed("MKI length"),
            ),
            (
                format!("1 AES_CM_128_HMAC_SHA1_80 {k}|256:1"),
                Malformed("MKI value"),
            ),
            (
                format!("1 AES_CM_128_HMAC_SHA1_80 {k}|1:1|2:1"),
                Malformed("MKI given twice"),
            ),
            (
                format!("1 AES_CM_128_HMAC_SHA1_80 {k}|1:1|2^20"),
                Malformed("lifetime out of place"),
            ),
            (
                format!("1 AES_CM_128_HMAC_SHA1_80 {k} UNENCRYPTED_SRTP"),
                Unsupported("UNENCRYPTED_SRTP"),
            ),
            (
                format!("1 AES_CM_128_HMAC_SHA1_80 {k} UNAUTHENTICATED_SRTP"),
                Unsupported("UNAUTHENTICATED_SRTP"),
            ),
            (
                format!("1 AES_CM_128_HMAC_SHA1_80 {k} KDR=24"),
                Unsupported("a key derivation rate"),
            ),
            (
                format!("1 AES_CM_128_HMAC_SHA1_80 {k} FEC_KEY=inline:abc"),
                Unsupported("FEC_KEY"),
            ),
        ] {
            assert_eq!(CryptoAttr::parse(&v), Err(want), "{v:?}");
        }
        assert!(CryptoAttr::parse(&"1 ".repeat(300)).is_err());
    }

    #[test]
    fn keys_stay_out_of_debug_and_redacted_text() {
        let a = CryptoAttr::ours(1, Suite::AesCm128HmacSha1_80, key(3));
        let mut v = String::new();
        a.write_value(&mut v);
        let b64 = v.rsplit(':').next().unwrap().to_owned();
        assert!(!format!("{a:?}").contains(&b64));
        assert!(format!("{a:?}").contains("REDACTED"));
        let sdp = format!(
            "m=audio 4000 RTP/SAVP 0\r\na=crypto:{v}|2^31\r\na=crypto:2 X inline:{b64};inline:{b64}\r\n"
        );
        let r = redact(&sdp);
        assert!(!r.contains(&b64), "{r}");
        assert_eq!(r.matches("inline:REDACTED").count(), 3);
        assert!(r.contains("|2^31\r\n"));
        assert!(matches!(redact("no keys here"), Cow::Borrowed(_)));
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(s in "\\PC{0,200}") {
            let _ = CryptoAttr::parse(&s);
            let _ = redact(&s);
        }

        #[test]
        fn crypto_like_never_panics(
            tag in "[0-9]{0,11}",
            suite in "AES_CM_128_HMAC_SHA1_(80|32)|[A-Z_0-9]{0,8}",
            key in "[A-Za-z0-9+/=]{0,44}",
            tail in "(\\|[0-9^:]{0,12}){0,3}( [A-Z_]{1,20}(=[0-9]{0,3})?){0,2}",
        ) {
            let v = format!("{tag} {suite} inline:{key}{tail}");
            if let Ok(a) = CryptoAttr::parse(&v) {
                let mut again = String::new();
                a.write_value(&mut again);
                proptest::prop_assert_eq!(CryptoAttr::parse(&again).unwrap(), a);
            }
        }
    }
}
