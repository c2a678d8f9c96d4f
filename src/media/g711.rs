//! G.711 μ-law / A-law (ITU-T G.711). Minimal version for the bridge; the full module
//! (written in another worktree) replaces it at merge.

/// A G.711 codec as negotiated in SDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// μ-law, static payload type 0.
    Pcmu,
    /// A-law, static payload type 8.
    Pcma,
}

impl Codec {
    /// The static RTP payload type (RFC 3551 §6).
    pub fn payload_type(self) -> u8 {
        match self {
            Self::Pcmu => 0,
            Self::Pcma => 8,
        }
    }
}

const BIAS: i32 = 0x84;
const CLIP: i32 = 32635;

fn ulaw_decode(u: u8) -> i16 {
    let u = !u;
    let t = ((i32::from(u & 0x0F) << 3) + BIAS) << ((u & 0x70) >> 4);
    let v = if u & 0x80 != 0 { BIAS - t } else { t - BIAS };
    v as i16
}

fn ulaw_encode(pcm: i16) -> u8 {
    let mut s = i32::from(pcm);
    let sign = if s < 0 {
        s = -s;
        0x80
    } else {
        0
    };
    s = s.min(CLIP) + BIAS;
    let exp = (7 - ((s as u32) << 17).leading_zeros().min(7)) as i32;
    let mant = (s >> (exp + 3)) & 0x0F;
    !(sign | (exp << 4) as u8 | mant as u8)
}

fn alaw_decode(a: u8) -> i16 {
    let a = a ^ 0x55;
    let exp = i32::from((a & 0x70) >> 4);
    let mant = i32::from(a & 0x0F);
    let mag = if exp == 0 {
        (mant << 4) + 8
    } else {
        ((mant << 4) + 0x108) << (exp - 1)
    };
    (if a & 0x80 != 0 { mag } else { -mag }) as i16
}

fn alaw_encode(pcm: i16) -> u8 {
    let mut s = i32::from(pcm);
    let sign = if s >= 0 {
        0x80
    } else {
        s = -s - 1;
        0
    };
    s = s.min(0x7FFF);
    let out = if s < 256 {
        (s >> 4) as u8
    } else {
        let exp = (31 - (s as u32).leading_zeros()) as i32 - 7; // 1..=7
        let mant = (s >> (exp + 3)) & 0x0F;
        ((exp << 4) as u8) | mant as u8
    };
    (sign | out) ^ 0x55
}

/// Transcode one μ-law byte to A-law (decode to linear, re-encode).
pub fn ulaw_to_alaw(u: u8) -> u8 {
    alaw_encode(ulaw_decode(u))
}

/// Transcode one A-law byte to μ-law (decode to linear, re-encode).
pub fn alaw_to_ulaw(a: u8) -> u8 {
    ulaw_encode(alaw_decode(a))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_maps_to_silence() {
        assert_eq!(ulaw_decode(0xFF), 0);
        assert!(ulaw_decode(alaw_to_ulaw(0xD5)).abs() <= 8);
        assert_eq!(ulaw_to_alaw(0xFF), 0xD5);
    }

    #[test]
    fn round_trip_is_close() {
        for u in 0..=255u8 {
            let back = ulaw_decode(alaw_to_ulaw(ulaw_to_alaw(u)));
            let orig = i32::from(ulaw_decode(u));
            let err = (i32::from(back) - orig).abs();
            assert!(err <= orig.abs() / 8 + 16, "u={u:#x} {orig} -> {back}");
        }
        for pcm in [-32000i16, -1000, -10, 0, 10, 1000, 32000] {
            let a = i32::from(alaw_decode(alaw_encode(pcm)));
            assert!(
                (a - i32::from(pcm)).abs() <= i32::from(pcm).abs() / 16 + 16,
                "{pcm} -> {a}"
            );
            let u = i32::from(ulaw_decode(ulaw_encode(pcm)));
            assert!(
                (u - i32::from(pcm)).abs() <= i32::from(pcm).abs() / 16 + 16,
                "{pcm} -> {u}"
            );
        }
    }
}
