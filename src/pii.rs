//! Personal data in logs: wrap customer numbers, SIP URIs and IP addresses in [`Pii`] when
//! logging them (`from = %Pii(&from)`).
//!
//! By default a `Pii` prints a masked form: a phone number keeps a few leading and trailing digits
//! (`+1555***4567`), a URI keeps only its scheme (`sip:{REDACTED}`), and anything else, IP
//! addresses included, prints `{REDACTED}`. [`set_unmasked`]`(true)` — which
//! [`crate::telemetry::init`] calls when the log level is `debug` or `trace` — prints values as
//! they are, for troubleshooting. The switch is process-wide.
//!
//! PURE: no I/O; the only state is one atomic flag.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};

static UNMASKED: AtomicBool = AtomicBool::new(false);

/// Print personal data as it is (`true`) or masked (`false`, the default). Call it once at
/// startup, after choosing the log level: unmask only for `debug` or `trace`.
pub fn set_unmasked(unmasked: bool) {
    UNMASKED.store(unmasked, Ordering::Relaxed);
}

/// Whether [`Pii`] values currently print unmasked.
pub fn is_unmasked() -> bool {
    UNMASKED.load(Ordering::Relaxed)
}

/// A value that identifies a person (a phone number, a SIP URI, an IP address). `Display` and
/// `Debug` print it masked unless [`set_unmasked`] turned masking off.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Pii<T>(pub T);

impl<T: fmt::Display> Pii<T> {
    fn render(&self, f: &mut fmt::Formatter<'_>, unmasked: bool) -> fmt::Result {
        if unmasked {
            write!(f, "{}", self.0)
        } else {
            f.write_str(&mask(&self.0.to_string()))
        }
    }
}

impl<T: fmt::Display> fmt::Display for Pii<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.render(f, is_unmasked())
    }
}

impl<T: fmt::Display> fmt::Debug for Pii<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// What a redacted value prints as.
pub const REDACTED: &str = "{REDACTED}";

/// The masked form of `value`, whatever the switch says. Phone numbers (an optional `+`, then
/// digits with optional spaces, `-`, `.` or parentheses) keep up to four leading and four
/// trailing digits and always hide at least three; URIs keep their scheme; the rest is
/// [`REDACTED`].
pub fn mask(value: &str) -> String {
    if let Some(masked) = mask_number(value) {
        return masked;
    }
    if let Some((scheme, _)) = value.split_once(':')
        && matches!(
            scheme.to_ascii_lowercase().as_str(),
            "sip" | "sips" | "tel" | "http" | "https"
        )
    {
        return format!("{scheme}:{REDACTED}");
    }
    REDACTED.to_owned()
}

fn mask_number(value: &str) -> Option<String> {
    let t = value.trim();
    let (plus, rest) = match t.strip_prefix('+') {
        Some(r) => ("+", r),
        None => ("", t),
    };
    if rest.is_empty()
        || !rest
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, ' ' | '-' | '.' | '(' | ')'))
    {
        return None;
    }
    let digits: Vec<char> = rest.chars().filter(char::is_ascii_digit).collect();
    let n = digits.len();
    // Dotted quads are IP addresses, not numbers.
    if n == 0 || rest.matches('.').count() == 3 {
        return None;
    }
    let keep = (n.saturating_sub(3) / 2).min(4);
    let head: String = digits[..keep].iter().collect();
    let tail: String = digits[n - keep..].iter().collect();
    Some(format!("{plus}{head}***{tail}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, SocketAddr};

    #[test]
    fn phone_numbers_keep_a_few_digits() {
        assert_eq!(mask("+15551234567"), "+1555***4567");
        assert_eq!(mask("15551234567"), "1555***4567");
        assert_eq!(mask("+44 7911 123456"), "+4479***3456");
        assert_eq!(mask("5551234567"), "555***567");
        assert_eq!(mask("1234567"), "12***67");
        assert_eq!(mask("1001"), "***");
        assert_eq!(mask("7"), "***");
    }

    #[test]
    fn at_least_three_digits_are_hidden() {
        for n in 1..=20 {
            let number: String = "9".repeat(n);
            let shown = mask(&number).chars().filter(char::is_ascii_digit).count();
            assert!(n - shown >= 3.min(n), "{n} digits: {}", mask(&number));
        }
    }

    #[test]
    fn uris_and_addresses_are_redacted() {
        assert_eq!(mask("sip:+15551234567@192.0.2.1:5060"), "sip:{REDACTED}");
        assert_eq!(mask("tel:+15551234567"), "tel:{REDACTED}");
        assert_eq!(mask("192.0.2.1"), REDACTED);
        assert_eq!(mask("192.0.2.1:5060"), REDACTED);
        assert_eq!(mask("2001:db8::1"), REDACTED);
        assert_eq!(mask("[2001:db8::1]:5060"), REDACTED);
        assert_eq!(mask("Alice Smith"), REDACTED);
        assert_eq!(mask(""), REDACTED);
    }

    /// Formats with an explicit switch, so no test flips the process-wide flag (a PII-leak
    /// test elsewhere in the binary must never observe it on).
    struct With<T>(Pii<T>, bool);

    impl<T: fmt::Display> fmt::Display for With<T> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            self.0.render(f, self.1)
        }
    }

    #[test]
    fn masked_by_default_and_unmasked_on_request() {
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let sa: SocketAddr = "192.0.2.1:5060".parse().unwrap();
        assert!(
            !is_unmasked(),
            "masking is on unless telemetry turns it off"
        );
        assert_eq!(Pii(ip).to_string(), REDACTED);
        assert_eq!(format!("{:?}", Pii(&sa)), REDACTED);
        assert_eq!(Pii("+15551234567").to_string(), "+1555***4567");
        assert_eq!(With(Pii(ip), true).to_string(), "192.0.2.1");
        assert_eq!(With(Pii("+15551234567"), true).to_string(), "+15551234567");
        assert_eq!(With(Pii("+15551234567"), false).to_string(), "+1555***4567");
        set_unmasked(false);
        assert!(!is_unmasked());
    }
}
