//! PURE: a queue's callback calling window (`[callback] calling_window = "09:00-20:00"`), kept
//! in the **customer's** time zone: nothing dials a customer outside it.
//!
//! The customer's zone comes from the number: the longest prefix in a table generated from
//! libphonenumber's time-zone map (`phone_zones.rs`, by `scripts/gen-phone-zones`): the
//! country, and in North America the area code (`+1 212` New York, `+1 808` Honolulu). Where
//! a prefix has several zones (`+1 907`: Anchorage and Adak), the window must be open in each
//! of them, so no customer is called early or late whichever it is. A number the table does
//! not place falls back to the queue's zone.
//!
//! Must not: read a clock; `at` is always a parameter.

use jiff::Timestamp;
use jiff::tz::TimeZone;

use super::hours::Range;
use super::phone_zones;

/// The daily range in which customers may be called, in their own time zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallingWindow {
    /// Local minutes, the same every day.
    pub daily: Range,
}

/// The time zones a number is in, by the generated table (`None`: not placed).
pub fn zones_of(number: &str) -> Option<&'static [&'static str]> {
    let digits = number.strip_prefix('+').unwrap_or(number);
    phone_zones::PREFIXES
        .iter()
        .filter(|(p, _)| digits.starts_with(p))
        .max_by_key(|(p, _)| p.len())
        .map(|(_, zones)| *zones)
}

/// The zones a window applies in for `number`: its own, else `fallback` (the queue's).
pub fn customer_zones(number: &str, fallback: &TimeZone) -> Vec<TimeZone> {
    let zones: Vec<TimeZone> = zones_of(number)
        .unwrap_or_default()
        .iter()
        .filter_map(|z| TimeZone::get(z).ok())
        .collect();
    if zones.is_empty() {
        vec![fallback.clone()]
    } else {
        zones
    }
}

impl CallingWindow {
    /// Is `at` inside the window in every one of `zones`?
    pub fn is_open(&self, zones: &[TimeZone], at: Timestamp) -> bool {
        zones.iter().all(|tz| {
            let local = at.to_zoned_datetime(tz.clone());
            let minute = u16::try_from(i32::from(local.hour()) * 60 + i32::from(local.minute()))
                .unwrap_or(0);
            self.daily.start <= minute && minute < self.daily.end
        })
    }

    /// When a customer in `zones` may be called: `None` when the window is open at `at`,
    /// else the next instant it opens in all of them (the latest of the zones' openings that
    /// falls inside every other zone's window), looking two days ahead. A set of zones whose
    /// windows never meet is treated as its first zone alone.
    pub fn closed_until(&self, zones: &[TimeZone], at: Timestamp) -> Option<Timestamp> {
        if zones.is_empty() || self.is_open(zones, at) {
            return None;
        }
        let mut openings: Vec<Timestamp> = zones
            .iter()
            .flat_map(|tz| self.openings(tz, at))
            .filter(|t| *t > at)
            .collect();
        openings.sort();
        openings
            .iter()
            .copied()
            .find(|t| self.is_open(zones, *t))
            .or_else(|| {
                self.closed_until(&zones[..1], at)
                    .filter(|_| zones.len() > 1)
            })
    }

