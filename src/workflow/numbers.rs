//! Callback number rules: is this string of digits a number we may call back?
//!
//! PURE. Numbers are digit strings as the caller typed them (DTMF cannot send `+`) or as the PBX
//! presented the caller ID (digits, optionally with a leading `+`). Typed digits are first put
//! in international form (E.164 without `+`): after the `international_prefix` they already
//! are; a national number of `national_length` digits gets the `country_code` in front; the
//! country code followed by a national number is taken as it is.
//!
//! That number is then checked, in this order, and the first rule it breaks is the reason:
//! 1. `blocked_prefixes`: the operator's own list (`1900` blocks `+1 900 …`; `x` is any digit,
//!    so `1xxx976` blocks the 976 exchange of every North American area code).
//! 2. The numbering plan, from libphonenumber's metadata (the `phonenumber` crate): the number
//!    must be a valid number of some region. Numbers under `fictional_prefixes` skip this rule
//!    and the next two (the 555 numbers of films, demos and tests are not real numbers; see
//!    `config/queues/support.toml`).
//! 3. The region: unless `international`, the number must belong to the queue's `region`.
//!    The country code alone is not enough: `+1 876` is Jamaica and `+1 809` the Dominican
//!    Republic, international calls at international rates, yet they share code 1 with the US.
//! 4. The number type: only `allowed_types` (by default fixed line, mobile, toll free and
//!    VoIP); premium rate, shared cost, personal numbers, UAN and the rest are refused.
//! 5. `allowed_prefixes`: when not empty, the number must start with one of them.

use phonenumber::Type;

/// The validated rules of a queue's `[callback]` table that decide which numbers are accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberRules {
    /// Fewest digits a caller may enter.
    pub min_digits: usize,
    /// Most digits a caller may enter.
    pub max_digits: usize,
    /// Country calling code of this queue's country, e.g. `"1"`.
    pub country_code: String,
    /// The queue's region (ISO 3166 code, e.g. `"US"`): domestic numbers belong to it.
    pub region: String,
    /// Digits of a national number without the country code, e.g. 10 in North America.
    pub national_length: usize,
    /// What a caller dials before an international number, e.g. `"011"` or `"00"`.
    pub international_prefix: String,
    /// Whether numbers of other regions are accepted.
    pub international: bool,
    /// Number types that may be called back.
    pub allowed_types: Vec<NumberType>,
    /// When not empty, the full number must start with one of these (`x` = any digit).
    pub allowed_prefixes: Vec<String>,
    /// The full number must not start with any of these (`x` = any digit).
    pub blocked_prefixes: Vec<String>,
    /// Numbers starting with these skip the numbering-plan, region and type checks (fictional
    /// numbers for tests and demos); the prefix rules still apply.
    pub fictional_prefixes: Vec<String>,
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
    #[error("not a valid phone number")]
    Invalid,
    #[error("international numbers are not accepted")]
    International,
    #[error("{0} numbers are not accepted")]
    Type(NumberType),
    #[error("numbers starting with {0} are blocked")]
    Blocked(String),
    #[error("not in an allowed range")]
    NotAllowed,
}

/// A number's type in libphonenumber's metadata, named as queue files write it
/// (`allowed_types = ["fixed_line", "mobile"]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NumberType {
    FixedLine,
    Mobile,
    /// Where the plan cannot tell (all of North America).
    FixedLineOrMobile,
    TollFree,
    PremiumRate,
    SharedCost,
    PersonalNumber,
    Voip,
    Pager,
    /// "Universal access" company numbers.
    Uan,
    Voicemail,
    /// Anything else the metadata knows (emergency, short codes, carrier-specific) or nothing.
    Other,
}

impl NumberType {
    /// Every type, in the order error messages list them.
    pub const ALL: [Self; 12] = [
        Self::FixedLine,
        Self::Mobile,
        Self::FixedLineOrMobile,
        Self::TollFree,
        Self::PremiumRate,
        Self::SharedCost,
        Self::PersonalNumber,
        Self::Voip,
        Self::Pager,
        Self::Uan,
        Self::Voicemail,
        Self::Other,
    ];

