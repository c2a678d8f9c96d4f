//! Callback number rules: is this string of digits a number we may call back?
//!
//! PURE. Numbers are digit strings as the caller typed them (DTMF cannot send `+`) or as the PBX
//! presented the caller ID (digits, optionally with a leading `+`). A number is classified as
//! *domestic* (a national number of `national_length` digits, optionally preceded by the
//! `country_code`) or *international* (starting with the `international_prefix`, or a `+`
//! caller ID with a foreign country code, E.164 at most 15 digits). Allowed and blocked prefixes
//! are matched against the full international form without `+` (so `1900` blocks `+1 900 …`).

/// The validated rules of a queue's `[callback]` table that decide which numbers are accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberRules {
    /// Fewest digits a caller may enter.
    pub min_digits: usize,
    /// Most digits a caller may enter.
    pub max_digits: usize,
    /// Country calling code of this queue's country, e.g. `"1"`.
    pub country_code: String,
    /// Digits of a national number without the country code, e.g. 10 in North America.
    pub national_length: usize,
    /// What a caller dials before an international number, e.g. `"011"` or `"00"`.
    pub international_prefix: String,
    /// Whether international numbers are accepted.
    pub international: bool,
    /// When not empty, the full number must start with one of these.
    pub allowed_prefixes: Vec<String>,
    /// The full number must not start with any of these (premium rate, …).
    pub blocked_prefixes: Vec<String>,
}

/// Why a number was refused. Shown on the feed and in the simulator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NumberError {
    #[error("no number")]
    Empty,
    #[error("contains something other than digits")]
    NotDigits,
    #[error("too short (at least {min} digits)")]
    TooShort { min: usize },
    #[error("too long (at most {max} digits)")]
    TooLong { max: usize },
    #[error("not a national number ({national} digits, optionally after country code {cc})")]
    WrongLength { national: usize, cc: String },
    #[error("international numbers are not accepted")]
    International,
    #[error("numbers starting with {0} are blocked")]
    Blocked(String),
    #[error("not in an allowed range")]
    NotAllowed,
}

impl NumberRules {
    /// Check digits the caller typed (after `#` or the inter-digit timeout).
    pub fn check_entered(&self, digits: &str) -> Result<(), NumberError> {
        if digits.is_empty() {
            return Err(NumberError::Empty);
        }
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(NumberError::NotDigits);
        }
        if digits.len() < self.min_digits {
            return Err(NumberError::TooShort {
                min: self.min_digits,
            });
        }
        if digits.len() > self.max_digits {
            return Err(NumberError::TooLong {
                max: self.max_digits,
            });
        }
        let full = if !self.international_prefix.is_empty()
            && digits.starts_with(&self.international_prefix)
        {
            digits[self.international_prefix.len()..].to_owned()
        } else if digits.len() == self.national_length {
            format!("{}{digits}", self.country_code)
        } else if digits.starts_with(&self.country_code)
            && digits.len() == self.country_code.len() + self.national_length
        {
            digits.to_owned()
        } else {
            return Err(self.wrong_length());
        };
        self.check_full(&full)
    }

    /// Check a caller ID as the PBX presented it (`+15551234567`, `15551234567`, `5551234567`).
    /// Anything else (`anonymous`, empty) is refused and the caller is asked to enter a number.
    pub fn check_caller_id(&self, caller: &str) -> Result<(), NumberError> {
        match caller.strip_prefix('+') {
            Some(rest) => {
                if rest.is_empty() || !rest.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(NumberError::NotDigits);
                }
                self.check_full(rest)
            }
            None => self.check_entered(caller),
        }
    }

    fn wrong_length(&self) -> NumberError {
        NumberError::WrongLength {
            national: self.national_length,
            cc: self.country_code.clone(),
        }
    }

    /// `full` is the number in international form without `+`.
    fn check_full(&self, full: &str) -> Result<(), NumberError> {
        let domestic = full.starts_with(&self.country_code)
            && full.len() == self.country_code.len() + self.national_length;
        if !domestic {
            if full.starts_with(&self.country_code) && !self.international {
                return Err(self.wrong_length());
            }
            if !self.international {
                return Err(NumberError::International);
            }
            // E.164: at most 15 digits; anything under 8 is not a real international number.
            if !(8..=15).contains(&full.len()) {
                return Err(self.wrong_length());
            }
        }
        if let Some(p) = self
            .blocked_prefixes
            .iter()
            .find(|p| full.starts_with(p.as_str()))
        {
            return Err(NumberError::Blocked(p.clone()));
        }
        if !self.allowed_prefixes.is_empty()
            && !self
                .allowed_prefixes
                .iter()
                .any(|p| full.starts_with(p.as_str()))
        {
            return Err(NumberError::NotAllowed);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nanp() -> NumberRules {
        NumberRules {
            min_digits: 10,
            max_digits: 15,
            country_code: "1".into(),
            national_length: 10,
            international_prefix: "011".into(),
            international: false,
            allowed_prefixes: vec![],
            blocked_prefixes: vec!["1900".into(), "1976".into()],
        }
    }

    #[test]
    fn north_american_numbers_are_accepted_with_or_without_the_one() {
        let r = nanp();
        assert_eq!(r.check_entered("15551234567"), Ok(()));
        assert_eq!(r.check_entered("5551234567"), Ok(()));
        assert_eq!(r.check_caller_id("+15551234567"), Ok(()));
        assert_eq!(r.check_caller_id("15551234567"), Ok(()));
    }

    #[test]
    fn bad_numbers_say_why() {
        let r = nanp();
        assert_eq!(
            r.check_entered("555123"),
            Err(NumberError::TooShort { min: 10 })
        );
        assert_eq!(
            r.check_entered("1555123456789012"),
            Err(NumberError::TooLong { max: 15 })
        );
        assert!(matches!(
            r.check_entered("555123456789"),
            Err(NumberError::WrongLength { .. })
        ));
        assert_eq!(
            r.check_entered("19005551234"),
            Err(NumberError::Blocked("1900".into()))
        );
        assert_eq!(
            r.check_entered("9005551234"),
            Err(NumberError::Blocked("1900".into()))
        );
        assert_eq!(
            r.check_entered("011442071234567"),
            Err(NumberError::International)
        );
        assert_eq!(
            r.check_caller_id("+442071234567"),
            Err(NumberError::International)
        );
        assert_eq!(r.check_caller_id("anonymous"), Err(NumberError::NotDigits));
        assert_eq!(r.check_caller_id(""), Err(NumberError::Empty));
    }

    #[test]
    fn international_and_allowed_prefixes_when_configured() {
        let mut r = nanp();
        r.international = true;
        assert_eq!(r.check_entered("011442071234567"), Ok(()));
        assert_eq!(r.check_caller_id("+442071234567"), Ok(()));
        r.allowed_prefixes = vec!["1555".into()];
        assert_eq!(
            r.check_entered("011442071234567"),
            Err(NumberError::NotAllowed)
        );
        assert_eq!(r.check_entered("5551234567"), Ok(()));
    }
}
