//! Business hours: a time zone and weekly opening ranges, or open around the clock.
//!
//! PURE: the wall-clock instant is always a parameter. Local times are resolved with `jiff`'s
//! bundled tz database, so a range written as `09:00-17:00` means 09:00 local time on both sides
//! of a daylight-saving change. An opening time that falls into a DST gap (clocks jump over it)
//! resolves to the first instant after the gap (`jiff`'s "compatible" disambiguation).

use jiff::Timestamp;
use jiff::tz::TimeZone;

/// Minutes since local midnight; `1440` is allowed as the end of a range ("24:00").
pub type Minute = u16;

/// One opening range on one weekday, `start <= t < end`, in local minutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub start: Minute,
    pub end: Minute,
}

/// When a queue takes calls. Compiled from the `[hours]` table of a queue file.
#[derive(Debug, Clone)]
pub enum BusinessHours {
    /// Open 24/7: no time zone needed.
    AlwaysOpen,
    /// Open during `days[weekday]` (Monday = 0) in `tz`.
    Weekly {
        tz: TimeZone,
        /// Sorted by start, non-overlapping.
        days: [Vec<Range>; 7],
    },
}

impl BusinessHours {
    /// The queue's time zone, when its hours name one (24/7 queues have none).
    pub fn time_zone(&self) -> Option<&TimeZone> {
        match self {
            Self::AlwaysOpen => None,
            Self::Weekly { tz, .. } => Some(tz),
        }
    }

    /// Is the queue open at wall-clock instant `at`? Call when a caller enters the workflow.
    pub fn is_open(&self, at: Timestamp) -> bool {
        match self {
            Self::AlwaysOpen => true,
            Self::Weekly { tz, days } => {
                let local = at.to_zoned_datetime(tz.clone());
                let day = usize::try_from(local.weekday().to_monday_zero_offset()).unwrap_or(0);
                let minute =
                    Minute::try_from(i32::from(local.hour()) * 60 + i32::from(local.minute()))
                        .unwrap_or(0);
                days[day % 7]
                    .iter()
                    .any(|r| r.start <= minute && minute < r.end)
            }
        }
    }

    /// The next instant strictly after `at` at which a range opens, looking up to 8 days ahead.
    /// `None` when always open or never open. Used as a closed-hours callback's `not_before`.
    pub fn next_open(&self, at: Timestamp) -> Option<Timestamp> {
        let Self::Weekly { tz, days } = self else {
            return None;
        };
        let mut date = at.to_zoned_datetime(tz.clone()).date();
        for _ in 0..=8 {
            let day = usize::try_from(date.weekday().to_monday_zero_offset()).unwrap_or(0);
            for r in &days[day % 7] {
                if r.start >= 1440 {
                    continue;
                }
                let (h, m) = (
                    i8::try_from(r.start / 60).ok()?,
                    i8::try_from(r.start % 60).ok()?,
                );
                let dt = date.at(h, m, 0, 0);
                let Ok(zoned) = tz.to_ambiguous_zoned_datetime(dt).compatible() else {
                    continue;
                };
                let ts = zoned.timestamp();
                if ts > at {
                    return Some(ts);
                }
            }
            date = date.tomorrow().ok()?;
        }
        None
    }
}

/// Parse `"09:00-17:30"` into a [`Range`]. `24:00` is allowed as an end.
pub fn parse_range(s: &str) -> Result<Range, String> {
    let (a, b) = s
        .split_once('-')
        .ok_or_else(|| format!("expected a range like \"09:00-17:00\", found {s:?}"))?;
    let start = parse_hhmm(a.trim())?;
    let end = parse_hhmm(b.trim())?;
    if start >= 1440 {
        return Err("a range cannot start at 24:00".into());
    }
    if end <= start {
        return Err(format!(
            "range {s:?} ends before it starts; split a range that crosses midnight into two days"
        ));
    }
    Ok(Range { start, end })
}

fn parse_hhmm(s: &str) -> Result<Minute, String> {
    let bad = || format!("expected a time like \"09:00\", found {s:?}");
    let (h, m) = s.split_once(':').ok_or_else(bad)?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return Err(bad());
    }
    let h: Minute = h.parse().map_err(|_| bad())?;
    let m: Minute = m.parse().map_err(|_| bad())?;
    if m > 59 || h > 24 || (h == 24 && m != 0) {
        return Err(format!("{s:?} is not a time of day (00:00 to 24:00)"));
    }
    Ok(h * 60 + m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weekdays_nine_to_five(tz: &str) -> BusinessHours {
        let r = parse_range("09:00-17:00").unwrap();
        BusinessHours::Weekly {
            tz: TimeZone::get(tz).unwrap(),
            days: [vec![r], vec![r], vec![r], vec![r], vec![r], vec![], vec![]],
        }
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn ranges_parse_and_reject_nonsense() {
        assert_eq!(
            parse_range("09:00-17:30"),
            Ok(Range {
                start: 540,
                end: 1050
            })
        );
        assert_eq!(
            parse_range("00:00-24:00"),
            Ok(Range {
                start: 0,
                end: 1440
            })
        );
        assert!(parse_range("17:00-09:00").is_err());
        assert!(parse_range("9-17").is_err());
        assert!(parse_range("09:60-10:00").is_err());
        assert!(parse_range("24:00-24:00").is_err());
    }

    #[test]
    fn open_follows_local_time_across_dst() {
        let h = weekdays_nine_to_five("America/New_York");
        // Friday 2026-03-06, EST (UTC-5): 09:30 local = 14:30Z.
        assert!(h.is_open(ts("2026-03-06T14:30:00Z")));
        assert!(!h.is_open(ts("2026-03-06T13:30:00Z")));
        // Monday 2026-03-09, EDT (UTC-4) after the change on Sunday: 09:30 local = 13:30Z.
        assert!(h.is_open(ts("2026-03-09T13:30:00Z")));
        assert!(!h.is_open(ts("2026-03-09T12:30:00Z")));
        // Saturday is closed.
        assert!(!h.is_open(ts("2026-03-07T15:00:00Z")));
    }

    #[test]
    fn next_open_skips_the_weekend_and_the_dst_change() {
        let h = weekdays_nine_to_five("America/New_York");
        // Saturday evening before the DST change: opens Monday 09:00 EDT = 13:00Z.
        assert_eq!(
            h.next_open(ts("2026-03-07T23:00:00Z")),
            Some(ts("2026-03-09T13:00:00Z"))
        );
        // Friday evening in November after the change back: Monday 09:00 EST = 14:00Z.
        assert_eq!(
            h.next_open(ts("2026-11-06T23:00:00Z")),
            Some(ts("2026-11-09T14:00:00Z"))
        );
        assert_eq!(
            BusinessHours::AlwaysOpen.next_open(ts("2026-11-06T23:00:00Z")),
            None
        );
    }
}
