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
}

impl Offers {
    /// An offer of `interaction` rings `agent`.
    pub fn ringing(&mut self, agent: &str, interaction: InteractionId) {
        self.ringing.insert(agent.to_owned());
        self.offered.insert(interaction);
    }

    /// The offer ended; `bridged`: the agent answered and is on the call.
    pub fn ended(&mut self, agent: &str, interaction: InteractionId, _bridged: bool) {
        self.ringing.remove(agent);
        self.offered.remove(&interaction);
    }

    /// Whether `interaction` is being offered.
    pub fn is_offered(&self, interaction: InteractionId) -> bool {
        self.offered.contains(&interaction)
    }

    /// Whether `agent` may be offered something: not engaged here, and not on a connected
    /// interaction in the store (`store_busy`).
    pub fn is_free(&self, agent: &str, store_busy: &HashSet<String>) -> bool {
        !store_busy.contains(agent) && !self.ringing.contains(agent)
    }
}
