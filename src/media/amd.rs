//! PURE: answering-machine detection over the first seconds of an answered callee's audio
//! (issue 21 item 5), by greeting length and cadence, the rules of Asterisk's `app_amd`.
//!
//! A person answers with a short "hello?" and then waits for an answer: a little speech, then
//! silence. A machine plays a recorded greeting: long ("Hi, you have reached the Smiths, we
//! cannot come to the phone right now …"), or many words in a row. Each 20 ms frame is voice
//! when its mean absolute amplitude is over `silence_threshold`; runs of voice at least
//! `min_word` long are words, and the gaps between them silences:
//!
//! - silence from the answer for `initial_silence`: a machine (one that waits for the beep);
//! - a word longer than `greeting`, or `max_words` words: a machine;
//! - after some speech, a silence of `after_greeting_silence`: a person;
//! - `total_analysis` passes first: not sure (Hammond treats it as a person: better to bridge a
//!   machine than to hang up on a customer).
//!
//! Must not: read a clock or know about RTP; the shell feeds decoded samples with `now`.

use std::time::{Duration, Instant};

/// The detector's thresholds (Asterisk's defaults, in its own names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AmdConfig {
    /// Silence from the answer after which it is a machine.
    pub initial_silence: Duration,
    /// A single word (voice run) longer than this is a recorded greeting.
    pub greeting: Duration,
    /// Silence after speech that means a person waiting for an answer.
    pub after_greeting_silence: Duration,
    /// Longest analysis; past it the verdict is [`Verdict::NotSure`].
    pub total_analysis: Duration,
    /// Shortest voice run that counts as a word.
    pub min_word: Duration,
    /// This many words before a person's pause: a machine.
    pub max_words: u32,
    /// Mean absolute amplitude (16-bit) above which a frame is voice.
    pub silence_threshold: u16,
}

impl Default for AmdConfig {
    fn default() -> Self {
        Self {
            initial_silence: Duration::from_millis(2500),
            greeting: Duration::from_millis(1500),
            after_greeting_silence: Duration::from_millis(800),
            total_analysis: Duration::from_millis(5000),
            min_word: Duration::from_millis(100),
            max_words: 3,
            silence_threshold: 256,
        }
    }
}

/// What the callee is, once the detector knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// A person: bridge them.
    Human,
    /// An answering machine: leave the short message, apply the machine retry rule.
    Machine(MachineCue),
    /// The analysis ran out of time without a clear sign (treated as a person).
    NotSure,
}

/// Why the detector said machine (for the feed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MachineCue {
    /// Nothing said from the answer for `initial_silence`.
    InitialSilence,
    /// One word longer than `greeting`.
    LongGreeting,
    /// `max_words` words without a person's pause.
    MaxWords,
}

/// One call's detector. Feed every frame of the callee's audio from the answer on with
/// [`Detector::handle_frame`] (and [`Detector::handle_timeout`] when frames stop coming) until
/// it returns a verdict; after that it ignores input.
#[derive(Debug, Clone)]
pub struct Detector {
    cfg: AmdConfig,
    started: Instant,
    /// Voice heard so far (then silence after speech decides).
    spoke: bool,
    /// The current run: voice or silence, and since when.
    in_voice: bool,
    run_since: Instant,
    words: u32,
    /// The current voice run already counted as a word.
    counted: bool,
    verdict: Option<Verdict>,
}

impl Detector {
    /// A detector for a callee who answered at `now`.
    pub fn new(cfg: AmdConfig, now: Instant) -> Self {
        Self {
            cfg,
            started: now,
            spoke: false,
            in_voice: false,
            run_since: now,
            words: 0,
            counted: false,
            verdict: None,
        }
    }

    /// The verdict, once there is one.
    pub fn verdict(&self) -> Option<Verdict> {
        self.verdict
    }

