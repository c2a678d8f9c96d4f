//! Merging the three DTMF sources of one call so that a key press counts once.
//!
//! A phone may signal one press both as RFC 4733 events and as SIP INFO, and the in-band
//! detector hears the tones too, typically some tens of milliseconds after the events. Each
//! detector already reports one digit per press of its own, so a report is a duplicate only if
//! a *different* method reported the same digit within the window after that press's first
//! report and has not been matched yet. Two real presses of the same key, even reported by
//! several methods each, therefore count twice. PURE, allocation-free.

use std::time::{Duration, Instant};

use super::{Digit, DtmfMethod};

/// Default window after a press's first report in which other methods' reports are merged.
pub const DEFAULT_WINDOW: Duration = Duration::from_millis(150);

const SLOTS: usize = 8;

#[derive(Debug, Clone, Copy)]
struct Press {
    first: Instant,
    digit: Digit,
    /// Bit set of `DtmfMethod`s that reported this press.
    methods: u8,
}

fn bit(m: DtmfMethod) -> u8 {
    match m {
        DtmfMethod::Rfc4733 => 1,
        DtmfMethod::Info => 2,
        DtmfMethod::Inband => 4,
    }
}

/// Remembers recent presses of one call. Create one per call.
#[derive(Debug, Clone)]
pub struct Dedup {
    window: Duration,
    presses: [Option<Press>; SLOTS],
    next: usize,
}

impl Default for Dedup {
    fn default() -> Self {
        Self::new(DEFAULT_WINDOW)
    }
}

impl Dedup {
    /// A deduplicator merging reports within `window` of a press's first report.
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            presses: [None; SLOTS],
            next: 0,
        }
    }

    /// Call with every digit any detector reports. Returns `true` if it is a new key press (act
    /// on it, record it on the feed with `method`), `false` if another method already reported it.
    pub fn accept(&mut self, now: Instant, digit: Digit, method: DtmfMethod) -> bool {
        let b = bit(method);
        let window = self.window;
        let matched = self
            .presses
            .iter_mut()
            .flatten()
            .filter(|p| {
                p.digit == digit
                    && p.methods & b == 0
                    && now.saturating_duration_since(p.first) <= window
            })
            .min_by_key(|p| p.first);
        if let Some(p) = matched {
            p.methods |= b;
            return false;
        }
        self.presses[self.next] = Some(Press {
            first: now,
            digit,
            methods: b,
        });
        self.next = (self.next + 1) % SLOTS;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use DtmfMethod::*;

    fn d(c: char) -> Digit {
        Digit::from_char(c).unwrap()
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn one_press_reported_three_ways_counts_once() {
        let t0 = crate::clock::now();
        let mut dd = Dedup::default();
        assert!(dd.accept(t0, d('5'), Rfc4733));
        assert!(!dd.accept(t0 + ms(10), d('5'), Info));
        assert!(!dd.accept(t0 + ms(90), d('5'), Inband));
    }

    #[test]
    fn two_presses_of_the_same_key_count_twice() {
        let t0 = crate::clock::now();
        let mut dd = Dedup::default();
        // Fast presses from one method are never merged.
        assert!(dd.accept(t0, d('1'), Rfc4733));
        assert!(dd.accept(t0 + ms(100), d('1'), Rfc4733));
        // Two presses, each also heard in-band 60 ms later.
        let t1 = t0 + ms(1000);
        assert!(dd.accept(t1, d('7'), Rfc4733));
        assert!(!dd.accept(t1 + ms(60), d('7'), Inband));
        assert!(dd.accept(t1 + ms(200), d('7'), Rfc4733));
        assert!(!dd.accept(t1 + ms(260), d('7'), Inband));
    }

    #[test]
    fn the_lagging_method_first_and_outside_the_window() {
        let t0 = crate::clock::now();
        let mut dd = Dedup::default();
        assert!(dd.accept(t0, d('#'), Inband));
        assert!(!dd.accept(t0 + ms(20), d('#'), Rfc4733));
        // Too late to be the same press.
        assert!(dd.accept(t0 + ms(400), d('#'), Info));
        // Different digits never merge.
        assert!(dd.accept(t0 + ms(401), d('1'), Rfc4733));
        assert!(dd.accept(t0 + ms(402), d('2'), Inband));
    }
}
