//! The only place Hammond reads a real clock. It follows tokio's paused clock in tests, so shell
//! code driven by `#[tokio::test(start_paused = true)]` runs in virtual time.

use std::time::Instant;

/// Monotonic now, for timers and pacing.
pub fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// Wall-clock now, for timestamps stored and shown to people.
pub fn wall() -> jiff::Timestamp {
    #[allow(clippy::disallowed_methods)]
    let now = std::time::SystemTime::now();
    jiff::Timestamp::try_from(now).expect("system clock within jiff's range")
}
