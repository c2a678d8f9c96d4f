//! Agents as the domain knows them: who they are, their presence, and the accept that hands an
//! interaction to one. PURE data: the registry that holds presence at run time and broadcasts its
//! changes is the shell's (`rt::agents::Agents`); the HTTP API only maps requests onto these.

use serde::{Deserialize, Serialize};

pub use crate::config::Role;
use crate::interaction::Interaction;

/// An agent (the app maps `config::AgentConfig` onto this).
#[derive(Clone, PartialEq, Eq)]
pub struct Agent {
    /// Unique id (`alice`).
    pub id: String,
    /// The agent's phone: Hammond calls it when the agent accepts.
    pub endpoint: String,
    /// Queues the agent serves.
    pub queues: Vec<String>,
    /// The API bearer token.
    pub token: String,
    /// What the agent may do through the API (`[[agents]] role`).
    pub role: Role,
}

/// Never prints the token: agents end up in logs.
impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("id", &self.id)
            .field("endpoint", &self.endpoint)
            .field("queues", &self.queues)
            .field("token", &"<redacted>")
            .field("role", &self.role)
            .finish()
    }
}

impl Agent {
    /// Whether the agent serves `queue` (takes its push offers).
    pub fn serves(&self, queue: &str) -> bool {
        self.queues.iter().any(|q| q == queue)
    }

    /// Whether the agent may see and act on `queue` through the API: its own queues, and every
    /// queue for a supervisor.
    pub fn sees(&self, queue: &str) -> bool {
        self.is_supervisor() || self.serves(queue)
    }

    /// A supervisor ([`Role::Supervisor`]).
    pub fn is_supervisor(&self) -> bool {
        self.role == Role::Supervisor
    }
}

/// Agent presence. Agents start `away`; presence only governs push offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Presence {
    /// Push offers welcome.
    Available,
    /// No push offers (the Home List still works).
    Away,
}

/// A presence change, broadcast to SSE clients and the router.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PresenceChange {
    /// The agent.
    pub id: String,
    /// Its queues.
    pub queues: Vec<String>,
    /// The new presence.
    pub status: Presence,
}

/// An agent accepted an interaction (over the API): the callback dialer consumes it.
#[derive(Debug, Clone)]
pub struct Accepted {
    /// The interaction, now connected and assigned.
    pub interaction: Interaction,
    /// The accepting agent (its endpoint is the phone to call).
    pub agent: Agent,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_token() {
        let a = Agent {
            id: "alice".into(),
            endpoint: "sip:alice@127.0.0.1:5070".into(),
            queues: vec!["support".into()],
            token: "alice-secret".into(),
            role: Role::Agent,
        };
        let shown = format!("{a:?}");
        assert!(shown.contains("alice"), "{shown}");
        assert!(!shown.contains("alice-secret"), "{shown}");
        assert!(a.serves("support") && !a.serves("sales"));
        assert!(a.sees("support") && !a.sees("sales"));
        let boss = Agent {
            role: Role::Supervisor,
            queues: vec![],
            ..a
        };
        assert!(boss.sees("sales") && !boss.serves("sales"));
    }
}
