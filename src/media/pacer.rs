//! The pacing clock for one RTP stream: frame `n` is due at `start + n·period`.
//!
//! PURE: it never reads a clock or sleeps. The shell sleeps until [`Pacer::next_due`], reads
//! `now` (`crate::clock::now()`), calls [`Pacer::advance`] and sends one frame. Because due times
//! come from a schedule, not from "sleep 20 ms after the last send", timer jitter and send time
//! do not accumulate into drift (DESIGN: "paced on a 20 ms clock … without drift").
//!
//! When the task falls far behind (a stalled runtime, a suspended VM), sending every missed frame
//! back to back would burst audio at the peer's jitter buffer. Up to [`DEFAULT_MAX_LAG`] frames of
//! lateness are caught up by sending immediately; beyond that the pacer **skips ahead** to the
//! frame due now and reports how many frames were skipped. The RTP timestamp must still advance by
//! one frame's samples (160 at 8 kHz) per skipped frame (RFC 3550 §5.1: the timestamp reflects the
//! sampling instant), so use [`Tick::index`] (frames since start, skipped ones included) for it,
//! while the sequence number advances by one per packet actually sent.

use std::time::{Duration, Instant};

/// Frames of lateness caught up by sending back to back; more than this and the pacer skips.
pub const DEFAULT_MAX_LAG: u64 = 5;

/// The frame to send now, from [`Pacer::advance`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tick {
    /// Index of this frame since start (0-based), counting skipped frames: RTP timestamp =
    /// base + `index` × samples per frame.
    pub index: u64,
    /// Frames skipped just before this one (0 normally).
    pub skipped: u64,
}

/// A drift-free frame schedule.
#[derive(Debug, Clone)]
pub struct Pacer {
    start: Instant,
    period: Duration,
    /// Index of the next frame to send.
    next: u64,
    /// Total frames skipped since start.
    skipped: u64,
    max_lag: u64,
}

impl Pacer {
    /// A schedule whose frame 0 is due at `start`, then one every `period` (20 ms for G.711).
    pub fn new(start: Instant, period: Duration) -> Self {
        Self {
            start,
            period,
            next: 0,
            skipped: 0,
            max_lag: DEFAULT_MAX_LAG,
        }
    }

    /// Change how many frames late the pacer tolerates before skipping (at least 1).
    pub fn with_max_lag(mut self, frames: u64) -> Self {
        self.max_lag = frames.max(1);
        self
    }

    /// Move the schedule so frame 0 is due at `at`; ignored once a frame was claimed (the
    /// schedule of a running stream never jumps).
    pub fn start_at(&mut self, at: Instant) {
        if self.next == 0 {
            self.start = at;
        }
    }

    /// When the next frame is due: sleep until then, then call [`Pacer::advance`].
    pub fn next_due(&self) -> Instant {
        self.due(self.next)
    }

    /// Due time of frame `n`: computed from the start each time, so it never drifts.
    fn due(&self, n: u64) -> Instant {
        // Frame counts past u32::MAX (2.7 years of 20 ms frames) saturate rather than overflow.
        let whole = self
            .period
            .saturating_mul(u32::try_from(n).unwrap_or(u32::MAX));
        self.start
            .checked_add(whole)
            .expect("a 20 ms schedule stays within Instant's range for years")
    }

    /// Claim the frame to send at `now` (call when `now >= next_due()`; calling early simply
    /// sends the next frame early). If the pacer is more than `max_lag` frames behind, the frames
    /// whose time has passed are skipped and counted.
    pub fn advance(&mut self, now: Instant) -> Tick {
        let mut skipped = 0;
        if let Some(late) = now.checked_duration_since(self.next_due()) {
            let behind = (late.as_nanos() / self.period.as_nanos().max(1)) as u64;
            if behind > self.max_lag {
                skipped = behind;
            }
        }
        let index = self.next + skipped;
        self.skipped += skipped;
        self.next = index + 1;
        Tick { index, skipped }
    }

    /// Frames accounted for so far (sent + skipped) = index of the next frame.
    pub fn frames_elapsed(&self) -> u64 {
        self.next
    }

