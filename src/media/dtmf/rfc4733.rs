//! RFC 4733 telephone-event detection and encoding (§2.3 payload format, §2.5 sender rules).
//!
//! An event is identified by its RTP timestamp, which stays constant for the whole event
//! (§2.5.1.2), so the [`Detector`] reports each digit once, on the first packet it sees of an
//! event: start and update packets, the three end retransmissions (§2.5.1.4) and reordered
//! stragglers of recent events are all recognised by timestamp. The marker bit is not relied on
//! (it is lost with the first packet) and an event whose start packets were lost still counts.
//! Segmented long events (§2.5.1.3: same digit, new timestamp = old timestamp + old duration)
//! are recognised as one. PURE and allocation-free.

use super::Digit;

/// How many recent event timestamps are remembered for deduplication of late packets.
const RECENT: usize = 8;

/// One decoded telephone-event payload (§2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    /// Event code (0-15 are DTMF digits).
    pub code: u8,
    /// The E bit: this packet ends the event.
    pub end: bool,
    /// Power level in -dBm0 (0-63).
    pub volume: u8,
    /// Duration so far, in timestamp units.
    pub duration: u16,
}

impl Event {
    /// Decode the first event of a telephone-event payload; `None` if shorter than 4 bytes.
    pub fn parse(payload: &[u8]) -> Option<Self> {
        let b = payload.get(..4)?;
        Some(Self {
            code: b[0],
            end: b[1] & 0x80 != 0,
            volume: b[1] & 0x3F,
            duration: u16::from_be_bytes([b[2], b[3]]),
        })
    }

    /// The DTMF digit of this event, if it is one (codes 0-15).
    pub fn digit(&self) -> Option<Digit> {
        Digit::from_event(self.code)
    }
}

/// Encode one telephone-event payload (§2.3) for sending. `volume` is clamped to 63.
pub fn encode_event(digit: Digit, end: bool, volume: u8, duration: u16) -> [u8; 4] {
    let d = duration.to_be_bytes();
    [
        digit.event_code(),
        (if end { 0x80 } else { 0 }) | volume.min(63),
        d[0],
        d[1],
    ]
}

#[derive(Debug, Clone, Copy)]
struct Current {
    ts: u32,
    digit: Digit,
    ended: bool,
    duration: u16,
}

/// Turns the telephone-event packets of one RTP stream into digits, one per key press.
#[derive(Debug, Clone, Default)]
pub struct Detector {
    current: Option<Current>,
    recent: [Option<u32>; RECENT],
    next: usize,
    last_event: Option<Event>,
}

impl Detector {
    /// A detector with no history. Create one per inbound RTP stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feed the timestamp, marker bit and payload of every packet whose payload type is the
    /// negotiated telephone-event PT. Returns the digit the first time an event is seen, `None`
    /// for repeats, non-DTMF events and garbage.
    pub fn handle(&mut self, rtp_ts: u32, marker: bool, payload: &[u8]) -> Option<Digit> {
        // The marker only flags the first packet, which may be lost: identity is the timestamp.
        let _ = marker;
        let ev = Event::parse(payload)?;
        let digit = ev.digit()?;
        self.last_event = Some(ev);
        if let Some(cur) = self.current.as_mut().filter(|c| c.ts == rtp_ts) {
            cur.ended |= ev.end;
            cur.duration = cur.duration.max(ev.duration);
            return None;
        }
        if self.recent.contains(&Some(rtp_ts)) {
            return None; // a straggler of an earlier event
        }
        let continued = self.current.is_some_and(|c| {
            c.digit == digit && !c.ended && c.ts.wrapping_add(u32::from(c.duration)) == rtp_ts
        });
        self.recent[self.next] = Some(rtp_ts);
        self.next = (self.next + 1) % RECENT;
        self.current = Some(Current {
            ts: rtp_ts,
            digit,
            ended: ev.end,
            duration: ev.duration,
        });
        (!continued).then_some(digit)
    }

