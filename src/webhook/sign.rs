//! Standard Webhooks signatures (<https://www.standardwebhooks.com>, "Signature scheme"): the
//! signed content is `{webhook-id}.{webhook-timestamp}.{body}`, signed with HMAC-SHA256 under
//! the secret's bytes (the base64 after `whsec_`), and sent as `webhook-signature: v1,<base64>`
//! (several space-separated signatures may be sent while a secret is rotated).
//!
//! No clock (the timestamp comes in), no I/O.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// A webhook signing key: the secret's decoded bytes. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKey(Vec<u8>);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(<redacted>)")
    }
}

impl SigningKey {
    /// Parses `whsec_<base64>` (24 to 64 bytes once decoded, as the spec asks).
    pub fn parse(secret: &str) -> Result<Self, String> {
        crate::config::values::webhook_key(secret).map(Self)
    }

    /// The `webhook-signature` value for a message: `v1,<base64 HMAC-SHA256>`.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        format!("v1,{}", STANDARD.encode(self.mac(id, timestamp, body)))
    }

    /// Whether `header` (space-separated `v1,<sig>` entries) holds a valid signature of the
    /// message. Constant time per candidate.
    pub fn verify(&self, header: &str, id: &str, timestamp: i64, body: &[u8]) -> bool {
        header.split(' ').any(|entry| {
            let Some(sig) = entry.strip_prefix("v1,") else {
                return false;
            };
            let Ok(sig) = STANDARD.decode(sig) else {
                return false;
            };
            let mut mac = self.hmac();
            feed(&mut mac, id, timestamp, body);
            mac.verify_slice(&sig).is_ok()
        })
    }

    fn mac(&self, id: &str, timestamp: i64, body: &[u8]) -> Vec<u8> {
        let mut mac = self.hmac();
        feed(&mut mac, id, timestamp, body);
        mac.finalize().into_bytes().to_vec()
    }

    fn hmac(&self) -> Hmac<Sha256> {
        // HMAC takes a key of any length.
        Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC accepts any key length")
    }
}

fn feed(mac: &mut Hmac<Sha256>, id: &str, timestamp: i64, body: &[u8]) {
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Standard Webhooks reference vector (the spec's libraries test with it).
    #[test]
    fn signs_the_reference_vector() {
        let key = SigningKey::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
        let ts = 1_614_265_330;
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            key.sign(id, ts, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        assert!(key.verify(
            "v1,bogus v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
            id,
            ts,
            body
        ));
        assert!(!key.verify(&key.sign(id, ts + 1, body), id, ts, body));
        assert!(!key.verify(&key.sign(id, ts, b"{}"), id, ts, body));
    }

    #[test]
    fn secrets_must_be_whsec_base64_of_24_to_64_bytes() {
        assert!(SigningKey::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_err());
        assert!(SigningKey::parse("whsec_!!!").is_err());
        assert!(SigningKey::parse("whsec_c2hvcnQ=").is_err());
        let shown = format!(
            "{:?}",
            SigningKey::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
        );
        assert!(!shown.contains("MfKQ"), "{shown}");
    }
}
