//! Logging setup: one `tracing-subscriber` fmt layer with an env filter. SHELL: touches the
//! process environment, the terminal and the global subscriber; call it once, from `main`.
//!
//! Levels follow the style guide: `error` = we broke a call, `warn` = a peer or dependency
//! misbehaved, `info` = one line per lifecycle step, `debug` = transaction/dialog transitions,
//! `trace` = full messages. At `debug` and `trace` personal data is printed unmasked
//! (see [`crate::pii`]).

use std::io::IsTerminal;
use std::sync::Once;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::LevelFilter;

/// Install the global subscriber: compact lines on stderr, ANSI colours only on a terminal.
///
/// `level` is a filter such as `"info"` or `"hammond=debug,sqlx=warn"`; a non-empty `RUST_LOG`
/// wins over it. An invalid filter falls back to `info` with a warning. Unmasks [`crate::pii`]
/// when the most verbose enabled level is `debug` or `trace`. A second call does nothing.
pub fn init(level: &str) {
    let (filter, bad) = filter_for(std::env::var("RUST_LOG").ok().as_deref(), level);
    crate::pii::set_unmasked(unmasks_pii(&filter));
    let installed = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .compact()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init()
        .is_ok();
    if let (true, Some(bad)) = (installed, bad) {
        tracing::warn!("{bad}; logging at info");
    }
}

/// For tests: install a subscriber that writes through the test harness (shown only for failing
/// tests), at `RUST_LOG` or `debug`. Safe to call from every test; only the first call acts.
/// PII stays masked so tests can check that nothing leaks.
pub fn init_for_tests() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let (filter, _) = filter_for(std::env::var("RUST_LOG").ok().as_deref(), "debug");
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .compact()
            .with_test_writer()
            .try_init();
    });
}

/// The filter from `rust_log` when it is set and valid, else from `level`, else `info`; plus
/// a message describing what was invalid.
fn filter_for(rust_log: Option<&str>, level: &str) -> (EnvFilter, Option<String>) {
    let mut bad = None;
    if let Some(directives) = rust_log.filter(|s| !s.trim().is_empty()) {
        match EnvFilter::try_new(directives) {
            Ok(f) => return (f, None),
            Err(e) => bad = Some(format!("invalid RUST_LOG {directives:?}: {e}")),
        }
    }
    // A bare word that is not a level would parse as a target name enabled at `trace`: a typo
    // like "inf0" must not silently log nothing and unmask PII.
    let bare = !level.contains(['=', ',', ':', '[']);
    let known = ["off", "error", "warn", "info", "debug", "trace"];
    if bare && !known.contains(&level.trim().to_ascii_lowercase().as_str()) {
        return (
            EnvFilter::new("info"),
            Some(format!(
                "invalid log level {level:?}: expected one of {}",
                known.join(", ")
            )),
        );
    }
    match EnvFilter::try_new(level) {
        Ok(f) => (quiet_webrtc(f), bad),
        Err(e) => (
            EnvFilter::new("info"),
            Some(format!("invalid log level {level:?}: {e}")),
        ),
    }
}

/// webrtc-rs (the browser phone's peer connections) logs several lines per call at `info`
/// (and `warn`s about every TLS extension Chromium offers that DTLS 1.2 does not know), with
/// the browser's addresses unmasked: below `RUST_LOG`, only its errors are shown.
fn quiet_webrtc(filter: EnvFilter) -> EnvFilter {
    [
        "rtc", "rtc_ice", "rtc_dtls", "rtc_srtp", "rtc_sctp", "rtc_mdns",
    ]
    .iter()
    .filter_map(|t| format!("{t}=error").parse().ok())
    .fold(filter, EnvFilter::add_directive)
}

/// Whether `filter` enables `debug` or `trace` anywhere.
fn unmasks_pii(filter: &EnvFilter) -> bool {
    filter
        .max_level_hint()
        .is_some_and(|max| max >= LevelFilter::DEBUG)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rust_log_wins() {
        let (f, bad) = filter_for(Some("hammond=trace"), "info");
        assert!(bad.is_none());
        assert!(unmasks_pii(&f));
        let (f, _) = filter_for(Some(""), "warn");
        assert!(!unmasks_pii(&f));
    }

    #[test]
    fn debug_and_trace_unmask() {
        for (level, unmask) in [
            ("error", false),
            ("warn", false),
            ("info", false),
            ("debug", true),
            ("trace", true),
            ("info,hammond::sip=debug", true),
        ] {
            let (f, bad) = filter_for(None, level);
            assert!(bad.is_none(), "{level}");
            assert_eq!(unmasks_pii(&f), unmask, "{level}");
        }
    }

    #[test]
    fn invalid_filters_fall_back() {
        let (f, bad) = filter_for(None, "loud");
        assert!(bad.is_some_and(|b| b.contains("invalid log level")));
        assert!(!unmasks_pii(&f));
        let (f, bad) = filter_for(Some("=&="), "debug");
        assert!(bad.is_some_and(|b| b.contains("invalid RUST_LOG")));
        assert!(unmasks_pii(&f), "falls back to the level argument");
    }

    #[test]
    fn test_init_is_idempotent() {
        init_for_tests();
        init_for_tests();
        tracing::debug!(pii = %crate::pii::Pii("+15551234567"), "logged through the test writer");
    }
}
