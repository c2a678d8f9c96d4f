//! DTMF from the three places a key press can arrive: RFC 4733 telephone-events in RTP
//! ([`rfc4733`]), SIP INFO bodies ([`info`]) and in-band tones ([`inband`]). [`dedup`] merges
//! them so one key press counts once. PURE: no sockets, no clocks.

pub mod dedup;
pub mod inband;
pub mod info;
pub mod rfc4733;

use std::fmt;

/// One DTMF key: `0`-`9`, `*`, `#`, `A`-`D`. Shared by all detectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Digit(char);

impl Digit {
    /// The digit for a key character (case-insensitive for `A`-`D`), `None` for anything else.
    pub fn from_char(c: char) -> Option<Self> {
        match c {
            '0'..='9' | '*' | '#' | 'A'..='D' => Some(Self(c)),
            'a'..='d' => Some(Self(c.to_ascii_uppercase())),
            _ => None,
        }
    }

    /// The digit for an RFC 4733 §3.2 event code (0-9, 10 = `*`, 11 = `#`, 12-15 = `A`-`D`).
    pub fn from_event(code: u8) -> Option<Self> {
        match code {
            0..=9 => Some(Self(char::from(b'0' + code))),
            10 => Some(Self('*')),
            11 => Some(Self('#')),
            12..=15 => Some(Self(char::from(b'A' + code - 12))),
            _ => None,
        }
    }

    /// The RFC 4733 §3.2 event code of this digit.
    pub fn event_code(self) -> u8 {
        match self.0 {
            '*' => 10,
            '#' => 11,
            c @ 'A'..='D' => 12 + (c as u8 - b'A'),
            c => c as u8 - b'0',
        }
    }

    /// The key as a character, as shown on the feed (`"digit": "1"`).
    pub fn as_char(self) -> char {
        self.0
    }
}

impl fmt::Display for Digit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// How a digit reached us; recorded on the feed as `"method"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DtmfMethod {
    /// RFC 4733 telephone-event in the RTP stream.
    Rfc4733,
    /// SIP INFO (`application/dtmf-relay` or `application/dtmf`).
    Info,
    /// Tones in the audio itself.
    Inband,
}

impl DtmfMethod {
    /// `"rfc4733"`, `"info"` or `"inband"`, as the feed spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rfc4733 => "rfc4733",
            Self::Info => "info",
            Self::Inband => "inband",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_codes_round_trip() {
        for code in 0..16u8 {
            let d = Digit::from_event(code).unwrap();
            assert_eq!(d.event_code(), code);
            assert_eq!(Digit::from_char(d.as_char()), Some(d));
        }
        assert_eq!(Digit::from_event(16), None);
        assert_eq!(Digit::from_char('e'), None);
        assert_eq!(Digit::from_char('b').unwrap().as_char(), 'B');
        assert_eq!(DtmfMethod::Inband.as_str(), "inband");
    }
}