    /// What a queue may call back when its file does not say: numbers that reach a person at
    /// an ordinary (or no) cost to the caller, never premium rate or shared cost.
    pub const DEFAULT_ALLOWED: [Self; 5] = [
        Self::FixedLine,
        Self::Mobile,
        Self::FixedLineOrMobile,
        Self::TollFree,
        Self::Voip,
    ];

    /// The name in queue files.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FixedLine => "fixed_line",
            Self::Mobile => "mobile",
            Self::FixedLineOrMobile => "fixed_line_or_mobile",
            Self::TollFree => "toll_free",
            Self::PremiumRate => "premium_rate",
            Self::SharedCost => "shared_cost",
            Self::PersonalNumber => "personal_number",
            Self::Voip => "voip",
            Self::Pager => "pager",
            Self::Uan => "uan",
            Self::Voicemail => "voicemail",
            Self::Other => "other",
        }
    }

    /// The type named `s` in a queue file.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    fn of(t: Type) -> Self {
        match t {
            Type::FixedLine => Self::FixedLine,
            Type::Mobile => Self::Mobile,
            Type::FixedLineOrMobile => Self::FixedLineOrMobile,
            Type::TollFree => Self::TollFree,
            Type::PremiumRate => Self::PremiumRate,
            Type::SharedCost => Self::SharedCost,
            Type::PersonalNumber => Self::PersonalNumber,
            Type::Voip => Self::Voip,
            Type::Pager => Self::Pager,
            Type::Uan => Self::Uan,
            Type::Voicemail => Self::Voicemail,
            Type::Emergency
            | Type::ShortCode
            | Type::StandardRate
            | Type::Carrier
            | Type::NoInternational
            | Type::Unknown => Self::Other,
        }
    }
}

impl std::fmt::Display for NumberType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.as_str().replace('_', " "))
    }
}

/// The main region of a country calling code (`1` → `US`, `44` → `GB`), for a queue file
/// that gives `country_code` but no `region`.
pub fn main_region(country_code: &str) -> Option<String> {
    let code: u16 = country_code.parse().ok()?;
    let regions = phonenumber::metadata::DATABASE.by_code(&code)?;
    regions
        .iter()
        .find(|m| m.is_main_country_for_code())
        .or_else(|| regions.first())
        .map(|m| m.id().to_owned())
}

/// The country calling code of `region` (`"US"` → 1), `None` for an unknown region.
pub fn region_code(region: &str) -> Option<u16> {
    phonenumber::metadata::DATABASE
        .by_id(region)
        .map(phonenumber::Metadata::country_code)
}

/// Does `number` start with `prefix`, where an `x` in the prefix is any digit?
pub fn has_prefix(number: &str, prefix: &str) -> bool {
    number.len() >= prefix.len()
        && prefix
            .bytes()
            .zip(number.bytes())
            .all(|(p, n)| p == n || (p.eq_ignore_ascii_case(&b'x') && n.is_ascii_digit()))
}

impl NumberRules {
    /// Check digits the caller typed (after `#` or the inter-digit timeout).
    pub fn check_entered(&self, digits: &str) -> Result<(), NumberError> {
        let full = self.entered_full(digits)?;
        self.check_full(&full)
    }

    /// Check a caller ID as the PBX presented it (`+15551234567`, `15551234567`, `5551234567`).
    /// Anything else (`anonymous`, empty) is refused and the caller is asked to enter a number.
    pub fn check_caller_id(&self, caller: &str) -> Result<(), NumberError> {
        self.canonical(caller).map(drop)
    }

