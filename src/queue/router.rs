//! Offer selection. Live callers and due callbacks are one line, ordered by original arrival
//! (a callback keeps the place its caller had); each free agent gets at most one offer at a
//! time, the agent idle longest first. PURE.

use std::collections::HashMap;

use jiff::Timestamp;

use crate::interaction::InteractionId;

/// Something waiting for an agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub interaction: InteractionId,
    /// Original arrival: the queue order key.
    pub created_at: Timestamp,
    /// A caller on the line (bridged on answer) rather than a callback (dialled on answer).
    pub live: bool,
}

/// Remembers when each agent last finished or was offered something, for longest-idle order.
#[derive(Debug, Default)]
pub struct Router {
    idle_since: HashMap<String, Timestamp>,
}

impl Router {
    /// Pair free agents with candidates: the oldest candidate goes to the agent idle longest.
    /// `free` lists agents available and not busy; call again when either side changes.
    pub fn assign(
        &mut self,
        now: Timestamp,
        free: &[String],
        candidates: &[Candidate],
    ) -> Vec<(String, Candidate)> {
        let mut agents: Vec<&String> = free.iter().collect();
        agents.sort_by_key(|a| {
            (
                self.idle_since
                    .get(*a)
                    .copied()
                    .unwrap_or(Timestamp::UNIX_EPOCH),
                (*a).clone(),
            )
        });
        let mut waiting: Vec<&Candidate> = candidates.iter().collect();
        waiting.sort_by_key(|c| (c.created_at, c.interaction));
        let pairs: Vec<(String, Candidate)> = agents
            .into_iter()
            .zip(waiting)
            .map(|(a, c)| (a.clone(), c.clone()))
            .collect();
        for (a, _) in &pairs {
            self.idle_since.insert(a.clone(), now);
        }
        pairs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    fn cand(id: i64, t: i64, live: bool) -> Candidate {
        Candidate {
            interaction: id,
            created_at: at(t),
            live,
        }
    }

    #[test]
    fn oldest_first_whatever_the_kind() {
        let mut r = Router::default();
        let got = r.assign(
            at(100),
            &["a".into()],
            &[cand(2, 20, true), cand(1, 10, false)],
        );
        assert_eq!(got, vec![("a".into(), cand(1, 10, false))]);
    }

    #[test]
    fn one_offer_per_free_agent_never_more() {
        let mut r = Router::default();
        let got = r.assign(at(100), &["a".into(), "b".into()], &[cand(1, 1, true)]);
        assert_eq!(got.len(), 1);
        let got = r.assign(
            at(100),
            &["a".into()],
            &[cand(1, 1, true), cand(2, 2, false), cand(3, 3, true)],
        );
        assert_eq!(got.len(), 1);
        assert!(r.assign(at(100), &[], &[cand(1, 1, true)]).is_empty());
    }

    #[test]
    fn the_agent_idle_longest_goes_first() {
        let mut r = Router::default();
        r.assign(at(10), &["a".into()], &[cand(1, 1, true)]);
        r.assign(at(20), &["b".into()], &[cand(2, 2, true)]);
        let got = r.assign(at(30), &["b".into(), "a".into()], &[cand(3, 3, true)]);
        assert_eq!(got[0].0, "a");
    }
}
