//! Identifiers (tags, branches, Call-IDs, SSRCs, RTP sequence/timestamp bases) from one seedable
//! generator, so tests can replay a run exactly. Not cryptographic: these values only need to be
//! unpredictable enough to avoid collisions and naive spoofing, as RFC 3261 §19.3 asks of tags.

use std::hash::{BuildHasher, Hasher};

/// SplitMix64: tiny, fast, and good enough for protocol identifiers.
#[derive(Debug, Clone)]
pub struct IdGen {
    state: u64,
}

impl IdGen {
    /// A generator whose sequence is fixed by `seed` (tests).
    pub fn seeded(seed: u64) -> Self {
        Self { state: seed }
    }

    /// A generator seeded from the process's random hasher keys (production).
    pub fn from_entropy() -> Self {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(u64::from(std::process::id()));
        Self::seeded(h.finish())
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// The next 32 random bits (SSRC, RTP timestamp base).
    pub fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    /// A token of `len` lowercase alphanumerics (tags, Call-IDs).
    pub fn token(&mut self, len: usize) -> String {
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        (0..len)
            .map(|_| ALPHABET[(self.next_u64() % ALPHABET.len() as u64) as usize] as char)
            .collect()
    }

    /// A Via branch with the RFC 3261 magic cookie (§8.1.1.7).
    pub fn branch(&mut self) -> String {
        format!("z9hG4bK{}", self.token(16))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_generators_repeat() {
        let (mut a, mut b) = (IdGen::seeded(7), IdGen::seeded(7));
        assert_eq!(a.token(10), b.token(10));
        assert!(a.branch().starts_with("z9hG4bK"));
    }
}
