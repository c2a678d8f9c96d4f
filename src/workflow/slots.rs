//! PURE: the times a caller may choose for a scheduled callback (`[callback.schedule]`), and
//! how each is read back in the queue's time zone ("today at 3 PM").
//!
//! Slots are whole local hours, every `every_hours` from local midnight (`every_hours = 2`:
//! 8:00, 10:00, 12:00 …), at least `lead` after now, inside the queue's business hours (any
//! hour for a 24/7 queue). They are counted in local civil time, so "3 PM" stays 3 PM on
//! both sides of a daylight-saving change, and an hour the clocks skip is no slot.
//!
//! Must not: read a clock; `at` is always a parameter.

use std::time::Duration;

use jiff::Timestamp;
use jiff::civil::Weekday;
use jiff::tz::TimeZone;

use super::engine::PlayItem;
use super::hours::BusinessHours;

/// `[callback.schedule]`, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// Slots offered (1-9: one key each).
    pub slots: u8,
    /// Hours between slots (1-12).
    pub every_hours: u8,
    /// The earliest slot is at least this long after the call.
    pub lead: Duration,
}

/// Days ahead the search looks before it gives up (a queue closed for longer offers fewer).
const HORIZON_DAYS: usize = 8;

impl Schedule {
    /// The next slots from `at`: at most [`Schedule::slots`], earliest first.
    pub fn next_slots(
        &self,
        hours: &BusinessHours,
        tz: &TimeZone,
        at: Timestamp,
    ) -> Vec<Timestamp> {
        self.next_slots_where(hours, tz, at, |_| true)
    }

    /// [`Schedule::next_slots`], keeping only the slots `allowed` takes (those inside the
    /// customer's calling window).
    pub fn next_slots_where(
        &self,
        hours: &BusinessHours,
        tz: &TimeZone,
        at: Timestamp,
        allowed: impl Fn(Timestamp) -> bool,
    ) -> Vec<Timestamp> {
        let Ok(lead) = jiff::SignedDuration::try_from(self.lead) else {
            return Vec::new();
        };
        let Ok(earliest) = at.checked_add(lead) else {
            return Vec::new();
        };
        let every = self.every_hours.clamp(1, 24);
        let mut out = Vec::new();
        let mut day = at.to_zoned_datetime(tz.clone()).date();
        for _ in 0..HORIZON_DAYS {
            for hour in (0..24).step_by(usize::from(every)) {
                let Ok(h) = i8::try_from(hour) else { continue };
                let civil = day.at(h, 0, 0, 0);
                let Ok(zoned) = tz.to_ambiguous_zoned_datetime(civil).compatible() else {
                    continue;
                };
                // A skipped hour resolves past it: not the hour the caller would hear.
                if zoned.hour() != h {
                    continue;
                }
                let t = zoned.timestamp();
                if t >= earliest && hours.is_open(t) && out.last() != Some(&t) && allowed(t) {
                    out.push(t);
                    if out.len() >= usize::from(self.slots) {
                        return out;
                    }
                }
            }
            match day.tomorrow() {
                Ok(d) => day = d,
                Err(_) => break,
            }
        }
        out
    }
}

/// The prompt ids a slot is read with ("today", "at", "P M" …), checked against the prompt
/// library like the digits.
pub const TIME_PROMPTS: [&str; 17] = [
    "slot_press",
    "slot_for",
    "slot_today",
    "slot_tomorrow",
    "day_monday",
    "day_tuesday",
    "day_wednesday",
    "day_thursday",
    "day_friday",
    "day_saturday",
    "day_sunday",
    "slot_at",
    "hour_10",
    "hour_11",
    "hour_12",
    "slot_am",
    "slot_pm",
];

/// `slot` as the caller hears it, seen from `at`, in `tz`: "today" / "tomorrow" / "on
/// Monday", "at", the hour on a 12-hour clock, "A M" / "P M".
pub fn read_back(slot: Timestamp, at: Timestamp, tz: &TimeZone) -> Vec<PlayItem> {
    let local = slot.to_zoned_datetime(tz.clone());
    let today = at.to_zoned_datetime(tz.clone()).date();
    let day = local.date();
    let when = if day == today {
        "slot_today"
    } else if today.tomorrow().ok() == Some(day) {
        "slot_tomorrow"
    } else {
        match day.weekday() {
            Weekday::Monday => "day_monday",
            Weekday::Tuesday => "day_tuesday",
            Weekday::Wednesday => "day_wednesday",
            Weekday::Thursday => "day_thursday",
            Weekday::Friday => "day_friday",
            Weekday::Saturday => "day_saturday",
            Weekday::Sunday => "day_sunday",
        }
    };
    let h24 = local.hour();
    let h12 = match h24 % 12 {
        0 => 12,
        h => h,
    };
    let hour = match h12 {
        10..=12 => PlayItem::Prompt(format!("hour_{h12}")),
        h => PlayItem::Digits(h.to_string()),
    };
    vec![
        PlayItem::Prompt(when.into()),
        PlayItem::Prompt("slot_at".into()),
        hour,
        PlayItem::Prompt(if h24 < 12 { "slot_am" } else { "slot_pm" }.into()),
    ]
}