    /// One frame of the callee's audio (linear 16-bit, 8 kHz), received at `now` (its end). Returns
    /// the verdict when this frame decides it.
    pub fn handle_frame(&mut self, now: Instant, pcm: &[i16]) -> Option<Verdict> {
        if self.verdict.is_some() {
            return None;
        }
        let voice = mean_abs(pcm) > u64::from(self.cfg.silence_threshold);
        if voice != self.in_voice {
            // The run began with this frame (8 kHz: 8 samples a millisecond).
            let len = Duration::from_micros(pcm.len() as u64 * 125);
            self.in_voice = voice;
            self.run_since = now.checked_sub(len).unwrap_or(now).max(self.started);
            self.counted = false;
        }
        if voice {
            let run = now.saturating_duration_since(self.run_since);
            if run >= self.cfg.min_word && !self.counted {
                self.counted = true;
                self.spoke = true;
                self.words += 1;
                if self.words >= self.cfg.max_words {
                    return self.decide(Verdict::Machine(MachineCue::MaxWords));
                }
            }
            if run > self.cfg.greeting {
                return self.decide(Verdict::Machine(MachineCue::LongGreeting));
            }
        }
        self.handle_timeout(now)
    }

    /// Time passes without a frame deciding (call at [`Detector::poll_timeout`]); frames are
    /// checked against the same deadlines. Returns the verdict when it is decided now.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<Verdict> {
        if self.verdict.is_some() {
            return None;
        }
        let silent_for = (!self.in_voice).then(|| now.saturating_duration_since(self.run_since));
        if let Some(s) = silent_for {
            if !self.spoke && s >= self.cfg.initial_silence {
                return self.decide(Verdict::Machine(MachineCue::InitialSilence));
            }
            if self.spoke && s >= self.cfg.after_greeting_silence {
                return self.decide(Verdict::Human);
            }
        }
        if now.saturating_duration_since(self.started) >= self.cfg.total_analysis {
            return self.decide(Verdict::NotSure);
        }
        None
    }

    /// When [`Detector::handle_timeout`] must be called if no frame comes (the total analysis
    /// time; silence deadlines are met by the frames of silence themselves, or by this).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.verdict
            .is_none()
            .then_some(self.started + self.cfg.total_analysis)
    }

    fn decide(&mut self, v: Verdict) -> Option<Verdict> {
        self.verdict = Some(v);
        Some(v)
    }
}

/// Why [`GreetingEnd`] says a machine's greeting is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndCue {
    /// The beep (a steady tone) ended: the machine records from now.
    Beep,
    /// Silence long enough that the greeting is over (a machine without a beep, or one whose
    /// beep was not heard as one).
    Silence,
}

/// After a machine verdict: when to speak, so the message lands on the recording. A message
/// played over the greeting is lost; so Hammond waits for the beep (a steady tone at least
/// [`GreetingEnd::BEEP_MIN`] long, then silence) or for [`GreetingEnd::END_SILENCE`] of silence.
/// The driver caps the wait (`wait_for_beep`) for a greeting that never ends.
///
/// A beep is told from speech by its steadiness: every 20 ms frame of it has the same number of
/// zero crossings (its pitch) and about the same loudness; speech changes both from frame to
/// frame. Must not: read a clock.
#[derive(Debug, Clone)]
pub struct GreetingEnd {
    threshold: u16,
    /// Whether the current run is voice, and since when.
    in_voice: bool,
    run_since: Instant,
    /// The current voice run's steadiness: frames, first frame's crossings and loudness.
    steady_frames: u32,
    steady_zc: u32,
    steady_level: u64,
    /// The last voice run was a tone long enough to be the beep.
    beeped: bool,
    ended: bool,
}

impl GreetingEnd {
    /// Silence after which a greeting is over.
    pub const END_SILENCE: Duration = Duration::from_millis(1200);
    /// A steady tone at least this long is the beep.
    pub const BEEP_MIN: Duration = Duration::from_millis(160);
    /// Silence after the beep before speaking (the recorder starts).
    pub const AFTER_BEEP: Duration = Duration::from_millis(100);

    /// Start listening at `now` (the verdict), with the detector's voice threshold.
    pub fn new(cfg: &AmdConfig, now: Instant) -> Self {
        Self {
            threshold: cfg.silence_threshold,
            in_voice: true,
            run_since: now,
            steady_frames: 0,
            steady_zc: 0,
            steady_level: 0,
            beeped: false,
            ended: false,
        }
    }

