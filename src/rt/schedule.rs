//! The media clock's schedule: which streams send a frame on which tick.
//!
//! A timing wheel. Nearly every frame is due exactly one frame period after the stream's
//! last, a few ticks ahead, so the wheel keeps one list per tick for the next [`WHEEL`] ticks
//! and moves a stream from one list to another at no cost; the rare entry due further out
//! waits in a heap until the wheel reaches it. A binary heap of every stream cost ten
//! comparisons (and their cache misses) per frame at 1,000 streams; and the wheel hands over a
//! whole tick's streams at once, so the clock can fetch the next ones' state from memory while
//! it serves the current one.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Ticks the wheel covers (a power of two, more than a frame period of ticks).
const WHEEL: u64 = 32;

/// A stream's slot and the generation that tells it from an earlier stream in the same slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Due {
    pub idx: u32,
    pub generation: u32,
}

pub struct Schedule {
    /// The first tick not yet taken.
    next: u64,
    /// The entries due on tick `t` (from `next` to `next + WHEEL - 1`) are in slot
    /// `t % WHEEL`.
    slots: Vec<Vec<Due>>,
    /// Entries in `slots`.
    in_wheel: usize,
    /// Entries due at `next + WHEEL` or later.
    later: BinaryHeap<Reverse<(u64, Due)>>,
}

impl Default for Schedule {
    fn default() -> Self {
        Self {
            next: 0,
            slots: (0..WHEEL).map(|_| Vec::new()).collect(),
            in_wheel: 0,
            later: BinaryHeap::new(),
        }
    }
}

impl Schedule {
    /// Schedule `due` on `tick` (a tick already taken means the next one taken).
    pub fn push(&mut self, tick: u64, due: Due) {
        let tick = tick.max(self.next);
        if tick - self.next < WHEEL {
            self.slots[slot_of(tick)].push(due);
            self.in_wheel += 1;
        } else {
            self.later.push(Reverse((tick, due)));
        }
    }

    /// Move every entry due on `tick` or before into `out`, earliest tick first.
    pub fn take_due(&mut self, tick: u64, out: &mut Vec<Due>) {
        while self.next <= tick {
            if self.in_wheel == 0 {
                // Nothing for a while (or ever): jump to the next entry rather than turn the
                // wheel through every empty tick.
                let Some(&Reverse((at, _))) = self.later.peek() else {
                    self.next = tick + 1;
                    return;
                };
                if at > tick {
                    self.next = tick + 1;
                    self.refill();
                    return;
                }
                self.next = self.next.max(at);
                self.refill();
            }
            let slot = &mut self.slots[slot_of(self.next)];
            self.in_wheel -= slot.len();
            out.append(slot);
            self.next += 1;
            self.refill();
        }
    }

    /// The earliest tick with an entry.
    pub fn next_due(&self) -> Option<u64> {
        if self.in_wheel > 0 {
            return (self.next..self.next + WHEEL).find(|&t| !self.slots[slot_of(t)].is_empty());
        }
        self.later.peek().map(|&Reverse((at, _))| at)
    }

    /// How many entries are due on `tick` (0 for a tick already taken or past the wheel: a
    /// hint for how busy that tick will be, not a promise).
    pub fn due_on(&self, tick: u64) -> usize {
        if tick < self.next || tick - self.next >= WHEEL {
            return 0;
        }
        self.slots[slot_of(tick)].len()
    }

    /// Forget every entry.
    pub fn clear(&mut self) {
        for slot in &mut self.slots {
            slot.clear();
        }
        self.in_wheel = 0;
        self.later.clear();
    }

    /// Move the entries the wheel now covers out of the heap.
    fn refill(&mut self) {
        while let Some(&Reverse((at, due))) = self.later.peek() {
            if at >= self.next + WHEEL {
                return;
            }
            self.later.pop();
            self.slots[slot_of(at.max(self.next))].push(due);
            self.in_wheel += 1;
        }
    }
}

#[allow(clippy::cast_possible_truncation)]
fn slot_of(tick: u64) -> usize {
    (tick % WHEEL) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn due(idx: u32) -> Due {
        Due { idx, generation: 0 }
    }

    fn take(s: &mut Schedule, tick: u64) -> Vec<u32> {
        let mut out = Vec::new();
        s.take_due(tick, &mut out);
        out.iter().map(|d| d.idx).collect()
    }

    #[test]
    fn hands_out_entries_on_their_tick_in_tick_order() {
        let mut s = Schedule::default();
        s.push(5, due(1));
        s.push(3, due(2));
        s.push(5, due(3));
        assert_eq!(s.next_due(), Some(3));
        assert_eq!(take(&mut s, 2), Vec::<u32>::new());
        assert_eq!(take(&mut s, 3), vec![2]);
        assert_eq!(s.next_due(), Some(5));
        assert_eq!(take(&mut s, 10), vec![1, 3]);
        assert_eq!(s.next_due(), None);
    }

    #[test]
    fn a_tick_already_taken_is_served_on_the_next_take() {
        let mut s = Schedule::default();
        take(&mut s, 100);
        s.push(40, due(7));
        assert_eq!(take(&mut s, 101), vec![7]);
    }

    #[test]
    fn entries_beyond_the_wheel_wait_in_the_heap_and_keep_their_order() {
        let mut s = Schedule::default();
        s.push(WHEEL * 3 + 1, due(1));
        s.push(WHEEL * 3, due(2));
        s.push(1, due(3));
        assert_eq!(take(&mut s, 1), vec![3]);
        assert_eq!(s.next_due(), Some(WHEEL * 3));
        assert_eq!(take(&mut s, WHEEL * 3 - 1), Vec::<u32>::new());
        assert_eq!(take(&mut s, WHEEL * 3), vec![2]);
        assert_eq!(take(&mut s, WHEEL * 4), vec![1]);
    }

    #[test]
    fn a_long_idle_gap_is_skipped_not_walked() {
        let mut s = Schedule::default();
        let far = 1 << 40;
        s.push(far, due(1));
        assert_eq!(take(&mut s, far - 1), Vec::<u32>::new());
        assert_eq!(take(&mut s, far + 5), vec![1]);
        // A stream starting after a long sleep is due at once.
        take(&mut s, far * 2);
        s.push(far * 2 + 10, due(2));
        assert_eq!(take(&mut s, far * 2 + 10), vec![2]);
    }

    #[test]
    fn a_stream_rescheduled_every_frame_period_is_taken_every_period() {
        let mut s = Schedule::default();
        s.push(3, due(1));
        let mut sent = Vec::new();
        for tick in 0..100 {
            let mut out = Vec::new();
            s.take_due(tick, &mut out);
            for d in out {
                sent.push(tick);
                s.push(tick + 10, d);
            }
        }
        assert_eq!(sent, (0..10).map(|k| 3 + 10 * k).collect::<Vec<_>>());
    }

    #[test]
    fn counts_the_entries_due_on_a_tick() {
        let mut s = Schedule::default();
        s.push(3, due(1));
        s.push(3, due(2));
        s.push(WHEEL * 2, due(3));
        assert_eq!((s.due_on(3), s.due_on(4), s.due_on(WHEEL * 2)), (2, 0, 0));
        take(&mut s, 3);
        assert_eq!(s.due_on(3), 0, "taken");
    }

    #[test]
    fn clear_forgets_everything() {
        let mut s = Schedule::default();
        s.push(1, due(1));
        s.push(WHEEL * 5, due(2));
        s.clear();
        assert_eq!(s.next_due(), None);
        assert_eq!(take(&mut s, WHEEL * 6), Vec::<u32>::new());
    }
}
