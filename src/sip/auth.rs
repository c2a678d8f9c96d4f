//! HTTP Digest authentication for our outbound requests (RFC 3261 §22.2, RFC 7616): answer a
//! trunk's 401 (WWW-Authenticate) or 407 (Proxy-Authenticate) challenge with MD5 or SHA-256,
//! `qop=auth` when offered. PURE: the cnonce comes from the caller (seeded `IdGen`).

use std::fmt::Write as _;

use md5::Md5;
use sha2::{Digest, Sha256};

/// The digest algorithms we answer. `-sess` variants are rare on SIP trunks and not offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Md5,
    Sha256,
}

impl Algorithm {
    fn name(self) -> &'static str {
        match self {
            Self::Md5 => "MD5",
            Self::Sha256 => "SHA-256",
        }
    }

    fn hash(self, input: &str) -> String {
        let bytes: Vec<u8> = match self {
            Self::Md5 => Md5::digest(input.as_bytes()).to_vec(),
            Self::Sha256 => Sha256::digest(input.as_bytes()).to_vec(),
        };
        let mut hex = String::with_capacity(bytes.len() * 2);
        for b in bytes {
            let _ = write!(hex, "{b:02x}");
        }
        hex
    }
}

/// One `Digest …` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub realm: String,
    pub nonce: String,
    pub opaque: Option<String>,
    pub algorithm: Algorithm,
    /// Whether `qop=auth` was offered (then we use it, RFC 7616 §3.4).
    pub qop_auth: bool,
}

/// Parse a WWW-Authenticate / Proxy-Authenticate value. `None` for other schemes, unknown
/// algorithms, or a challenge without realm and nonce.
pub fn parse_challenge(value: &str) -> Option<Challenge> {
    let rest = value.trim();
    let (scheme, params) = rest.split_once(char::is_whitespace)?;
    if !scheme.eq_ignore_ascii_case("digest") {
        return None;
    }
    let (mut realm, mut nonce, mut opaque, mut algorithm, mut qop_auth) =
        (None, None, None, Algorithm::Md5, false);
    for (k, v) in auth_params(params) {
        match k.to_ascii_lowercase().as_str() {
            "realm" => realm = Some(v),
            "nonce" => nonce = Some(v),
            "opaque" => opaque = Some(v),
            "algorithm" => {
                algorithm = match v.to_ascii_uppercase().as_str() {
                    "MD5" => Algorithm::Md5,
                    "SHA-256" => Algorithm::Sha256,
                    _ => return None,
                }
            }
            "qop" => qop_auth = v.split(',').any(|q| q.trim().eq_ignore_ascii_case("auth")),
            _ => {}
        }
    }
    Some(Challenge {
        realm: realm?,
        nonce: nonce?,
        opaque,
        algorithm,
        qop_auth,
    })
}

/// Split `k=v, k="v, with comma"` pairs, unquoting values.
fn auth_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        let Some((k, after)) = rest.split_once('=') else {
            break;
        };
        let after = after.trim_start();
        let (v, next) = if let Some(q) = after.strip_prefix('"') {
            let mut val = String::new();
            let mut chars = q.char_indices();
            let mut end = q.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, e)) = chars.next() {
                            val.push(e);
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => val.push(c),
                }
            }
            (val, &q[end.min(q.len())..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim().to_owned(), &after[end..])
        };
        out.push((k.trim().to_owned(), v));
        rest = next.trim_start().trim_start_matches(',').trim_start();
    }
    out
}

/// The credentials line to send back (`Authorization` for 401, `Proxy-Authorization` for 407).
pub struct Credentials<'a> {
    pub username: &'a str,
    pub password: &'a str,
    pub method: &'a str,
    pub uri: &'a str,
    /// Fresh per request (RFC 7616 §3.4: client nonce).
    pub cnonce: &'a str,
    /// How many times this nonce has been used, from 1.
    pub nc: u32,
}

/// Compute the `Digest …` header value answering `ch` (RFC 7616 §3.4.1).
pub fn authorization(ch: &Challenge, c: &Credentials<'_>) -> String {
    let alg = ch.algorithm;
    let ha1 = alg.hash(&format!("{}:{}:{}", c.username, ch.realm, c.password));
    let ha2 = alg.hash(&format!("{}:{}", c.method, c.uri));
    let nc = format!("{:08x}", c.nc);
    let response = if ch.qop_auth {
        alg.hash(&format!("{ha1}:{}:{nc}:{}:auth:{ha2}", ch.nonce, c.cnonce))
    } else {
        alg.hash(&format!("{ha1}:{}:{ha2}", ch.nonce))
    };
    let mut out = format!(
        "Digest username=\"{}\", realm=\"{}\", nonce=\"{}\", uri=\"{}\", response=\"{response}\", algorithm={}",
        c.username,
        ch.realm,
        ch.nonce,
        c.uri,
        alg.name()
    );
    if ch.qop_auth {
        let _ = write!(out, ", qop=auth, nc={nc}, cnonce=\"{}\"", c.cnonce);
    }
    if let Some(o) = &ch.opaque {
        let _ = write!(out, ", opaque=\"{o}\"");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7616 §3.9.1: the same request answered with MD5 and with SHA-256.
    fn rfc7616(alg: &str) -> String {
        let ch = parse_challenge(&format!(
            "Digest realm=\"http-auth@example.org\", qop=\"auth, auth-int\", algorithm={alg}, \
             nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\", \
             opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\""
        ))
        .expect("parses");
        let auth = authorization(
            &ch,
            &Credentials {
                username: "Mufasa",
                password: "Circle of Life",
                method: "GET",
                uri: "/dir/index.html",
                cnonce: "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
                nc: 1,
            },
        );
        let start = auth.find("response=\"").unwrap() + 10;
        auth[start..start + auth[start..].find('"').unwrap()].to_owned()
    }

    #[test]
    fn rfc7616_md5_example() {
        assert_eq!(rfc7616("MD5"), "8ca523f5e9506fed4657c9700eebdbec");
    }

    #[test]
    fn rfc7616_sha256_example() {
        assert_eq!(
            rfc7616("SHA-256"),
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
    }

    #[test]
    fn rfc2617_style_without_qop() {
        // RFC 2069 compatibility: response = H(HA1:nonce:HA2).
        let ch = parse_challenge("Digest realm=\"asterisk\", nonce=\"abc\"").unwrap();
        let a = authorization(
            &ch,
            &Credentials {
                username: "u",
                password: "p",
                method: "INVITE",
                uri: "sip:1@h",
                cnonce: "x",
                nc: 1,
            },
        );
        let ha1 = Algorithm::Md5.hash("u:asterisk:p");
        let ha2 = Algorithm::Md5.hash("INVITE:sip:1@h");
        assert!(a.contains(&Algorithm::Md5.hash(&format!("{ha1}:abc:{ha2}"))));
        assert!(!a.contains("qop"));
    }

    #[test]
    fn other_schemes_and_algorithms_are_refused() {
        assert!(parse_challenge("Basic realm=\"x\"").is_none());
        assert!(
            parse_challenge("Digest realm=\"x\", nonce=\"n\", algorithm=SHA-512-256").is_none()
        );
        assert!(parse_challenge("Digest realm=\"x\"").is_none());
    }
}
