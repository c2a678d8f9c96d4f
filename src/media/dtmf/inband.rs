//! In-band DTMF detection (ITU-T Q.23 tone pairs, Q.24 receiver limits) from 8 kHz linear PCM,
//! for callers whose gateway sends key presses as audio instead of RFC 4733 events.
//!
//! PURE, no allocation. Feed it each received 20 ms frame after G.711 decoding with
//! [`Detector::push_frame`]; it returns a digit once, when the key press starts.
//!
//! How: Goertzel filters at the 8 DTMF frequencies (plus the second harmonics of the high group)
//! over non-overlapping blocks of [`BLOCK`] = 102 samples (12.75 ms; the same block as spandsp:
//! neighbouring DTMF frequencies fall near each other's spectral nulls). A block holds a digit
//! when all of these pass:
//! - **level**: each tone at least [`MIN_LEVEL_DBM0`] dBm0;
//! - **twist**: the low-group (row) tone at most 8 dB louder than the high-group (column) tone
//!   ("normal" twist, as line loss attenuates high frequencies) and at most 4 dB quieter
//!   ("reverse" twist);
//! - **other-tone rejection**: each tone at least 6 dB above every other tone of its group, and
//!   the two tones together carry at least [`MIN_TONE_FRACTION`] of the block's total energy, so
//!   speech, music and noise (energy spread over many frequencies) do not pass;
//! - **second harmonic**: the column tone's second harmonic is at least 10 dB below it (voiced
//!   speech has strong harmonics, a DTMF tone has none).
//!
//! A digit is reported when two consecutive blocks agree (≥ 25.5 ms of tone: every press of
//! ≥ 40 ms is detected, 15 ms blips are not), and the same digit is reported again only after
//! two blocks (≥ 25.5 ms) without it, so a 40 ms inter-digit pause separates repeats while a
//! one-block dropout inside a long press does not double it.
//!
//! Cost: the samples of a block are buffered and analysed when it is complete. A block whose
//! energy is below what two tones at [`MIN_LEVEL_DBM0`] need (see [`TONE_GAIN_BOUND`]) cannot
//! pass the level test and is "no digit" without running a filter: silence and line noise cost
//! only an integer sum of squares. Other blocks run all 12 resonators side by side in one pass
//! (arrays the compiler vectorises). That pass is bound by the latency of each resonator's
//! recurrence, not by arithmetic, so the 4 harmonic lanes cost nothing measurable, while a
//! separate pass for the best column's harmonic would double the cost of a tone block. Each
//! resonator does the same f32 operations in the same order as a scalar one, so every verdict is
//! bit-for-bit what the straightforward detector gives.
//!
//! Level reference: G.711 defines the µ-law full-scale sine as +3.17 dBm0, so a 0 dBm0 sine has
//! peak amplitude 32768 · 10^(−3.17/20) ≈ 22 750 in 16-bit linear PCM (the µ-law digital
//! milliwatt sequence decodes to a sine of ≈ 22 600 peak, consistent with this).

/// Samples per analysis block.
pub const BLOCK: usize = 102;
/// Lowest accepted level per tone, in dBm0.
pub const MIN_LEVEL_DBM0: f32 = -32.0;
/// Minimum share of the block's energy that the two tones must carry.
pub const MIN_TONE_FRACTION: f32 = 0.75;

/// Peak amplitude of a 0 dBm0 sine, in 16-bit linear PCM (see the module docs).
pub const DBM0_PEAK: f32 = 22_753.0;

/// Upper bound on (row power + column power) / block energy for any block and any row/column
/// pair, with the powers scaled (× 2/N) as the level test uses them. The two powers are
/// (2/N)·xᵀ(Σ vvᵀ)x over the block's cosine and sine vectors v of both frequencies, so the ratio
/// is at most (2/N)·λmax of their 4×4 Gram matrix; Gershgorin bounds that by 1.1333 for the
/// worst pair (941 + 1209 Hz), a unit test recomputes it. Since a digit needs both powers at
/// the minimum level, a block with energy below 2·min_power / bound holds none.
pub const TONE_GAIN_BOUND: f32 = 1.14;
/// Safety factor under the bound for the f32 rounding of the filters (1 dB; rounding is
/// orders of magnitude smaller).
const GATE_MARGIN_DB: f32 = 1.0;

