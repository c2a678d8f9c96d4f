//! ITU-T G.711 µ-law (PCMU) and A-law (PCMA) companding, RFC 3551 §4.5.14 payload types 0 and 8.
//!
//! PURE. The arithmetic follows the ITU-T G.191 software tools reference (`g711.c`:
//! `ulaw_compress`/`ulaw_expand`, `alaw_compress`/`alaw_expand`) on 16-bit linear samples: µ-law
//! uses the 14 most significant bits, A-law the 13 most significant bits, and negative values are
//! taken in one's complement (so `-1` encodes like `0`). Decoding and transcoding go through
//! 256-entry tables built at compile time; encoding is a handful of shifts.

/// Build a 256-entry table by applying a `const fn` to every byte (function pointers cannot be
/// called in const context, hence a macro).
macro_rules! table {
    ($ty:ty, |$c:ident| $e:expr) => {{
        let mut t: [$ty; 256] = [0; 256];
        let mut i = 0;
        while i < 256 {
            let $c = i as u8;
            t[i] = $e;
            i += 1;
        }
        t
    }};
}

/// µ-law byte → linear, built at compile time.
static ULAW_DECODE: [i16; 256] = table!(i16, |c| ulaw_expand(c));
/// A-law byte → linear, built at compile time.
static ALAW_DECODE: [i16; 256] = table!(i16, |c| alaw_expand(c));
/// µ-law byte → A-law byte (decode, then re-encode), for bridging a PCMU leg to a PCMA leg.
static ULAW_TO_ALAW: [u8; 256] = table!(u8, |c| alaw_compress(ulaw_expand(c)));
/// A-law byte → µ-law byte.
static ALAW_TO_ULAW: [u8; 256] = table!(u8, |c| ulaw_compress(alaw_expand(c)));

/// G.191 `ulaw_compress` for one sample.
const fn ulaw_compress(x: i16) -> u8 {
    // One's complement magnitude on 14 bits, plus the 33 bias of the µ-law segments.
    let mut absno: i32 = if x < 0 {
        ((!x) as i32 >> 2) + 33
    } else {
        (x as i32 >> 2) + 33
    };
    if absno > 0x1FFF {
        absno = 0x1FFF;
    }
    let mut i = absno >> 6;
    let mut segno: i32 = 1;
    while i != 0 {
        segno += 1;
        i >>= 1;
    }
    let high_nibble = 0x0008 - segno;
    let low_nibble = 0x000F - ((absno >> segno) & 0x000F);
    let mut out = (high_nibble << 4) | low_nibble;
    if x >= 0 {
        out |= 0x0080;
    }
    out as u8
}

/// G.191 `ulaw_expand` for one code.
const fn ulaw_expand(code: u8) -> i16 {
    let sign: i32 = if code < 0x80 { -1 } else { 1 };
    let inv = !code as i32;
    let exponent = (inv >> 4) & 0x07;
    let segment = exponent + 1;
    let mantissa = inv & 0x0F;
    let step = 4 << segment;
    (sign * ((0x0080 << exponent) + step * mantissa + step / 2 - 4 * 33)) as i16
}

/// G.191 `alaw_compress` for one sample.
const fn alaw_compress(x: i16) -> u8 {
    // One's complement magnitude on 12 bits (13 with the sign).
    let mut ix: i32 = if x < 0 {
        (!x) as i32 >> 4
    } else {
        x as i32 >> 4
    };
    if ix > 15 {
        let mut iexp = 1;
        while ix > 16 + 15 {
            ix >>= 1;
            iexp += 1;
        }
        ix -= 16;
        ix += iexp << 4;
    }
    if x >= 0 {
        ix |= 0x0080;
    }
    (ix ^ 0x0055) as u8
}

/// G.191 `alaw_expand` for one code.
const fn alaw_expand(code: u8) -> i16 {
    let ix = ((code ^ 0x55) & 0x7F) as i32;
    let iexp = ix >> 4;
    let mut mant = ix & 0x0F;
    if iexp > 0 {
        mant += 16;
    }
    mant = (mant << 4) + 0x0008;
    if iexp > 1 {
        mant <<= iexp - 1;
    }
    (if code > 127 { mant } else { -mant }) as i16
}

/// Encode one linear sample as µ-law.
#[inline]
pub fn ulaw_encode(sample: i16) -> u8 {
    ulaw_compress(sample)
}

/// Decode one µ-law byte to linear.
#[inline]
pub fn ulaw_decode(code: u8) -> i16 {
    ULAW_DECODE[code as usize]
}

/// Encode one linear sample as A-law.
#[inline]
pub fn alaw_encode(sample: i16) -> u8 {
    alaw_compress(sample)
}

/// Decode one A-law byte to linear.
#[inline]
pub fn alaw_decode(code: u8) -> i16 {
    ALAW_DECODE[code as usize]
}

/// Transcode a µ-law byte to A-law (table lookup); used by the bridge between legs whose
/// codecs differ.
#[inline]
pub fn ulaw_to_alaw(code: u8) -> u8 {
    ULAW_TO_ALAW[code as usize]
}