    /// The last telephone-event decoded (volume and duration), for logging.
    pub fn last_event(&self) -> Option<Event> {
        self.last_event
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::strategy::Strategy as _;

    fn d(c: char) -> Digit {
        Digit::from_char(c).unwrap()
    }

    /// Packets of one event as a sender emits them: start (marker), updates, end ×3.
    fn event(c: char, ts: u32, updates: u16) -> Vec<(u32, bool, [u8; 4])> {
        let mut v = vec![(ts, true, encode_event(d(c), false, 10, 160))];
        for i in 1..=updates {
            v.push((ts, false, encode_event(d(c), false, 10, 160 * (i + 1))));
        }
        let end = encode_event(d(c), true, 10, 160 * (updates + 2));
        v.extend([(ts, false, end), (ts, false, end), (ts, false, end)]);
        v
    }

    fn run(det: &mut Detector, pkts: &[(u32, bool, [u8; 4])]) -> String {
        pkts.iter()
            .filter_map(|(ts, m, p)| det.handle(*ts, *m, p))
            .map(Digit::as_char)
            .collect()
    }

    #[test]
    fn redundant_end_packets_count_once() {
        let mut det = Detector::new();
        assert_eq!(run(&mut det, &event('5', 1000, 3)), "5");
        let last = det.last_event().unwrap();
        assert!(last.end);
        assert_eq!((last.volume, last.duration), (10, 800));
    }

    #[test]
    fn reordered_packets_count_once() {
        let mut pkts = event('1', 1000, 2);
        pkts.extend(event('2', 3000, 2));
        pkts.swap(0, 3); // an update before the start
        let end_of_1 = pkts[5];
        pkts.insert(8, end_of_1); // '1' end arrives after '2' began
        let mut det = Detector::new();
        assert_eq!(run(&mut det, &pkts), "12");
    }

    #[test]
    fn lost_start_still_counts() {
        let pkts: Vec<_> = event('9', 500, 0).into_iter().skip(1).collect();
        assert!(
            pkts[0].2[1] & 0x80 != 0,
            "first packet seen is an end packet"
        );
        assert_eq!(run(&mut Detector::new(), &pkts), "9");
    }

    #[test]
    fn same_digit_twice_counts_twice() {
        let mut pkts = event('7', 1000, 2);
        pkts.extend(event('7', 2600, 2));
        assert_eq!(run(&mut Detector::new(), &pkts), "77");
    }

    #[test]
    fn long_event_with_constant_timestamp_counts_once() {
        let pkts = event('#', 40_000, 200);
        assert_eq!(run(&mut Detector::new(), &pkts), "#");
    }

    #[test]
    fn segmented_long_event_counts_once() {
        // §2.5.1.3: at 0xFFFF the sender starts a new segment at ts + duration.
        let mut det = Detector::new();
        let max = encode_event(d('0'), false, 10, 0xFFFF);
        assert_eq!(det.handle(100, true, &max), Some(d('0')));
        let seg2 = encode_event(d('0'), false, 10, 160);
        assert_eq!(det.handle(100 + 0xFFFF, false, &seg2), None);
        assert_eq!(
            det.handle(100 + 0xFFFF, false, &encode_event(d('0'), true, 10, 320)),
            None
        );
    }

    #[test]
    fn timestamp_wraps() {
        let mut pkts = event('3', u32::MAX - 80, 1);
        pkts.extend(event('3', 1000, 1));
        assert_eq!(run(&mut Detector::new(), &pkts), "33");
    }

    #[test]
    fn garbage_and_non_dtmf_events() {
        let mut det = Detector::new();
        assert_eq!(det.handle(1, true, &[]), None);
        assert_eq!(det.handle(2, true, &[5, 0x80, 0]), None);
        assert_eq!(
            det.handle(3, true, &[16, 0, 0, 160]),
            None,
            "flash is not a digit"
        );
        assert_eq!(det.handle(4, true, &[255; 4]), None);
        assert_eq!(
            det.handle(5, true, &[11, 0x0A, 0, 160, 99, 99]),
            Some(d('#'))
        );
    }

    proptest::proptest! {
        #[test]
        fn any_payload_never_panics(ts: u32, marker: bool, payload in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..12)) {
            let _ = Detector::new().handle(ts, marker, &payload);
        }

        /// Any loss (but not all) and any reordering or duplication of one event's packets
        /// yields exactly one digit.
        #[test]
        fn one_event_any_order_one_digit(
            code in 0u8..16,
            ts: u32,
            order in proptest::sample::subsequence((0..6usize).collect::<Vec<_>>(), 1..=6)
                .prop_shuffle(),
            dup in 0usize..6,
        ) {
            let c = Digit::from_event(code).unwrap().as_char();
            let pkts = event(c, ts, 2); // 6 packets
            let mut det = Detector::new();
            let mut seen = String::new();
            for &i in order.iter().chain(std::iter::once(&dup)) {
                let (t, m, p): (u32, bool, [u8; 4]) = pkts[i];
                seen.extend(det.handle(t, m, &p).map(Digit::as_char));
            }
            proptest::prop_assert_eq!(seen, c.to_string());
        }
    }

    #[test]
    fn encode_layout() {
        assert_eq!(
            encode_event(d('*'), true, 200, 0x0140),
            [10, 0x80 | 63, 0x01, 0x40]
        );
        assert_eq!(
            Event::parse(&encode_event(d('D'), false, 7, 9)),
            Some(Event {
                code: 15,
                end: false,
                volume: 7,
                duration: 9
            })
        );
    }
}