    /// The window's starts in `tz` on the local days around `at` (yesterday to two days on),
    /// resolved across DST as business hours are (a start in a gap: the first instant after).
    fn openings(&self, tz: &TimeZone, at: Timestamp) -> Vec<Timestamp> {
        let Ok(h) = i8::try_from(self.daily.start / 60) else {
            return Vec::new();
        };
        let Ok(m) = i8::try_from(self.daily.start % 60) else {
            return Vec::new();
        };
        let today = at.to_zoned_datetime(tz.clone()).date();
        let mut out = Vec::new();
        let mut day = today.yesterday().unwrap_or(today);
        for _ in 0..4 {
            if let Ok(z) = tz
                .to_ambiguous_zoned_datetime(day.at(h, m, 0, 0))
                .compatible()
            {
                out.push(z.timestamp());
            }
            match day.tomorrow() {
                Ok(d) => day = d,
                Err(_) => break,
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflow::hours::parse_range;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn nine_to_eight() -> CallingWindow {
        CallingWindow {
            daily: parse_range("09:00-20:00").unwrap(),
        }
    }

    fn utc() -> TimeZone {
        TimeZone::UTC
    }

    #[test]
    fn numbers_are_placed_by_country_and_north_american_area_code() {
        assert_eq!(zones_of("+12125550123"), Some(&["America/New_York"][..]));
        assert_eq!(zones_of("18085550123"), Some(&["Pacific/Honolulu"][..]));
        assert_eq!(zones_of("+33142685300"), Some(&["Europe/Paris"][..]));
        assert_eq!(zones_of("+19075550123").map(<[_]>::len), Some(2));
        // `+1` alone spans a dozen zones: not placed, the queue's zone applies.
        assert_eq!(zones_of("+15551234567"), None);
        let z = customer_zones("+15551234567", &TimeZone::get("Europe/Berlin").unwrap());
        assert_eq!(z[0].iana_name(), Some("Europe/Berlin"));
        // Every zone in the generated table is one jiff knows.
        for (p, zones) in phone_zones::PREFIXES {
            for z in *zones {
                assert!(TimeZone::get(z).is_ok(), "{p}: {z}");
            }
        }
        assert!(phone_zones::PREFIXES.windows(2).all(|w| w[0].0 < w[1].0));
    }

    /// Issue 21: the window's edges in two customer zones, the same instant: 09:00 opens in
    /// New York while Los Angeles is still at 06:00; 20:00 closes each in its own zone.
    #[test]
    fn window_edges_in_two_customer_zones() {
        let w = nine_to_eight();
        let ny = customer_zones("+12125550123", &utc());
        let la = customer_zones("+13105550123", &utc());
        // 2026-03-02 (Monday, EST/PST): 14:00Z = 09:00 New York = 06:00 Los Angeles.
        let nine_ny = ts("2026-03-02T14:00:00Z");
        assert_eq!(w.closed_until(&ny, nine_ny), None);
        assert_eq!(
            w.closed_until(&ny, ts("2026-03-02T13:59:59Z")),
            Some(nine_ny)
        );
        assert_eq!(
            w.closed_until(&la, nine_ny),
            Some(ts("2026-03-02T17:00:00Z"))
        );
        // 20:00 New York = 01:00Z next day: closed from 20:00 sharp, open again at 09:00.
        assert_eq!(w.closed_until(&ny, ts("2026-03-03T00:59:59Z")), None);
        assert_eq!(
            w.closed_until(&ny, ts("2026-03-03T01:00:00Z")),
            Some(ts("2026-03-03T14:00:00Z"))
        );
        // Los Angeles at 19:59 is still open (03:59Z).
        assert_eq!(w.closed_until(&la, ts("2026-03-03T03:59:00Z")), None);
    }

    /// Across the spring DST change the opening follows local time.
    #[test]
    fn the_window_follows_local_time_across_dst() {
        let w = nine_to_eight();
        let ny = customer_zones("+12125550123", &utc());
        // Saturday 2026-03-07 21:00 EST (02:00Z Sunday): next opening Sunday 09:00 EDT = 13:00Z.
        assert_eq!(
            w.closed_until(&ny, ts("2026-03-08T02:00:00Z")),
            Some(ts("2026-03-08T13:00:00Z"))
        );
    }

    /// A prefix with two zones: open only when open in both (Adak is an hour behind Anchorage).
    #[test]
    fn several_zones_must_all_be_open() {
        let w = nine_to_eight();
        let ak = customer_zones("+19075550123", &utc());
        assert_eq!(ak.len(), 2);
        // 2026-03-02 (AKST UTC-9, HST-Adak UTC-10): 18:00Z = 09:00 Anchorage = 08:00 Adak.
        assert_eq!(
            w.closed_until(&ak, ts("2026-03-02T18:00:00Z")),
            Some(ts("2026-03-02T19:00:00Z"))
        );
        // 05:00Z next day = 20:00 Anchorage (closed) = 19:00 Adak.
        assert!(w.closed_until(&ak, ts("2026-03-03T05:00:00Z")).is_some());
        assert_eq!(w.closed_until(&ak, ts("2026-03-03T04:59:00Z")), None);
    }
}
