//! Estimated wait: how long the caller at position N may wait, from recent handling times and
//! the agents serving the queue. Honest by construction: with too little history it says
//! nothing, and the workflow then announces only the position. PURE.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

/// Handling times kept per queue (a rolling window).
const WINDOW: usize = 50;
/// Fewer samples than this: no estimate.
pub const MIN_SAMPLES: usize = 5;

#[derive(Debug, Default)]
pub struct Estimator {
    handled: HashMap<String, VecDeque<Duration>>,
}

impl Estimator {
    /// Record one finished conversation of `queue`.
    pub fn record(&mut self, queue: &str, handling: Duration) {
        let w = self.handled.entry(queue.to_owned()).or_default();
        if w.len() == WINDOW {
            w.pop_front();
        }
        w.push_back(handling);
    }

    /// Expected wait for the caller at `position` (1-based) with `agents` serving the queue:
    /// the callers ahead, shared among the agents, each taking the median handling time.
    /// `None` without enough history or without agents.
    pub fn estimate(&self, queue: &str, position: u32, agents: usize) -> Option<Duration> {
        let w = self.handled.get(queue)?;
        if w.len() < MIN_SAMPLES || agents == 0 {
            return None;
        }
        let mut sorted: Vec<Duration> = w.iter().copied().collect();
        sorted.sort_unstable();
        let median = sorted[sorted.len() / 2];
        let ahead = position.saturating_sub(1);
        // Everyone ahead is served in rounds of `agents`; the caller waits for its round.
        let rounds = u32::try_from(ahead as usize / agents + 1).unwrap_or(u32::MAX);
        Some(median * rounds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silent_without_enough_history() {
        let mut e = Estimator::default();
        assert_eq!(e.estimate("q", 3, 2), None);
        for _ in 0..MIN_SAMPLES - 1 {
            e.record("q", Duration::from_secs(60));
        }
        assert_eq!(e.estimate("q", 3, 2), None);
        e.record("q", Duration::from_secs(60));
        assert!(e.estimate("q", 3, 2).is_some());
        assert_eq!(e.estimate("q", 3, 0), None, "nobody serving: no promise");
    }

    #[test]
    fn rounds_of_agents_times_the_median() {
        let mut e = Estimator::default();
        for s in [30, 60, 60, 90, 600] {
            e.record("q", Duration::from_secs(s));
        }
        // Median 60 s; position 1 with 2 agents: first round.
        assert_eq!(e.estimate("q", 1, 2), Some(Duration::from_secs(60)));
        // Position 5, 2 agents: 4 ahead = 2 full rounds, then ours.
        assert_eq!(e.estimate("q", 5, 2), Some(Duration::from_secs(180)));
    }
}
