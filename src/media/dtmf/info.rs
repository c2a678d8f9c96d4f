//! DTMF in SIP INFO bodies (RFC 6086 carries them; the formats are de-facto):
//! `application/dtmf-relay` (`Signal=5\r\nDuration=160`, as Cisco/Asterisk send it) and
//! `application/dtmf` (the body is just the key). Keys are `0`-`9`, `*`, `#`, `A`-`D`, or the
//! RFC 4733 event codes 10-15 (`10` = `*`, `11` = `#`). Tolerant of case and whitespace, strict
//! about everything else. PURE.

use super::Digit;

/// Largest INFO body we look at.
pub const MAX_BODY: usize = 1024;

/// Why an INFO body does not carry a digit (the peer's fault → 415 or 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InfoError {
    /// Neither `application/dtmf-relay` nor `application/dtmf` (→ 415 Unsupported Media Type).
    #[error("unsupported INFO content type")]
    UnsupportedContentType,
    /// Larger than [`MAX_BODY`] or not UTF-8.
    #[error("malformed INFO body")]
    Malformed,
    /// A `dtmf-relay` body without a `Signal=` line.
    #[error("INFO body has no Signal")]
    MissingSignal,
    /// The signal is not a DTMF key.
    #[error("INFO signal is not a DTMF key")]
    InvalidSignal,
}

fn signal(value: &str) -> Result<Digit, InfoError> {
    let v = value.trim();
    let mut chars = v.chars();
    if let (Some(c), None) = (chars.next(), chars.next()) {
        return Digit::from_char(c).ok_or(InfoError::InvalidSignal);
    }
    v.parse::<u8>()
        .ok()
        .and_then(Digit::from_event)
        .ok_or(InfoError::InvalidSignal)
}

/// Extract the digit from an INFO request. `content_type` is the Content-Type header value
/// (parameters allowed); call for every INFO in a call's dialog.
pub fn parse(content_type: &str, body: &[u8]) -> Result<Digit, InfoError> {
    let mime = content_type.split(';').next().unwrap_or("").trim();
    let relay = if mime.eq_ignore_ascii_case("application/dtmf-relay") {
        true
    } else if mime.eq_ignore_ascii_case("application/dtmf") {
        false
    } else {
        return Err(InfoError::UnsupportedContentType);
    };
    if body.len() > MAX_BODY {
        return Err(InfoError::Malformed);
    }
    let text = std::str::from_utf8(body).map_err(|_| InfoError::Malformed)?;
    if !relay {
        return signal(text);
    }
    for line in text.lines() {
        if let Some((key, value)) = line.split_once('=')
            && key.trim().eq_ignore_ascii_case("signal")
        {
            return signal(value);
        }
    }
    Err(InfoError::MissingSignal)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(ct: &str, body: &str) -> char {
        parse(ct, body.as_bytes()).unwrap().as_char()
    }

    #[test]
    fn dtmf_relay_bodies() {
        assert_eq!(
            ok("application/dtmf-relay", "Signal=5\r\nDuration=160\r\n"),
            '5'
        );
        assert_eq!(
            ok(
                "Application/DTMF-Relay; charset=utf-8",
                "signal = #\nduration=100"
            ),
            '#'
        );
        assert_eq!(
            ok("application/dtmf-relay", "Duration=160\r\nSIGNAL= *\r\n"),
            '*'
        );
        assert_eq!(ok("application/dtmf-relay", "Signal=10\r\n"), '*');
        assert_eq!(ok("application/dtmf-relay", "Signal=11\r\n"), '#');
        assert_eq!(ok("application/dtmf-relay", "Signal=b\r\n"), 'B');
    }

    #[test]
    fn plain_dtmf_bodies() {
        assert_eq!(ok("application/dtmf", "5"), '5');
        assert_eq!(ok(" application/dtmf ", " 0\r\n"), '0');
        assert_eq!(ok("application/dtmf", "11"), '#');
        assert_eq!(ok("application/dtmf", "D"), 'D');
    }

    #[test]
    fn errors() {
        use InfoError::*;
        assert_eq!(parse("text/plain", b"5"), Err(UnsupportedContentType));
        assert_eq!(
            parse("application/dtmf-relay", b"Duration=160"),
            Err(MissingSignal)
        );
        assert_eq!(
            parse("application/dtmf-relay", b"Signal=E"),
            Err(InvalidSignal)
        );
        assert_eq!(
            parse("application/dtmf-relay", b"Signal="),
            Err(InvalidSignal)
        );
        assert_eq!(parse("application/dtmf", b"16"), Err(InvalidSignal));
        assert_eq!(parse("application/dtmf", b"55"), Err(InvalidSignal));
        assert_eq!(parse("application/dtmf", b""), Err(InvalidSignal));
        assert_eq!(parse("application/dtmf", &[0xFF, 0xFE]), Err(Malformed));
        assert_eq!(parse("application/dtmf", &[b'1'; 2000]), Err(Malformed));
    }
}
