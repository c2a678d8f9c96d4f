//! The configured agents and their presence at run time (shell: a lock and a tokio broadcast of
//! changes). The API reads and sets presence through it; the router and SSE clients subscribe to
//! its changes. The agent types themselves are the domain's ([`crate::queue::agent`]).

use std::collections::HashMap;
use std::sync::RwLock;

use tokio::sync::broadcast;

use crate::queue::agent::{Agent, Presence, PresenceChange};

/// The configured agents and their in-memory presence.
#[derive(Debug)]
pub struct Agents {
    list: Vec<Agent>,
    presence: RwLock<HashMap<String, Presence>>,
    changes: broadcast::Sender<PresenceChange>,
}

impl Agents {
    /// All agents start `away`.
    pub fn new(list: Vec<Agent>) -> Self {
        let presence = list
            .iter()
            .map(|a| (a.id.clone(), Presence::Away))
            .collect();
        Self {
            list,
            presence: RwLock::new(presence),
            changes: broadcast::channel(256).0,
        }
    }

    /// The agent holding `token`, compared in constant time against every agent.
    pub fn by_token(&self, token: &str) -> Option<Agent> {
        let mut found = None;
        for a in &self.list {
            if ct_eq(a.token.as_bytes(), token.as_bytes()) && !a.token.is_empty() {
                found = Some(a.clone());
            }
        }
        found
    }

    /// The agent with `id`.
    pub fn get(&self, id: &str) -> Option<&Agent> {
        self.list.iter().find(|a| a.id == id)
    }

    /// All agents, in config order.
    pub fn all(&self) -> &[Agent] {
        &self.list
    }

    /// An agent's presence (`away` for unknown ids).
    pub fn presence(&self, id: &str) -> Presence {
        self.presence.read().map_or(Presence::Away, |p| {
            p.get(id).copied().unwrap_or(Presence::Away)
        })
    }

    /// Sets an agent's presence and broadcasts the change; `None` for an unknown agent.
    pub fn set_presence(&self, id: &str, status: Presence) -> Option<PresenceChange> {
        let agent = self.get(id)?;
        if let Ok(mut p) = self.presence.write() {
            p.insert(id.to_owned(), status);
        }
        let change = PresenceChange {
            id: agent.id.clone(),
            queues: agent.queues.clone(),
            status,
        };
        let _ = self.changes.send(change.clone());
        Some(change)
    }

    /// Available agents serving `queue` (for push offers).
    pub fn available_for(&self, queue: &str) -> Vec<Agent> {
        self.list
            .iter()
            .filter(|a| a.serves(queue) && self.presence(&a.id) == Presence::Available)
            .cloned()
            .collect()
    }

    /// Presence changes from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<PresenceChange> {
        self.changes.subscribe()
    }
}

/// Constant-time equality: the time depends only on the longer length, never on where the
/// inputs differ (so a token cannot be guessed byte by byte from response times).
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= usize::from(x ^ y);
    }
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_equality() {
        assert!(ct_eq(b"alice-secret", b"alice-secret"));
        assert!(ct_eq(b"", b""));
        assert!(!ct_eq(b"alice-secret", b"alice-secreT"));
        assert!(!ct_eq(b"alice-secret", b"alice-secret2"));
        assert!(!ct_eq(b"alice", b""));
        assert!(!ct_eq(b"\0", b""));
    }

    fn agent(id: &str, token: &str) -> Agent {
        Agent {
            id: id.into(),
            endpoint: format!("sip:{id}@127.0.0.1"),
            queues: vec!["support".into()],
            token: token.into(),
        }
    }

    #[test]
    fn tokens_find_their_agent_and_an_empty_token_finds_none() {
        let agents = Agents::new(vec![agent("alice", "a-secret"), agent("bob", "")]);
        assert_eq!(
            agents.by_token("a-secret").map(|a| a.id),
            Some("alice".into())
        );
        assert!(agents.by_token("").is_none());
        assert!(agents.by_token("a-secreT").is_none());
    }

    #[test]
    fn presence_starts_away_and_changes_are_broadcast() {
        let agents = Agents::new(vec![agent("alice", "a")]);
        let mut rx = agents.subscribe();
        assert_eq!(agents.presence("alice"), Presence::Away);
        assert!(agents.available_for("support").is_empty());
        agents.set_presence("alice", Presence::Available).unwrap();
        assert_eq!(rx.try_recv().unwrap().status, Presence::Available);
        assert_eq!(agents.available_for("support").len(), 1);
        assert!(agents.set_presence("nobody", Presence::Available).is_none());
    }
}