    /// One frame of the callee's audio (linear 16-bit, 8 kHz) received at `now`; `Some` once,
    /// when the greeting is over.
    pub fn handle_frame(&mut self, now: Instant, pcm: &[i16]) -> Option<EndCue> {
        if self.ended {
            return None;
        }
        let level = mean_abs(pcm);
        let voice = level > u64::from(self.threshold);
        if voice {
            let zc = zero_crossings(pcm);
            if !self.in_voice {
                self.in_voice = true;
                self.run_since = now;
                self.beeped = false;
                self.steady_frames = 0;
            }
            let steady = self.steady_frames > 0
                && zc.abs_diff(self.steady_zc) <= 2
                && level * 4 >= self.steady_level * 3
                && level * 3 <= self.steady_level * 4;
            if steady {
                self.steady_frames += 1;
            } else {
                self.steady_frames = 1;
                self.steady_zc = zc;
                self.steady_level = level;
            }
            // At least 4 crossings a frame (100 Hz): hum and clicks are no beep.
            if zc >= 4 && Duration::from_millis(20) * self.steady_frames >= Self::BEEP_MIN {
                self.beeped = true;
            }
            return None;
        }
        if self.in_voice {
            self.in_voice = false;
            self.run_since = now;
        }
        let quiet = now.saturating_duration_since(self.run_since);
        let cue = if self.beeped && quiet >= Self::AFTER_BEEP {
            EndCue::Beep
        } else if quiet >= Self::END_SILENCE {
            EndCue::Silence
        } else {
            return None;
        };
        self.ended = true;
        Some(cue)
    }
}

fn mean_abs(pcm: &[i16]) -> u64 {
    if pcm.is_empty() {
        return 0;
    }
    let sum: u64 = pcm.iter().map(|s| u64::from(s.unsigned_abs())).sum();
    sum / pcm.len() as u64
}