/// The words of [`read_back`], for the feed and the simulator ("today at 3 PM").
pub fn describe(slot: Timestamp, at: Timestamp, tz: &TimeZone) -> String {
    let local = slot.to_zoned_datetime(tz.clone());
    let today = at.to_zoned_datetime(tz.clone()).date();
    let day = if local.date() == today {
        "today".to_owned()
    } else if today.tomorrow().ok() == Some(local.date()) {
        "tomorrow".to_owned()
    } else {
        format!("on {:?}", local.weekday())
    };
    let h = match local.hour() % 12 {
        0 => 12,
        h => h,
    };
    let half = if local.hour() < 12 { "AM" } else { "PM" };
    format!("{day} at {h} {half}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflow::hours::parse_range;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn ny() -> TimeZone {
        TimeZone::get("America/New_York").unwrap()
    }

    /// Weekdays 09:00-17:00 in New York.
    fn office() -> BusinessHours {
        let r = parse_range("09:00-17:00").unwrap();
        BusinessHours::Weekly {
            tz: ny(),
            days: [vec![r], vec![r], vec![r], vec![r], vec![r], vec![], vec![]],
        }
    }

    fn three_hourly() -> Schedule {
        Schedule {
            slots: 3,
            every_hours: 1,
            lead: Duration::from_secs(3600),
        }
    }

    #[test]
    fn slots_are_whole_hours_inside_the_hours_after_the_lead() {
        // Monday 2026-03-02 13:20 EST (18:20Z): lead 1 h → 15:00, 16:00, then Tuesday 09:00.
        let s = three_hourly().next_slots(&office(), &ny(), ts("2026-03-02T18:20:00Z"));
        assert_eq!(
            s,
            [
                ts("2026-03-02T20:00:00Z"),
                ts("2026-03-02T21:00:00Z"),
                ts("2026-03-03T14:00:00Z"),
            ]
        );
        let words: Vec<String> = s
            .iter()
            .map(|t| describe(*t, ts("2026-03-02T18:20:00Z"), &ny()))
            .collect();
        assert_eq!(
            words,
            ["today at 3 PM", "today at 4 PM", "tomorrow at 9 AM"]
        );
        assert_eq!(
            read_back(s[0], ts("2026-03-02T18:20:00Z"), &ny()),
            vec![
                PlayItem::Prompt("slot_today".into()),
                PlayItem::Prompt("slot_at".into()),
                PlayItem::Digits("3".into()),
                PlayItem::Prompt("slot_pm".into()),
            ]
        );
    }

    /// Issue 21: slots across the spring DST change keep their local hour: Friday afternoon's
    /// slots run into Monday 9 AM, which is 13:00Z (EDT) where Friday's 9 AM was 14:00Z (EST).
    #[test]
    fn slots_across_a_dst_change_keep_their_local_hour() {
        // Friday 2026-03-06 16:30 EST (21:30Z): nothing left today; the weekend is closed;
        // the clocks go forward on Sunday 8 March.
        let s = three_hourly().next_slots(&office(), &ny(), ts("2026-03-06T21:30:00Z"));
        assert_eq!(
            s,
            [
                ts("2026-03-09T13:00:00Z"),
                ts("2026-03-09T14:00:00Z"),
                ts("2026-03-09T15:00:00Z"),
            ]
        );
        assert_eq!(
            describe(s[0], ts("2026-03-06T21:30:00Z"), &ny()),
            "on Monday at 9 AM"
        );
        assert_eq!(
            read_back(s[2], ts("2026-03-06T21:30:00Z"), &ny())[..1],
            [PlayItem::Prompt("day_monday".into())]
        );
        // A 24/7 queue at the change itself: 02:00 does not exist on 8 March, no slot there.
        let s = Schedule {
            slots: 3,
            every_hours: 1,
            lead: Duration::ZERO,
        }
        .next_slots(
            &BusinessHours::AlwaysOpen,
            &ny(),
            ts("2026-03-08T05:30:00Z"),
        );
        // 00:30 EST: 1 AM (EST), then 3 AM and 4 AM (EDT), an hour apart in UTC too.
        assert_eq!(
            s,
            [
                ts("2026-03-08T06:00:00Z"),
                ts("2026-03-08T07:00:00Z"),
                ts("2026-03-08T08:00:00Z"),
            ]
        );
        assert_eq!(
            describe(s[1], ts("2026-03-08T05:30:00Z"), &ny()),
            "today at 3 AM"
        );
    }

    #[test]
    fn every_two_hours_from_midnight_and_noon_reads_twelve() {
        let s = Schedule {
            slots: 2,
            every_hours: 2,
            lead: Duration::from_secs(1800),
        }
        .next_slots(
            &BusinessHours::AlwaysOpen,
            &ny(),
            ts("2026-03-02T15:10:00Z"),
        );
        // 10:10 EST + 30 min → 12:00, 14:00.
        assert_eq!(s, [ts("2026-03-02T17:00:00Z"), ts("2026-03-02T19:00:00Z")]);
        assert_eq!(
            read_back(s[0], ts("2026-03-02T15:10:00Z"), &ny())[2],
            PlayItem::Prompt("hour_12".into())
        );
    }
}
