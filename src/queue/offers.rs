//! Which agents and interactions this instance's router has engaged, so that a routing pass
//! neither rings an agent twice nor offers an interaction twice. PURE: the router task tells
//! it when an offer starts and ends; the store's connected interactions are the other half of
//! "busy" (and the only half across instances).

use std::collections::HashSet;

use crate::interaction::InteractionId;

/// Offers in flight.
#[derive(Debug, Default)]
pub struct Offers {
    /// Agents whose phone an offer rings.
    ringing: HashSet<String>,
    /// Interactions being offered.
    offered: HashSet<InteractionId>,
    /// Agents who answered an offer, until their call is over: the call's store write may
    /// not have landed yet (or the pass read the store before it did).
    talking: HashSet<String>,
}

impl Offers {
    /// An offer of `interaction` rings `agent`.
    pub fn ringing(&mut self, agent: &str, interaction: InteractionId) {
        self.ringing.insert(agent.to_owned());
        self.offered.insert(interaction);
    }

    /// The offer ended; `bridged`: the agent answered and stays busy until
    /// [`Self::call_over`].
    pub fn ended(&mut self, agent: &str, interaction: InteractionId, bridged: bool) {
        self.ringing.remove(agent);
        self.offered.remove(&interaction);
        if bridged {
            self.talking.insert(agent.to_owned());
        }
    }

    /// The call `agent` answered is over (its driver finished, its writes done).
    pub fn call_over(&mut self, agent: &str) {
        self.talking.remove(agent);
    }

    /// Whether `interaction` is being offered.
    pub fn is_offered(&self, interaction: InteractionId) -> bool {
        self.offered.contains(&interaction)
    }

    /// Whether `agent` may be offered something: not engaged here, and not on a connected
    /// interaction in the store (`store_busy`).
    pub fn is_free(&self, agent: &str, store_busy: &HashSet<String>) -> bool {
        !store_busy.contains(agent)
            && !self.ringing.contains(agent)
            && !self.talking.contains(agent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none() -> HashSet<String> {
        HashSet::new()
    }

    /// The race reported in session 7: an agent answers a pushed live caller; the call's
    /// `offered_live` write is queued to the store, the router hears "bridged" and lets go of
    /// the offer, and the next pass comes before the write lands (or read the connected
    /// interactions before it). The agent must not look free then.
    #[test]
    fn an_answered_offer_keeps_the_agent_busy_before_the_store_shows_the_call() {
        let mut o = Offers::default();
        o.ringing("alice", 1);
        assert!(!o.is_free("alice", &none()));
        o.ended("alice", 1, true);
        assert!(
            !o.is_free("alice", &none()),
            "alice is on the call; the store's connected list just does not show it yet"
        );
        assert!(!o.is_offered(1));
        o.call_over("alice");
        assert!(o.is_free("alice", &none()), "free once the call is over");
    }

    #[test]
    fn an_offer_not_answered_frees_the_agent_at_once() {
        let mut o = Offers::default();
        o.ringing("alice", 1);
        o.ended("alice", 1, false);
        assert!(o.is_free("alice", &none()));
        assert!(!o.is_free("alice", &HashSet::from(["alice".to_owned()])));
    }
}