/// Transcode an A-law byte to µ-law (table lookup).
#[inline]
pub fn alaw_to_ulaw(code: u8) -> u8 {
    ALAW_TO_ULAW[code as usize]
}

/// Encode `pcm` into `out` as µ-law; converts `min(pcm.len(), out.len())` samples.
pub fn ulaw_encode_slice(pcm: &[i16], out: &mut [u8]) {
    for (o, &s) in out.iter_mut().zip(pcm) {
        *o = ulaw_encode(s);
    }
}

/// Decode µ-law `codes` into `out`; converts `min(codes.len(), out.len())` samples.
pub fn ulaw_decode_slice(codes: &[u8], out: &mut [i16]) {
    for (o, &c) in out.iter_mut().zip(codes) {
        *o = ulaw_decode(c);
    }
}

/// Encode `pcm` into `out` as A-law; converts `min(pcm.len(), out.len())` samples.
pub fn alaw_encode_slice(pcm: &[i16], out: &mut [u8]) {
    for (o, &s) in out.iter_mut().zip(pcm) {
        *o = alaw_encode(s);
    }
}

/// Decode A-law `codes` into `out`; converts `min(codes.len(), out.len())` samples.
pub fn alaw_decode_slice(codes: &[u8], out: &mut [i16]) {
    for (o, &c) in out.iter_mut().zip(codes) {
        *o = alaw_decode(c);
    }
}

/// Transcode a buffer of µ-law bytes to A-law in place.
pub fn ulaw_to_alaw_in_place(buf: &mut [u8]) {
    for b in buf {
        *b = ulaw_to_alaw(*b);
    }
}

/// Transcode a buffer of A-law bytes to µ-law in place.
pub fn alaw_to_ulaw_in_place(buf: &mut [u8]) {
    for b in buf {
        *b = alaw_to_ulaw(*b);
    }
}

/// The two G.711 codecs, as negotiated in SDP (RFC 3551 static payload types).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// µ-law, payload type 0.
    Pcmu,
    /// A-law, payload type 8.
    Pcma,
}

impl Codec {
    /// The static RTP payload type (RFC 3551 table 4): 0 for PCMU, 8 for PCMA.
    /// The SDP encoding name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Pcmu => "PCMU",
            Self::Pcma => "PCMA",
        }
    }

    pub fn payload_type(self) -> u8 {
        match self {
            Self::Pcmu => 0,
            Self::Pcma => 8,
        }
    }

    /// The codec for a static payload type, if it is one of ours.
    pub fn from_payload_type(pt: u8) -> Option<Self> {
        match pt {
            0 => Some(Self::Pcmu),
            8 => Some(Self::Pcma),
            _ => None,
        }
    }

    /// The byte that encodes linear 0: fill idle frames with it so the stream never gaps.
    pub fn silence_byte(self) -> u8 {
        match self {
            Self::Pcmu => 0xFF,
            Self::Pcma => 0xD5,
        }
    }

    /// Encode `pcm` into `out`; converts `min(pcm.len(), out.len())` samples.
    pub fn encode(self, pcm: &[i16], out: &mut [u8]) {
        match self {
            Self::Pcmu => ulaw_encode_slice(pcm, out),
            Self::Pcma => alaw_encode_slice(pcm, out),
        }
    }

    /// Decode `codes` into `out`; converts `min(codes.len(), out.len())` samples.
    pub fn decode(self, codes: &[u8], out: &mut [i16]) {
        match self {
            Self::Pcmu => ulaw_decode_slice(codes, out),
            Self::Pcma => alaw_decode_slice(codes, out),
        }
    }

    /// Decode one byte.
    #[inline]
    pub fn decode_sample(self, code: u8) -> i16 {
        match self {
            Self::Pcmu => ulaw_decode(code),
            Self::Pcma => alaw_decode(code),
        }
    }
}

/// Config files and SDP name codecs by their encoding name.
impl std::str::FromStr for Codec {
    type Err = String;

