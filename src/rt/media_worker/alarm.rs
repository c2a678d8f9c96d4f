//! The media thread's sleep: until an absolute time on the monotonic clock, or until a request
//! wakes it.
//!
//! std's `park_timeout` takes a relative duration, computed before the call: a preemption
//! between reading the clock and sleeping is added to the sleep, and the thread wakes late. A
//! futex wait with an absolute `CLOCK_MONOTONIC` deadline (`FUTEX_WAIT_BITSET`) ends at the
//! deadline however late the sleep began, and a request still ends it at once (a futex wake).
//!
//! The `unsafe` blocks are plain system calls on a word that outlives them.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// A one-thread alarm clock: [`Alarm::sleep_until`] by its owner, [`Alarm::wake`] by anyone.
#[derive(Default)]
pub(super) struct Alarm {
    /// 1 once woken and not yet slept on (a wake is never lost between two sleeps).
    word: AtomicU32,
    /// Tests: every `n`th sleep that ends at its deadline ends this much later, as on a
    /// virtual CPU the host wakes late.
    #[cfg(test)]
    late: std::sync::Mutex<(u32, u32, Duration)>,
}

impl Alarm {
    /// End the current sleep, or the next one at once.
    pub(super) fn wake(&self) {
        if self.word.swap(1, Ordering::Release) == 0 {
            // SAFETY: futex(2) reads the word, which lives as long as `self`.
            unsafe {
                libc::syscall(
                    libc::SYS_futex,
                    self.word.as_ptr(),
                    libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
                    1,
                );
            }
        }
    }

    /// Sleep until the monotonic clock reads `deadline` (see [`monotonic`]), or without end
    /// (`None`), unless woken first. Returns whether a wake ended it; a wake since the last
    /// sleep ends it at once. Signals and spurious returns end it early without a wake: the
    /// caller looks at the clock.
    pub(super) fn sleep_until(&self, deadline: Option<Duration>) -> bool {
        if self.word.swap(0, Ordering::Acquire) == 1 {
            return true;
        }
        let ts = deadline.map(|d| libc::timespec {
            tv_sec: libc::time_t::try_from(d.as_secs()).unwrap_or(libc::time_t::MAX),
            tv_nsec: libc::c_long::from(d.subsec_nanos()),
        });
        let ts_ptr = ts
            .as_ref()
            .map_or(std::ptr::null(), std::ptr::from_ref::<libc::timespec>);
        // SAFETY: futex(2) reads the word and the timespec, both alive across the call. With
        // FUTEX_WAIT_BITSET the timeout is absolute, on CLOCK_MONOTONIC.
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                self.word.as_ptr(),
                libc::FUTEX_WAIT_BITSET | libc::FUTEX_PRIVATE_FLAG,
                0,
                ts_ptr,
                std::ptr::null::<u32>(),
                libc::FUTEX_BITSET_MATCH_ANY,
            );
        }
        let woken = self.word.swap(0, Ordering::Acquire) == 1;
        #[cfg(test)]
        if !woken {
            self.maybe_late();
        }
        woken
    }

    /// Tests: make every `every`th timed sleep end `by` late (0: never).
    #[cfg(test)]
    pub(super) fn wake_late(&self, every: u32, by: Duration) {
        *self.late.lock().unwrap() = (every, 0, by);
    }

    #[cfg(test)]
    fn maybe_late(&self) {
        let by = {
            let mut late = self.late.lock().unwrap();
            let (every, count, by) = &mut *late;
            *count += 1;
            if *every == 0 || *count % *every != 0 {
                return;
            }
            *by
        };
        // Busy: the thread does not run, as if its virtual CPU were not.
        let until = monotonic() + by;
        while monotonic() < until {
            std::hint::spin_loop();
        }
    }
}

/// The monotonic clock (`CLOCK_MONOTONIC`, the one `Instant` reads on Linux), as the time since
/// its origin: the unit of [`Alarm::sleep_until`]'s deadlines.
pub(super) fn monotonic() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime(2) writes only `ts`, which lives across the call.
    unsafe {
        libc::clock_gettime(libc::CLOCK_MONOTONIC, &raw mut ts);
    }
    Duration::new(
        u64::try_from(ts.tv_sec).unwrap_or(0),
        u32::try_from(ts.tv_nsec).unwrap_or(0),
    )
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn sleeps_to_an_absolute_deadline() {
        let alarm = Alarm::default();
        let start = monotonic();
        let deadline = start + Duration::from_millis(20);
        assert!(!alarm.sleep_until(Some(deadline)), "not woken");
        let end = monotonic();
        assert!(end >= deadline, "{:?} early", deadline - end);
        // A deadline already past returns at once.
        assert!(!alarm.sleep_until(Some(start)));
        assert!(monotonic() - end < Duration::from_millis(15));
    }

    #[test]
    fn a_wake_ends_the_sleep_and_is_never_lost() {
        let alarm = Arc::new(Alarm::default());
        // Woken before it sleeps: the next sleep ends at once, once.
        alarm.wake();
        assert!(alarm.sleep_until(None));
        let start = monotonic();
        assert!(!alarm.sleep_until(Some(start + Duration::from_millis(5))));
        // Woken while it sleeps without end.
        let waker = {
            let alarm = alarm.clone();
            std::thread::spawn(move || {
                let delay = Alarm::default();
                assert!(!delay.sleep_until(Some(monotonic() + Duration::from_millis(10))));
                alarm.wake();
            })
        };
        assert!(alarm.sleep_until(None));
        waker.join().unwrap();
    }
}