    /// A number given in writing (the API: `+15551234567`, `15551234567`, `5551234567`,
    /// `011…`; spaces, dots, dashes and brackets are ignored), checked as a caller ID and put
    /// in one form, `+` and the international digits, so one number is one callback whichever
    /// way it was written.
    pub fn canonical(&self, number: &str) -> Result<String, NumberError> {
        let cleaned: String = number
            .chars()
            .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
            .collect();
        let full = match cleaned.strip_prefix('+') {
            Some(rest) => {
                if rest.is_empty() || !rest.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(NumberError::NotDigits);
                }
                rest.to_owned()
            }
            None => self.entered_full(&cleaned)?,
        };
        self.check_full(&full)?;
        Ok(format!("+{full}"))
    }

    /// Typed digits in international form (without `+`), or why they cannot be.
    fn entered_full(&self, digits: &str) -> Result<String, NumberError> {
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
        if !self.international_prefix.is_empty() && digits.starts_with(&self.international_prefix) {
            Ok(digits[self.international_prefix.len()..].to_owned())
        } else if digits.len() == self.national_length {
            Ok(format!("{}{digits}", self.country_code))
        } else if digits.starts_with(&self.country_code)
            && digits.len() == self.country_code.len() + self.national_length
        {
            Ok(digits.to_owned())
        } else {
            Err(self.wrong_length())
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
        // E.164: at most 15 digits; anything under 8 is not a real international number.
        if !(8..=15).contains(&full.len()) {
            return Err(self.wrong_length());
        }
        if let Some(p) = self.blocked_prefixes.iter().find(|p| has_prefix(full, p)) {
            return Err(NumberError::Blocked(p.clone()));
        }
        if self.fictional_prefixes.iter().any(|p| has_prefix(full, p)) {
            // Not in any numbering plan: only the country code says whether it is ours.
            let domestic = full.starts_with(&self.country_code)
                && full.len() == self.country_code.len() + self.national_length;
            if !domestic && !self.international {
                return Err(NumberError::International);
            }
        } else {
            self.check_plan(full)?;
        }
        if !self.allowed_prefixes.is_empty()
            && !self.allowed_prefixes.iter().any(|p| has_prefix(full, p))
        {
            return Err(NumberError::NotAllowed);
        }
        Ok(())
    }

    /// Rules 2-4 of the module docs: a valid number, of our region unless `international`,
    /// of an allowed type.
    fn check_plan(&self, full: &str) -> Result<(), NumberError> {
        let number = phonenumber::parse(None, format!("+{full}"))
            .ok()
            .filter(phonenumber::PhoneNumber::is_valid)
            .ok_or(NumberError::Invalid)?;
        let region = number.country().id();
        if !self.international && region.is_none_or(|r| r.as_ref() != self.region) {
            return Err(NumberError::International);
        }
        let kind = NumberType::of(number.number_type(&phonenumber::metadata::DATABASE));
        if !self.allowed_types.contains(&kind) {
            return Err(NumberError::Type(kind));
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
            region: "US".into(),
            national_length: 10,
            international_prefix: "011".into(),
            international: false,
            allowed_types: NumberType::DEFAULT_ALLOWED.to_vec(),
            allowed_prefixes: vec![],
            blocked_prefixes: vec!["1900".into(), "1xxx976".into()],
            fictional_prefixes: vec!["1555".into()],
        }
    }

    /// Issue 21: a number written for the API is checked as a caller ID and given one form.
    #[test]
    fn a_written_number_has_one_canonical_form() {
        let r = nanp();
        for n in [
            "+1 555 123 4567",
            "15551234567",
            "(555) 123-4567",
            "555.123.4567",
        ] {
            assert_eq!(r.canonical(n), Ok("+15551234567".into()), "{n}");
        }
        assert_eq!(
            r.canonical("+1 900 555 0199"),
            Err(NumberError::Blocked("1900".into()))
        );
        assert_eq!(
            r.canonical("+1 876 555 0199").unwrap_err(),
            NumberError::International
        );
        assert_eq!(r.canonical("call me"), Err(NumberError::NotDigits));
    }

    #[test]
    fn north_american_numbers_are_accepted_with_or_without_the_one() {
        let r = nanp();
        assert_eq!(r.check_entered("12125550123"), Ok(()));
        assert_eq!(r.check_entered("2125550123"), Ok(()));
        assert_eq!(r.check_caller_id("+12125550123"), Ok(()));
        assert_eq!(r.check_caller_id("12125550123"), Ok(()));
        // Toll free is fine by default.
        assert_eq!(r.check_entered("18005551234"), Ok(()));
    }

    /// libphonenumber says +1 555 123 4567 is no number at all (555 is not an area code);
    /// the shipped queue lists 1555 as fictional so tests and demos keep working.
    #[test]
    fn fictional_numbers_pass_only_under_their_prefix() {
        let r = nanp();
        assert_eq!(r.check_entered("15551234567"), Ok(()));
        assert_eq!(r.check_entered("5551234567"), Ok(()));
        assert_eq!(r.check_caller_id("+15551234567"), Ok(()));
        let mut strict = nanp();
        strict.fictional_prefixes.clear();
        assert_eq!(
            strict.check_entered("15551234567"),
            Err(NumberError::Invalid)
        );
    }

    /// Issue 19: with `international = false`, Caribbean NANP numbers counted as domestic
    /// (they share country code 1), and `1976` never matched a 976-exchange premium number.
    #[test]
    fn toll_fraud_numbers_are_refused() {
        let r = nanp();
        for (n, why) in [
            ("18765551234", "Jamaica"),
            ("8765551234", "Jamaica, national form"),
            ("18095551234", "Dominican Republic"),
            (
                "12845551234",
                "British Virgin Islands (not even a valid number there)",
            ),
            ("16135550123", "Canada: another region"),
        ] {
            assert!(
                matches!(
                    r.check_entered(n),
                    Err(NumberError::International | NumberError::Invalid)
                ),
                "{why}: {n} {:?}",
                r.check_entered(n)
            );
        }
        assert_eq!(
            r.check_caller_id("+18765551234"),
            Err(NumberError::International)
        );
        assert_eq!(
            r.check_entered("12129761234"),
            Err(NumberError::Blocked("1xxx976".into()))
        );
        assert_eq!(
            r.check_entered("3109761234"),
            Err(NumberError::Blocked("1xxx976".into()))
        );
        // Premium rate by type, even without a blocked prefix.
        let mut no_blocks = nanp();
        no_blocks.blocked_prefixes.clear();
        assert_eq!(
            no_blocks.check_entered("19005551234"),
            Err(NumberError::Type(NumberType::PremiumRate))
        );
    }

    #[test]
    fn number_types_are_a_per_queue_choice() {
        let mut uk = NumberRules {
            min_digits: 10,
            max_digits: 15,
            country_code: "44".into(),
            region: "GB".into(),
            national_length: 10,
            international_prefix: "00".into(),
            international: false,
            allowed_types: NumberType::DEFAULT_ALLOWED.to_vec(),
            allowed_prefixes: vec![],
            blocked_prefixes: vec![],
            fictional_prefixes: vec![],
        };
        assert_eq!(uk.check_caller_id("+442071234567"), Ok(()));
        assert_eq!(
            uk.check_caller_id("+448712345678"),
            Err(NumberError::Type(NumberType::PremiumRate))
        );
        assert_eq!(
            uk.check_caller_id("+447012345678"),
            Err(NumberError::Type(NumberType::PersonalNumber))
        );
        assert_eq!(
            uk.check_caller_id("+443001234567"),
            Err(NumberError::Type(NumberType::Uan))
        );
        uk.allowed_types.push(NumberType::Uan);
        assert_eq!(uk.check_caller_id("+443001234567"), Ok(()));
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
        assert_eq!(
            r.check_caller_id("+1234567890123456"),
            Err(r.wrong_length())
        );
    }

    #[test]
    fn international_and_allowed_prefixes_when_configured() {
        let mut r = nanp();
        r.international = true;
        assert_eq!(r.check_entered("011442071234567"), Ok(()));
        assert_eq!(r.check_caller_id("+442071234567"), Ok(()));
        assert_eq!(r.check_entered("18765551234"), Ok(()));
        r.allowed_prefixes = vec!["1555".into()];
        assert_eq!(
            r.check_entered("011442071234567"),
            Err(NumberError::NotAllowed)
        );
        assert_eq!(r.check_entered("5551234567"), Ok(()));
    }

    #[test]
    fn prefixes_take_x_for_any_digit() {
        assert!(has_prefix("12129761234", "1xxx976"));
        assert!(has_prefix("12129761234", "1X"));
        assert!(!has_prefix("12125551234", "1xxx976"));
        assert!(!has_prefix("121", "1xxx976"));
        assert!(has_prefix("19005551234", "1900"));
    }

    #[test]
    fn regions_and_country_codes() {
        assert_eq!(main_region("1").as_deref(), Some("US"));
        assert_eq!(main_region("44").as_deref(), Some("GB"));
        assert_eq!(main_region("999"), None);
        assert_eq!(region_code("JM"), Some(1));
        assert_eq!(region_code("XX"), None);
        assert_eq!(
            NumberType::parse("premium_rate"),
            Some(NumberType::PremiumRate)
        );
        assert_eq!(NumberType::parse("premium"), None);
        assert_eq!(NumberType::PremiumRate.to_string(), "premium rate");
    }
}