    /// Frames skipped since start.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// Frames actually handed out by [`Pacer::advance`].
    pub fn frames_sent(&self) -> u64 {
        self.next - self.skipped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: Duration = Duration::from_millis(20);

    #[test]
    fn the_start_moves_only_before_the_first_frame() {
        let t0 = crate::clock::now();
        let mut pacer = Pacer::new(t0, P);
        pacer.start_at(t0 + Duration::from_millis(7));
        assert_eq!(pacer.next_due(), t0 + Duration::from_millis(7));
        pacer.advance(t0 + Duration::from_millis(7));
        pacer.start_at(t0);
        assert_eq!(pacer.next_due(), t0 + Duration::from_millis(27));
    }

    #[test]
    fn twenty_minutes_is_exactly_60000_frames_at_exact_times() {
        let start = crate::clock::now();
        let mut pacer = Pacer::new(start, P);
        let end = start + Duration::from_secs(20 * 60);
        let mut n = 0u64;
        // The shell wakes a little late every time (timer jitter); that must not accumulate.
        let mut jitter = 0u64;
        while pacer.next_due() < end {
            let due = pacer.next_due();
            assert_eq!(due, start + Duration::from_millis(20 * n));
            jitter = (jitter * 7 + 3) % 4000; // 0..4 ms
            let t = pacer.advance(due + Duration::from_micros(jitter));
            assert_eq!(
                t,
                Tick {
                    index: n,
                    skipped: 0
                }
            );
            n += 1;
        }
        assert_eq!(n, 60_000);
        assert_eq!(pacer.frames_elapsed(), 60_000);
        assert_eq!(pacer.next_due(), end);
        assert_eq!(pacer.skipped(), 0);
    }

    #[test]
    fn small_lateness_is_caught_up_back_to_back() {
        let start = crate::clock::now();
        let mut pacer = Pacer::new(start, P);
        pacer.advance(start);
        // Wake 100 ms late (5 frames behind): send 0..=5 immediately, no skip.
        let now = start + P + Duration::from_millis(100);
        for i in 1..=6 {
            assert!(pacer.next_due() <= now);
            assert_eq!(
                pacer.advance(now),
                Tick {
                    index: i,
                    skipped: 0
                }
            );
        }
        assert!(pacer.next_due() > now);
        assert_eq!(pacer.next_due(), start + 7 * P);
    }

    #[test]
    fn large_lateness_skips_ahead_and_keeps_timestamps_right() {
        let start = crate::clock::now();
        let mut pacer = Pacer::new(start, P);
        pacer.advance(start); // frame 0
        // Stalled for a second: frame 1 was due at 20 ms, now is 1020 ms → frame 51 is due now.
        let now = start + Duration::from_millis(1020);
        let t = pacer.advance(now);
        assert_eq!(
            t,
            Tick {
                index: 51,
                skipped: 50
            }
        );
        assert_eq!(pacer.skipped(), 50);
        assert_eq!(pacer.frames_sent(), 2);
        assert_eq!(pacer.frames_elapsed(), 52);
        // RTP timestamp for this packet: 160 × index, exactly where real time says it is.
        assert_eq!(t.index * 160, 8160);
        assert_eq!(pacer.next_due(), start + 52 * P);
        // Back on schedule afterwards.
        assert_eq!(
            pacer.advance(start + 52 * P),
            Tick {
                index: 52,
                skipped: 0
            }
        );
    }

    #[test]
    fn max_lag_is_configurable_and_early_calls_do_not_panic() {
        let start = crate::clock::now();
        let mut pacer = Pacer::new(start, P).with_max_lag(0);
        assert_eq!(
            pacer.advance(start),
            Tick {
                index: 0,
                skipped: 0
            }
        );
        // Two frames late with max_lag 1 → skip.
        let t = pacer.advance(start + Duration::from_millis(61));
        assert_eq!(
            t,
            Tick {
                index: 3,
                skipped: 2
            }
        );
        // Early: just the next frame.
        assert_eq!(
            pacer.advance(start),
            Tick {
                index: 4,
                skipped: 0
            }
        );
    }
}