fn zero_crossings(pcm: &[i16]) -> u32 {
    let n = pcm.windows(2).filter(|w| (w[0] < 0) != (w[1] < 0)).count();
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAME: Duration = Duration::from_millis(20);

    /// 8 kHz audio in 20 ms frames through a detector from `t0`; the verdict and when.
    fn run(samples: &[i16]) -> (Option<Verdict>, Duration) {
        let t0 = crate::clock::now();
        let mut d = Detector::new(AmdConfig::default(), t0);
        let mut now = t0;
        // The audio, then silence for as long as the analysis may take.
        let tail = vec![0_i16; 8 * 6000];
        for frame in samples.chunks(160).chain(tail.chunks(160)) {
            now += FRAME;
            if let Some(v) = d.handle_frame(now, frame) {
                return (Some(v), now - t0);
            }
        }
        (d.verdict(), now - t0)
    }

    fn tone(ms: u64, amplitude: f64) -> Vec<i16> {
        (0..ms * 8)
            .map(|n| {
                (amplitude * (2.0 * std::f64::consts::PI * 300.0 * n as f64 / 8000.0).sin()) as i16
            })
            .collect()
    }

    fn silence(ms: u64) -> Vec<i16> {
        vec![0; (ms * 8) as usize]
    }

    /// A recorded prompt of the shipped library, as a callee's audio.
    fn speech(id: &str) -> Vec<i16> {
        let path = format!("{}/prompts/audio/{id}.wav", env!("CARGO_MANIFEST_DIR"));
        let mut r = hound::WavReader::open(path).unwrap();
        r.samples::<i16>().map(Result::unwrap).collect()
    }

    /// Issue 21: a short "hello" (real speech: the prompt "one", 0.44 s) then silence is a
    /// person, decided 800 ms after it ends; the recorded greetings of the prompt library
    /// (3.8 s and 7.4 s of speech) are machines, by their word count or their length.
    #[test]
    fn a_recorded_greeting_is_a_machine_and_a_short_hello_a_person() {
        let mut hello = silence(300);
        hello.extend(speech("digit_1"));
        let (v, at) = run(&hello);
        assert_eq!(v, Some(Verdict::Human));
        assert!(at < Duration::from_millis(2000), "{at:?}");
        for greeting in ["greeting", "callback_menu", "voicemail_intro"] {
            let (v, at) = run(&speech(greeting));
            assert!(matches!(v, Some(Verdict::Machine(_))), "{greeting}: {v:?}");
            assert!(at < Duration::from_secs(5), "{greeting}: decided at {at:?}");
        }
    }

    /// Synthetic cadences: one long word is a long greeting; many short words, a machine;
    /// nothing at all, a machine waiting for the beep; two words then a pause, a person.
    #[test]
    fn greeting_length_and_cadence_decide() {
        let (v, at) = run(&tone(2000, 3000.0));
        assert_eq!(v, Some(Verdict::Machine(MachineCue::LongGreeting)));
        assert!(
            at > Duration::from_millis(1500) && at < Duration::from_millis(1600),
            "{at:?}"
        );
        let mut words = Vec::new();
        for _ in 0..5 {
            words.extend(tone(300, 3000.0));
            words.extend(silence(150));
        }
        assert_eq!(run(&words).0, Some(Verdict::Machine(MachineCue::MaxWords)));
        let (v, at) = run(&silence(100));
        assert_eq!(v, Some(Verdict::Machine(MachineCue::InitialSilence)));
        assert_eq!(at, Duration::from_millis(2500));
        let mut person = tone(250, 3000.0);
        person.extend(silence(150));
        person.extend(tone(200, 3000.0));
        let (v, at) = run(&person);
        assert_eq!(v, Some(Verdict::Human));
        assert_eq!(at, Duration::from_millis(600 + 800));
        // Quiet line noise under the threshold is silence.
        assert_eq!(
            run(&tone(3000, 150.0)).0,
            Some(Verdict::Machine(MachineCue::InitialSilence))
        );
    }

    #[test]
    fn without_frames_the_timeout_decides() {
        let t0 = crate::clock::now();
        let mut d = Detector::new(AmdConfig::default(), t0);
        assert_eq!(d.poll_timeout(), Some(t0 + Duration::from_secs(5)));
        assert_eq!(d.handle_timeout(t0 + Duration::from_secs(1)), None);
        // Without frames the silence deadlines are not heard; the analysis time ends it.
        assert_eq!(
            d.handle_timeout(t0 + Duration::from_secs(5)),
            Some(Verdict::Machine(MachineCue::InitialSilence))
        );
        assert_eq!(d.poll_timeout(), None);
        assert_eq!(d.handle_frame(t0 + Duration::from_secs(6), &[0; 160]), None);
    }

    /// The end of a greeting, frame by frame: when it is over, and at what time.
    fn end_of(samples: &[i16]) -> Option<(EndCue, Duration)> {
        let t0 = crate::clock::now();
        let mut e = GreetingEnd::new(&AmdConfig::default(), t0);
        let mut now = t0;
        let tail = vec![0_i16; 8 * 3000];
        for frame in samples.chunks(160).chain(tail.chunks(160)) {
            now += FRAME;
            if let Some(cue) = e.handle_frame(now, frame) {
                return Some((cue, now - t0));
            }
        }
        None
    }

    /// Issue 21: a recorded greeting (real speech) then the shipped beep ends at the beep's
    /// end; the same greeting without a beep ends after 1.2 s of silence; speech is never
    /// taken for a beep, however long.
    #[test]
    fn the_greeting_ends_at_the_beep_or_in_silence() {
        let greeting = speech("voicemail_intro");
        let len = Duration::from_millis(greeting.len() as u64 / 8);
        let mut with_beep = greeting.clone();
        with_beep.extend(silence(400));
        with_beep.extend(speech("beep"));
        let (cue, at) = end_of(&with_beep).unwrap();
        assert_eq!(cue, EndCue::Beep);
        let beep_end = len + Duration::from_millis(800);
        assert!(
            at >= beep_end && at <= beep_end + Duration::from_millis(200),
            "{at:?}, the beep ends at {beep_end:?}"
        );
        for id in [
            "voicemail_intro",
            "callback_menu",
            "greeting",
            "agent_unreachable",
        ] {
            let s = speech(id);
            let len = Duration::from_millis(s.len() as u64 / 8);
            let (cue, at) = end_of(&s).unwrap();
            assert_eq!(cue, EndCue::Silence, "{id}: speech taken for a beep");
            assert!(
                at + Duration::from_millis(300) >= len + GreetingEnd::END_SILENCE
                    && at <= len + Duration::from_millis(1300),
                "{id}: {at:?} for {len:?} of speech (its last syllable fades)"
            );
        }
    }
}