const SAMPLE_RATE: f32 = 8000.0;
const ROWS: [f32; 4] = [697.0, 770.0, 852.0, 941.0];
const COLS: [f32; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
const KEYS: [[char; 4]; 4] = [
    ['1', '2', '3', 'A'],
    ['4', '5', '6', 'B'],
    ['7', '8', '9', 'C'],
    ['*', '0', '#', 'D'],
];
/// Blocks of agreement needed to report a digit.
const PRESENT_BLOCKS: u32 = 2;
/// Blocks of absence needed before the same digit may be reported again.
const GAP_BLOCKS: u32 = 2;

/// dB → power ratio.
fn db(x: f32) -> f32 {
    10f32.powf(x / 10.0)
}

/// Goertzel coefficient 2·cos(2πf/fs) of a resonator at `freq`.
fn coeff(freq: f32) -> f32 {
    2.0 * (2.0 * std::f32::consts::PI * freq / SAMPLE_RATE).cos()
}

/// Sample → the [-1, 1) scale the powers and energies use.
#[inline]
fn unit(s: i16) -> f32 {
    f32::from(s) / 32768.0
}

/// Power of a resonator's final state (`s1` = last, `s2` = one before), scaled (× 2/N) so that
/// a sine of amplitude `a` yields its energy in the block, `a²·N/2`; comparable to Σx².
#[inline]
fn goertzel_power(coeff: f32, s1: f32, s2: f32) -> f32 {
    let p = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    p * 2.0 / BLOCK as f32
}

/// Resonators: 4 rows, 4 columns, the columns' 4 second harmonics.
const LANES: usize = 12;

/// All resonators over one block, side by side, and the block's Σx² in the same pass:
/// (powers, energy).
fn bank(coeffs: &[f32; LANES], block: &[i16; BLOCK]) -> ([f32; LANES], f32) {
    let mut s1 = [0f32; LANES];
    let mut s2 = [0f32; LANES];
    let mut energy = 0f32;
    for &s in block {
        let x = unit(s);
        energy += x * x;
        for k in 0..LANES {
            let s0 = x + coeffs[k] * s1[k] - s2[k];
            s2[k] = s1[k];
            s1[k] = s0;
        }
    }
    let mut powers = [0f32; LANES];
    for k in 0..LANES {
        powers[k] = goertzel_power(coeffs[k], s1[k], s2[k]);
    }
    (powers, energy)
}

/// In-band DTMF detector for one direction of one call.
#[derive(Debug, Clone)]
pub struct Detector {
    /// Goertzel coefficients of the 4 rows, 4 columns and the columns' second harmonics.
    coeffs: [f32; LANES],
    /// The current block's samples; `filled` of them so far.
    block: [i16; BLOCK],
    filled: usize,
    /// The previous block's verdict and how many blocks in a row gave it.
    last: Option<char>,
    run: u32,
    /// The digit reported and still considered held.
    held: Option<char>,
    /// Consecutive blocks without `held`.
    absent: u32,
    /// A second digit completed within the same frame (rare), returned by the next push.
    pending: Option<char>,
    /// Minimum power per tone (scaled as [`goertzel_power`]).
    min_power: f32,
    /// Σs² (raw 16-bit samples) below which a block cannot hold a digit.
    gate: u64,
    /// Power ratios of the tests: normal twist, reverse twist, other-tone margin, harmonic.
    normal_twist: f32,
    reverse_twist: f32,
    peak_ratio: f32,
    harmonic_ratio: f32,
}

impl Default for Detector {
    fn default() -> Self {
        Self::new()
    }
}

impl Detector {
    /// A detector with the thresholds documented in the module docs.
    pub fn new() -> Self {
        let min_amp = DBM0_PEAK / 32768.0 * 10f32.powf(MIN_LEVEL_DBM0 / 20.0);
        let min_power = min_amp * min_amp * BLOCK as f32 / 2.0;
        let gate = 2.0 * min_power / TONE_GAIN_BOUND / db(GATE_MARGIN_DB);
        let mut coeffs = [0f32; LANES];
        let harmonics = COLS.map(|f| 2.0 * f);
        for (c, &f) in coeffs
            .iter_mut()
            .zip(ROWS.iter().chain(&COLS).chain(&harmonics))
        {
            *c = coeff(f);
        }
        Self {
            coeffs,
            block: [0; BLOCK],
            filled: 0,
            last: None,
            run: 0,
            held: None,
            absent: 0,
            pending: None,
            min_power,
            // Energy is Σ(s/32768)²: back to raw samples.
            gate: (f64::from(gate) * f64::from(1u32 << 30)) as u64,
            normal_twist: db(8.0),
            reverse_twist: db(4.0),
            peak_ratio: db(6.0),
            harmonic_ratio: db(10.0),
        }
    }

    /// Feed received audio (normally one 20 ms frame of 160 samples, any length works). Returns
    /// a digit (`0-9 * # A-D`) once, on the frame where a key press is confirmed.
    pub fn push_frame(&mut self, samples: &[i16]) -> Option<char> {
        let mut found = self.pending.take();
        let mut rest = samples;
        while !rest.is_empty() {
            let take = (BLOCK - self.filled).min(rest.len());
            let (now, later) = rest.split_at(take);
            self.block[self.filled..self.filled + take].copy_from_slice(now);
            self.filled += take;
            rest = later;
            if self.filled == BLOCK {
                self.filled = 0;
                let verdict = self.analyse(&self.block);
                if let Some(d) = self.on_block(verdict) {
                    if found.is_none() {
                        found = Some(d);
                    } else {
                        self.pending = Some(d);
                    }
                }
            }
        }
        found
    }

    /// Whether a block's energy is enough for two tones at the minimum level.
    fn could_hold_digit(&self, block: &[i16; BLOCK]) -> bool {
        let sum: u64 = block
            .iter()
            .map(|&s| {
                let a = u32::from(s.unsigned_abs());
                u64::from(a * a)
            })
            .sum();
        sum >= self.gate
    }

    /// The digit a complete block holds, if any.
    fn analyse(&self, block: &[i16; BLOCK]) -> Option<char> {
        if !self.could_hold_digit(block) {
            return None;
        }
        let (powers, energy) = bank(&self.coeffs, block);
        let rows: [f32; 4] = [powers[0], powers[1], powers[2], powers[3]];
        let cols: [f32; 4] = [powers[4], powers[5], powers[6], powers[7]];
        let (r, pr) = best(&rows);
        let (c, pc) = best(&cols);
        let level = pr >= self.min_power && pc >= self.min_power;
        let twist = pr <= pc * self.normal_twist && pc <= pr * self.reverse_twist;
        let peaks = rows
            .iter()
            .enumerate()
            .all(|(i, &p)| i == r || pr >= p * self.peak_ratio)
            && cols
                .iter()
                .enumerate()
                .all(|(i, &p)| i == c || pc >= p * self.peak_ratio);
        let pure = pr + pc >= MIN_TONE_FRACTION * energy;
        let harmonic = powers[8 + c] * self.harmonic_ratio <= pc;
        (level && twist && peaks && pure && harmonic).then_some(KEYS[r][c])
    }

    /// Debounce: report a digit after [`PRESENT_BLOCKS`] agreeing blocks, once per press.
    fn on_block(&mut self, verdict: Option<char>) -> Option<char> {
        if verdict.is_some() && verdict == self.last {
            self.run += 1;
        } else {
            self.run = 1;
        }
        self.last = verdict;
        let mut report = None;
        match verdict {
            Some(d) if self.held == Some(d) => self.absent = 0,
            Some(d) if self.run >= PRESENT_BLOCKS => {
                self.held = Some(d);
                self.absent = 0;
                report = Some(d);
            }
            _ => {
                if self.held.is_some() {
                    self.absent += 1;
                    if self.absent >= GAP_BLOCKS {
                        self.held = None;
                    }
                }
            }
        }
        report
    }

    /// Forget any tone in progress (e.g. after a codec change or a long gap in the stream).
    pub fn reset(&mut self) {
        *self = Self::new();
    }
}

/// Index and value of the largest of four powers.
fn best(p: &[f32; 4]) -> (usize, f32) {
    let mut i = 0;
    for j in 1..4 {
        if p[j] > p[i] {
            i = j;
        }
    }
    (i, p[i])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::g711::Codec;

    const DIGITS: &str = "0123456789*#ABCD";

    fn freqs(d: char) -> (f32, f32) {
        for (r, row) in KEYS.iter().enumerate() {
            for (c, &k) in row.iter().enumerate() {
                if k == d {
                    return (ROWS[r], COLS[c]);
                }
            }
        }
        panic!("not a DTMF key: {d}");
    }

    fn amp(dbm0: f32) -> f32 {
        DBM0_PEAK * 10f32.powf(dbm0 / 20.0)
    }

    /// `ms` of digit `d`, low tone at `low_dbm0`, high tone at `high_dbm0`, starting at phase
    /// offset `t0` samples.
    fn tone(d: char, low_dbm0: f32, high_dbm0: f32, ms: u32, t0: usize) -> Vec<i16> {
        let (fl, fh) = freqs(d);
        let n = (ms * 8) as usize;
        (t0..t0 + n)
            .map(|i| {
                let t = i as f32 / SAMPLE_RATE;
                let x = amp(low_dbm0) * (2.0 * std::f32::consts::PI * fl * t).sin()
                    + amp(high_dbm0) * (2.0 * std::f32::consts::PI * fh * t).sin();
                x.round().clamp(-32768.0, 32767.0) as i16
            })
            .collect()
    }

    /// Run `pcm` through a fresh detector in 160-sample frames (after `lead` samples of
    /// silence, to vary block alignment) and collect the digits.
    fn detect(pcm: &[i16], lead: usize) -> String {
        let mut det = Detector::new();
        let mut all = vec![0i16; lead];
        all.extend_from_slice(pcm);
        all.extend(std::iter::repeat_n(0, 800));
        all.chunks(160).filter_map(|f| det.push_frame(f)).collect()
    }

    fn through_g711(pcm: &[i16], codec: Codec) -> Vec<i16> {
        let mut enc = vec![0u8; pcm.len()];
        let mut dec = vec![0i16; pcm.len()];
        codec.encode(pcm, &mut enc);
        codec.decode(&enc, &mut dec);
        dec
    }

    #[test]
    fn every_digit_at_both_levels_and_durations_is_detected_once() {
        for d in DIGITS.chars() {
            for level in [-10.0, -25.0] {
                for ms in [40, 100] {
                    for lead in [0, 37, 101] {
                        let pcm = tone(d, level, level, ms, 0);
                        assert_eq!(
                            detect(&pcm, lead),
                            d.to_string(),
                            "{d} {level} dBm0 {ms} ms lead {lead}"
                        );
                        for codec in [Codec::Pcmu, Codec::Pcma] {
                            let g = through_g711(&pcm, codec);
                            assert_eq!(
                                detect(&g, lead),
                                d.to_string(),
                                "{d} {level} dBm0 {ms} ms {codec:?}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn twist_limits() {
        // Row 6 dB louder (normal twist within 8 dB) and column 3 dB louder (reverse within 4 dB).
        assert_eq!(detect(&tone('5', -10.0, -16.0, 60, 0), 0), "5");
        assert_eq!(detect(&tone('5', -13.0, -10.0, 60, 0), 0), "5");
        // Beyond the limits: rejected.
        assert_eq!(detect(&tone('5', -10.0, -21.0, 60, 0), 0), "");
        assert_eq!(detect(&tone('5', -17.0, -10.0, 60, 0), 0), "");
    }

    #[test]
    fn too_quiet_or_too_short_is_not_a_digit() {
        assert_eq!(detect(&tone('1', -40.0, -40.0, 100, 0), 0), "");
        for lead in [0, 50, 100] {
            assert_eq!(
                detect(&tone('1', -10.0, -10.0, 15, 0), lead),
                "",
                "lead {lead}"
            );
        }
    }

    #[test]
    fn long_press_is_one_digit_and_repeats_need_a_gap() {
        assert_eq!(detect(&tone('9', -10.0, -10.0, 2000, 0), 0), "9");
        // 5, 40 ms pause, 5, 40 ms pause, 7.
        let mut pcm = tone('5', -10.0, -10.0, 50, 0);
        pcm.extend(std::iter::repeat_n(0, 320));
        pcm.extend(tone('5', -10.0, -10.0, 50, 0));
        pcm.extend(std::iter::repeat_n(0, 320));
        pcm.extend(tone('7', -10.0, -10.0, 50, 0));
        for lead in [0, 30, 77] {
            assert_eq!(detect(&pcm, lead), "557", "lead {lead}");
        }
        // A digit followed directly by another.
        let mut pcm = tone('1', -10.0, -10.0, 60, 0);
        pcm.extend(tone('2', -10.0, -10.0, 60, 480));
        assert_eq!(detect(&pcm, 0), "12");
    }

    /// Deterministic pseudo-random numbers for noise (tests only).
    fn noise(n: usize, rms: f32, seed: u64) -> Vec<i16> {
        let mut ids = crate::idgen::IdGen::seeded(seed);
        (0..n)
            .map(|_| {
                // Sum of 4 uniforms: roughly Gaussian, variance 4/12.
                let s: f32 = (0..4)
                    .map(|_| (ids.next_u32() as f32 / u32::MAX as f32) - 0.5)
                    .sum();
                (s * rms * 3f32.sqrt()).clamp(-32768.0, 32767.0) as i16
            })
            .collect()
    }

    #[test]
    fn silence_noise_and_a_1khz_tone_are_not_digits() {
        assert_eq!(detect(&vec![0; 8000], 0), "");
        for (rms, seed) in [(300.0, 1), (3000.0, 2), (12000.0, 3)] {
            assert_eq!(detect(&noise(80_000, rms, seed), 0), "", "noise rms {rms}");
        }
        let beep: Vec<i16> = (0..16_000)
            .map(|i| {
                (amp(-10.0) * (2.0 * std::f32::consts::PI * 1000.0 * i as f32 / 8000.0).sin())
                    as i16
            })
            .collect();
        assert_eq!(detect(&beep, 0), "");
    }

    #[test]
    fn tone_in_noise_is_still_detected() {
        let mut pcm = tone('0', -15.0, -15.0, 80, 0);
        for (s, n) in pcm.iter_mut().zip(noise(640, 300.0, 9)) {
            *s = s.saturating_add(n);
        }
        assert_eq!(detect(&pcm, 0), "0");
    }

    #[test]
    fn real_speech_and_music_from_the_shipped_prompts_give_no_digit() {
        let lib = crate::media::prompts::tests::shipped();
        for id in lib.ids() {
            let p = lib.get(id).expect("prompt");
            for codec in [Codec::Pcmu, Codec::Pcma] {
                let mut pcm = vec![0i16; p.samples];
                codec.decode(p.payload(codec), &mut pcm);
                assert_eq!(
                    detect(&pcm, 0),
                    "",
                    "false digit in prompt {id} ({codec:?})"
                );
            }
        }
    }

    /// The detector as it was before the energy gate and the vectorised bank (12 resonators
    /// updated on every sample), kept verbatim as the reference the gated one must match.
    mod reference {
        use super::super::{BLOCK, KEYS, MIN_TONE_FRACTION, best, coeff, db};

        #[derive(Debug, Clone, Copy)]
        struct Goertzel {
            coeff: f32,
            s1: f32,
            s2: f32,
        }

        impl Goertzel {
            fn new(freq: f32) -> Self {
                Self {
                    coeff: coeff(freq),
                    s1: 0.0,
                    s2: 0.0,
                }
            }

            fn update(&mut self, x: f32) {
                let s0 = x + self.coeff * self.s1 - self.s2;
                self.s2 = self.s1;
                self.s1 = s0;
            }

            fn take_power(&mut self) -> f32 {
                let p = self.s1 * self.s1 + self.s2 * self.s2 - self.coeff * self.s1 * self.s2;
                self.s1 = 0.0;
                self.s2 = 0.0;
                p * 2.0 / BLOCK as f32
            }
        }

        /// Block verdicts only (the debouncing is shared code).
        pub(super) struct Reference {
            rows: [Goertzel; 4],
            cols: [Goertzel; 4],
            col_harmonics: [Goertzel; 4],
            min_power: f32,
        }

        impl Reference {
            pub(super) fn new() -> Self {
                let d = super::Detector::new();
                Self {
                    rows: super::ROWS.map(Goertzel::new),
                    cols: super::COLS.map(Goertzel::new),
                    col_harmonics: super::COLS.map(|f| Goertzel::new(2.0 * f)),
                    min_power: d.min_power,
                }
            }

            pub(super) fn verdict(&mut self, block: &[i16; BLOCK]) -> Option<char> {
                let mut energy = 0f32;
                for &s in block {
                    let x = f32::from(s) / 32768.0;
                    energy += x * x;
                    for g in self
                        .rows
                        .iter_mut()
                        .chain(self.cols.iter_mut())
                        .chain(self.col_harmonics.iter_mut())
                    {
                        g.update(x);
                    }
                }
                let rows = self.rows.each_mut().map(Goertzel::take_power);
                let cols = self.cols.each_mut().map(Goertzel::take_power);
                let harmonics = self.col_harmonics.each_mut().map(Goertzel::take_power);
                let (r, pr) = best(&rows);
                let (c, pc) = best(&cols);
                let level = pr >= self.min_power && pc >= self.min_power;
                let twist = pr <= pc * db(8.0) && pc <= pr * db(4.0);
                let peaks = rows
                    .iter()
                    .enumerate()
                    .all(|(i, &p)| i == r || pr >= p * db(6.0))
                    && cols
                        .iter()
                        .enumerate()
                        .all(|(i, &p)| i == c || pc >= p * db(6.0));
                let pure = pr + pc >= MIN_TONE_FRACTION * energy;
                let harmonic = harmonics[c] * db(10.0) <= pc;
                (level && twist && peaks && pure && harmonic).then_some(KEYS[r][c])
            }
        }
    }

    /// Every block of `pcm`, at every alignment in `offsets`, gets the reference's verdict; and
    /// the digits pushed through whole frames are the same. Returns the digits and how many
    /// blocks the gate let through to the filters.
    fn same_as_reference(pcm: &[i16], offsets: &[usize], what: &str) -> (String, usize) {
        let det = Detector::new();
        let mut reference = reference::Reference::new();
        let mut analysed = 0;
        for &off in offsets {
            for chunk in pcm[off.min(pcm.len())..].chunks_exact(BLOCK) {
                let block: &[i16; BLOCK] = chunk.try_into().expect("block");
                analysed += usize::from(det.could_hold_digit(block));
                let want = reference.verdict(block);
                assert_eq!(det.analyse(block), want, "{what}, offset {off}");
            }
        }
        // Digits through the full detector, with the debouncing, against the reference's
        // verdicts run through the same debouncing.
        let digits = detect(pcm, 0);
        let mut debounce = Detector::new();
        let mut all = pcm.to_vec();
        all.extend(std::iter::repeat_n(0, 800));
        all.extend(std::iter::repeat_n(0, BLOCK - all.len() % BLOCK));
        let want: String = all
            .chunks_exact(BLOCK)
            .filter_map(|c| debounce.on_block(reference.verdict(c.try_into().expect("block"))))
            .collect();
        assert_eq!(digits, want, "{what}: digits");
        (digits, analysed)
    }

    #[test]
    fn tone_gain_bound_holds_for_every_row_column_pair() {
        // Gershgorin bound on λmax of the Gram matrix of cos/sin vectors of both tones, in f64.
        let mut worst = 0f64;
        for &r in &ROWS {
            for &c in &COLS {
                let vecs: Vec<Vec<f64>> = [r, c]
                    .iter()
                    .flat_map(|&f| {
                        let w = 2.0 * std::f64::consts::PI * f64::from(f) / 8000.0;
                        [
                            (0..BLOCK).map(|n| (w * n as f64).cos()).collect(),
                            (0..BLOCK)
                                .map(|n| (w * n as f64).sin())
                                .collect::<Vec<f64>>(),
                        ]
                    })
                    .collect();
                for a in &vecs {
                    let row_sum: f64 = vecs
                        .iter()
                        .map(|b| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>().abs())
                        .sum();
                    worst = worst.max(row_sum * 2.0 / BLOCK as f64);
                }
            }
        }
        assert!(
            worst > 1.0 && worst <= f64::from(TONE_GAIN_BOUND),
            "bound {worst}"
        );
        // And measured: two tones at any phase never carry more than the bound.
        for (i, d) in DIGITS.chars().enumerate() {
            for t0 in [0, 3, 17, 40] {
                let pcm = tone(d, -10.0, -12.0, 20, t0 + i);
                let block: &[i16; BLOCK] = pcm[..BLOCK].try_into().expect("block");
                let (p, e) = bank(&Detector::new().coeffs, block);
                let (_, pr) = best(&[p[0], p[1], p[2], p[3]]);
                let (_, pc) = best(&[p[4], p[5], p[6], p[7]]);
                assert!(pr + pc <= TONE_GAIN_BOUND * e, "{d}: {pr} + {pc} vs {e}");
            }
        }
    }

    #[test]
    fn gate_skips_silence_and_line_noise_but_not_minimum_level_tones() {
        let det = Detector::new();
        let block = |pcm: &[i16]| -> [i16; BLOCK] { pcm[..BLOCK].try_into().expect("block") };
        assert!(!det.could_hold_digit(&[0; BLOCK]));
        assert!(!det.could_hold_digit(&block(&noise(BLOCK, 100.0, 4))));
        // Two tones at −34 dBm0 each (2 dB under the minimum) cannot pass: gated.
        assert!(!det.could_hold_digit(&block(&tone('8', -34.0, -34.0, 20, 0))));
        for d in DIGITS.chars() {
            for t0 in [0, 11, 50] {
                let pcm = tone(d, MIN_LEVEL_DBM0, MIN_LEVEL_DBM0, 20, t0);
                assert!(det.could_hold_digit(&block(&pcm)), "{d} at {t0}");
            }
        }
    }

    #[test]
    fn gated_detector_matches_the_reference_on_tones_at_the_minimum_level() {
        let offsets = [0, 13, 51, 88];
        for d in DIGITS.chars() {
            for (low, high) in [
                (-31.0, -31.0),
                (-32.0, -32.0),
                (-32.3, -31.0),
                (-33.0, -33.0),
            ] {
                let pcm = tone(d, low, high, 80, 0);
                let what = format!("{d} at {low}/{high} dBm0");
                let (digits, _) = same_as_reference(&pcm, &offsets, &what);
                if low > -32.0 {
                    assert_eq!(digits, d.to_string(), "{what}");
                }
                for codec in [Codec::Pcmu, Codec::Pcma] {
                    let g = through_g711(&pcm, codec);
                    same_as_reference(&g, &offsets, &format!("{what} {codec:?}"));
                }
            }
        }
    }

    #[test]
    fn gated_detector_matches_the_reference_on_speech_and_music() {
        let lib = crate::media::prompts::tests::shipped();
        let (mut analysed, mut blocks) = (0, 0);
        for id in lib.ids() {
            let p = lib.get(id).expect("prompt");
            for codec in [Codec::Pcmu, Codec::Pcma] {
                let mut pcm = vec![0i16; p.samples];
                codec.decode(p.payload(codec), &mut pcm);
                let (digits, n) = same_as_reference(&pcm, &[0, 51], &format!("{id} {codec:?}"));
                assert_eq!(digits, "", "false digit in prompt {id} ({codec:?})");
                analysed += n;
                blocks += (pcm.len() / BLOCK) + (pcm.len() - 51) / BLOCK;
            }
        }
        // The prompts are mostly speech, but their pauses are gated.
        assert!(analysed < blocks, "{analysed} of {blocks} blocks analysed");
    }

    #[test]
    fn gated_detector_matches_the_reference_on_tones_in_noise_and_noise_near_the_gate() {
        for (i, d) in DIGITS.chars().enumerate() {
            for (level, rms) in [
                (-15.0, 300.0),
                (-25.0, 300.0),
                (-30.0, 150.0),
                (-20.0, 2000.0),
            ] {
                let mut pcm = tone(d, level, level, 80, 0);
                let seed = 100 + i as u64;
                for (s, n) in pcm.iter_mut().zip(noise(640, rms, seed)) {
                    *s = s.saturating_add(n);
                }
                same_as_reference(&pcm, &[0, 29, 77], &format!("{d} {level} dBm0 + {rms}"));
            }
        }
        // Noise whose block energy straddles the gate (rms −35 … −25 dBm0; the gate is near 480).
        for (rms, seed) in [
            (300.0, 21),
            (400.0, 22),
            (480.0, 23),
            (550.0, 24),
            (900.0, 25),
        ] {
            same_as_reference(&noise(40_000, rms, seed), &[0, 60], &format!("noise {rms}"));
        }
    }

    /// CPU cost per 20 ms frame on (a) digital silence, (b) low-level noise, (c) the shipped
    /// speech prompts decoded with our G.711, (d) a held DTMF tone. Run with
    /// `cargo test --release --lib inband::tests::bench -- --ignored --nocapture`.
    #[test]
    #[ignore = "micro-benchmark"]
    fn bench_cost_per_frame() {
        let lib = crate::media::prompts::tests::shipped();
        let mut speech = Vec::new();
        for id in lib.ids() {
            let p = lib.get(id).expect("prompt");
            let mut pcm = vec![0i16; p.samples];
            Codec::Pcmu.decode(p.payload(Codec::Pcmu), &mut pcm);
            speech.extend_from_slice(&pcm);
        }
        let inputs: [(&str, Vec<i16>); 4] = [
            ("silence", vec![0; 8000]),
            ("noise -44 dBm0", noise(80_000, 100.0, 7)),
            ("speech prompts", speech),
            ("DTMF 5 -10 dBm0", tone('5', -10.0, -10.0, 1000, 0)),
        ];
        let frames = 200_000;
        for (name, pcm) in &inputs {
            let mut det = Detector::new();
            let n_frames = pcm.len() / 160;
            let start = crate::clock::now();
            let mut n = 0;
            for i in 0..frames {
                let k = (i % n_frames) * 160;
                n += usize::from(
                    det.push_frame(std::hint::black_box(&pcm[k..k + 160]))
                        .is_some(),
                );
            }
            let per = (crate::clock::now() - start).as_nanos() / frames as u128;
            let mut reference = reference::Reference::new();
            let start = crate::clock::now();
            let mut n_ref = 0;
            for i in 0..frames * 160 / BLOCK {
                let k = (i * BLOCK) % (n_frames * 160 - BLOCK);
                let block: &[i16; BLOCK] = pcm[k..k + BLOCK].try_into().expect("block");
                n_ref += usize::from(reference.verdict(std::hint::black_box(block)).is_some());
            }
            let per_ref = (crate::clock::now() - start).as_nanos() / frames as u128;
            let blocks = pcm.chunks_exact(BLOCK);
            let total = blocks.len();
            let past = blocks
                .filter(|&b| det.could_hold_digit(b.try_into().expect("block")))
                .count();
            println!(
                "inband DTMF {name:>16}: {per:>5} ns per 20 ms frame ({n} digits, {}% of blocks \
                 past the gate); before: {per_ref:>5} ns ({n_ref} digit blocks)",
                past * 100 / total
            );
        }
    }
}
