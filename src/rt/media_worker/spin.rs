//! How early the media thread wakes before a tick with frames due, to spin the rest of the way.
//!
//! An idle virtual CPU halts between ticks, and how soon it runs again after its timer fires is
//! up to the host: one call alone on a quiet host was sent 1–4 ms late at p99 (issue 19), while
//! 2,000 calls, which keep the core busy, kept 0.8 ms. So before a tick with frames due the
//! thread sets its alarm early by the recent lateness of its wakes (a high quantile of the last
//! [`WINDOW`]), and spins from there to the tick: a late wake then costs spinning, not a late
//! frame. Only when few streams are due ([`SPIN_MAX_DUE`]): a busy tick keeps the core awake
//! anyway, and spinning at every tick of a thousand calls would cost a share of a core for
//! nothing. And never more than [`MAX_SHARE`] of a core in all: one call spins up to
//! [`MAX_SPIN`] once per frame period, forty calls (frames on every tick) a quarter of that per
//! tick. On a host that wakes the thread on time the margin stays near [`GUARD`].

use std::time::Duration;

/// Wakes whose lateness is kept (at 200 wakes a second, the last 1.3 s).
const WINDOW: usize = 256;
/// Which of them sets the margin: the `RANK`-th latest (the 99.2th percentile of 256).
const RANK: usize = 2;
/// Recompute the margin after this many wakes.
const EVERY: u32 = 32;
/// Added to the quantile: the spin itself and a wake slightly later than any recently seen.
const GUARD: Duration = Duration::from_micros(100);
/// The most a tick spins: past this a wake is late whatever the spin, and spinning longer
/// costs more than it saves.
const MAX_SPIN: Duration = Duration::from_millis(2);
/// The most of a core spinning may take (on a host that wakes the thread late).
const MAX_SHARE: f64 = 0.10;
/// The frame period, over which the ticks that spin are counted.
const PERIOD: Duration = crate::media::leg::PTIME;
/// Streams due on a tick above which it does not spin.
pub(super) const SPIN_MAX_DUE: usize = 16;

/// The lateness of recent wakes, and the spin margin it sets.
pub(super) struct Spin {
    /// Lateness in µs (saturated), a ring: `next` is the oldest.
    late_us: [u16; WINDOW],
    next: usize,
    /// Records since the margin was computed.
    since: u32,
    margin: Duration,
}

impl Default for Spin {
    fn default() -> Self {
        Self {
            late_us: [0; WINDOW],
            next: 0,
            since: 0,
            margin: GUARD,
        }
    }
}

impl Spin {
    /// A timed wake (not one a request ended) came `late` after its deadline.
    pub(super) fn record(&mut self, late: Duration) {
        let us = u16::try_from(late.as_micros()).unwrap_or(u16::MAX);
        self.late_us[self.next] = us;
        self.next = (self.next + 1) % WINDOW;
        self.since += 1;
        if self.since >= EVERY {
            self.since = 0;
            let mut sorted = self.late_us;
            let (_, &mut nth, _) = sorted.select_nth_unstable(WINDOW - RANK);
            self.margin = (Duration::from_micros(u64::from(nth)) + GUARD).min(MAX_SPIN);
        }
    }

    /// How long before a tick on which `due` streams send to wake, and spin to the tick, when
    /// `ticks` ticks of each frame period have frames due.
    pub(super) fn margin(&self, due: usize, ticks: usize) -> Duration {
        if due == 0 || due > SPIN_MAX_DUE {
            return Duration::ZERO;
        }
        let ticks = u32::try_from(ticks.max(1)).unwrap_or(u32::MAX);
        self.margin.min(PERIOD.mul_f64(MAX_SHARE) / ticks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    #[test]
    fn the_margin_follows_the_late_tail_of_recent_wakes() {
        let mut s = Spin::default();
        assert_eq!(s.margin(1, 1), GUARD, "cheap until something was measured");
        for _ in 0..WINDOW {
            s.record(us(30));
        }
        assert_eq!(s.margin(1, 1), us(130));
        // One wake in a hundred is 900 µs late: the spin covers it.
        for i in 0..WINDOW {
            s.record(us(if i % 100 == 0 { 900 } else { 30 }));
        }
        assert_eq!(s.margin(1, 1), us(1000));
        // The host calms down: after a window of prompt wakes, the margin comes back.
        for _ in 0..WINDOW {
            s.record(us(20));
        }
        assert_eq!(s.margin(1, 1), us(120));
    }

    #[test]
    fn no_spin_for_an_idle_or_busy_tick_and_never_past_the_caps() {
        let mut s = Spin::default();
        for _ in 0..WINDOW {
            s.record(Duration::from_millis(30));
        }
        assert_eq!(s.margin(1, 1), MAX_SPIN);
        assert_eq!(s.margin(SPIN_MAX_DUE, 1), MAX_SPIN);
        assert_eq!(
            s.margin(0, 1),
            Duration::ZERO,
            "no frame due: nothing to be late for"
        );
        assert_eq!(
            s.margin(SPIN_MAX_DUE + 1, 1),
            Duration::ZERO,
            "many streams"
        );
        // Frames on all four ticks of a period: a tenth of a core is 500 µs a tick.
        assert_eq!(s.margin(SPIN_MAX_DUE, 4), us(500));
    }
}