    /// Encoding names are case-insensitive (RFC 4566 §6).
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_uppercase().as_str() {
            "PCMU" => Ok(Self::Pcmu),
            "PCMA" => Ok(Self::Pcma),
            _ => Err(format!(
                "unsupported codec {s:?}: Hammond speaks PCMU and PCMA"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codecs_parse_by_encoding_name() {
        assert_eq!("pcmu".parse::<Codec>(), Ok(Codec::Pcmu));
        assert_eq!(Codec::Pcma.payload_type(), 8);
        assert!("G729".parse::<Codec>().is_err());
    }

    #[test]
    fn ulaw_reference_points() {
        // G.191 / G.711 table 2a end points.
        assert_eq!(ulaw_decode(0x00), -32124);
        assert_eq!(ulaw_decode(0x80), 32124);
        assert_eq!(ulaw_decode(0x7F), 0);
        assert_eq!(ulaw_decode(0xFF), 0);
        assert_eq!(ulaw_decode(0xFE), 8);
        assert_eq!(ulaw_decode(0x7E), -8);
        assert_eq!(ulaw_decode(0xF0), 120, "segment 0, mantissa 15");
        assert_eq!(ulaw_encode(0), 0xFF);
        assert_eq!(
            ulaw_encode(-1),
            0x7F,
            "one's complement: -1 is the negative zero"
        );
        assert_eq!(ulaw_encode(32767), 0x80);
        assert_eq!(ulaw_encode(-32768), 0x00);
        assert_eq!(ulaw_encode(32124), 0x80);
        assert_eq!(ulaw_encode(-32124), 0x00);
    }

    #[test]
    fn alaw_reference_points() {
        assert_eq!(alaw_decode(0xD5), 8);
        assert_eq!(alaw_decode(0x55), -8);
        assert_eq!(alaw_decode(0xAA), 32256);
        assert_eq!(alaw_decode(0x2A), -32256);
        assert_eq!(alaw_encode(0), 0xD5);
        assert_eq!(alaw_encode(-1), 0x55);
        assert_eq!(alaw_encode(32767), 0xAA);
        assert_eq!(alaw_encode(-32768), 0x2A);
    }

    #[test]
    fn ulaw_decode_encode_round_trips_all_codes() {
        for code in 0..=255u8 {
            let expect = if code == 0x7F { 0xFF } else { code }; // -0 decodes to 0, encodes as +0
            assert_eq!(ulaw_encode(ulaw_decode(code)), expect, "code {code:#04x}");
        }
    }

    #[test]
    fn alaw_decode_encode_round_trips_all_codes() {
        for code in 0..=255u8 {
            assert_eq!(alaw_encode(alaw_decode(code)), code, "code {code:#04x}");
        }
    }

    #[test]
    fn decoding_is_monotonic_and_odd() {
        // Sorting codes by decoded value must give a strictly increasing sequence in each half.
        for law in [Codec::Pcmu, Codec::Pcma] {
            let mut values: Vec<i16> = (0..=255u8).map(|c| law.decode_sample(c)).collect();
            values.sort_unstable();
            values.dedup();
            let expected = if law == Codec::Pcmu { 255 } else { 256 }; // µ-law has ±0
            assert_eq!(values.len(), expected, "{law:?}");
            for c in 0..=127u8 {
                assert_eq!(
                    law.decode_sample(c),
                    -law.decode_sample(c | 0x80),
                    "{law:?} {c:#04x}"
                );
            }
        }
    }

    #[test]
    fn encoding_is_within_half_a_step_over_the_whole_range() {
        for x in i16::MIN..=i16::MAX {
            for law in [Codec::Pcmu, Codec::Pcma] {
                let mut out = [0u8];
                law.encode(&[x], &mut out);
                let y = law.decode_sample(out[0]);
                let err = (i32::from(x) - i32::from(y)).abs();
                // Largest step: µ-law 1024, A-law 1024; clipping beyond the top level.
                let clip = if law == Codec::Pcmu { 32124 } else { 32256 };
                let over = (i32::from(x).abs() - clip).max(0);
                assert!(err <= 512 + over + 4, "{law:?} x={x} y={y}");
            }
        }
    }

    #[test]
    fn transcoding_tables_match_linear_path() {
        for code in 0..=255u8 {
            assert_eq!(ulaw_to_alaw(code), alaw_encode(ulaw_decode(code)));
            assert_eq!(alaw_to_ulaw(code), ulaw_encode(alaw_decode(code)));
        }
        assert_eq!(ulaw_to_alaw(0xFF), 0xD5);
        // A-law has no zero level: its smallest level +8 is exactly µ-law's 0xFE.
        assert_eq!(alaw_to_ulaw(0xD5), 0xFE);
        let mut buf = [0xFEu8, 0x80, 0x00];
        ulaw_to_alaw_in_place(&mut buf);
        assert_eq!(buf, [0xD5, 0xAA, 0x2A]);
        alaw_to_ulaw_in_place(&mut buf);
        assert_eq!(buf, [0xFE, 0x80, 0x00]);
    }

    #[test]
    fn codec_metadata() {
        assert_eq!(Codec::Pcmu.payload_type(), 0);
        assert_eq!(Codec::Pcma.payload_type(), 8);
        assert_eq!(Codec::Pcmu.silence_byte(), 0xFF);
        assert_eq!(Codec::Pcma.silence_byte(), 0xD5);
        assert_eq!(Codec::from_payload_type(8), Some(Codec::Pcma));
        assert_eq!(Codec::from_payload_type(18), None);
        let pcm = [0i16, 1000, -1000, 32000];
        for law in [Codec::Pcmu, Codec::Pcma] {
            let mut enc = [0u8; 4];
            let mut dec = [0i16; 4];
            law.encode(&pcm, &mut enc);
            law.decode(&enc, &mut dec);
            assert_eq!(enc[0], law.silence_byte());
            for (a, b) in pcm.iter().zip(dec) {
                assert!((a - b).abs() <= 512, "{law:?} {a} {b}");
            }
        }
    }
}
