//! The configured agents and their presence at run time (shell: a lock, a tokio broadcast of
//! changes, and the store). The API reads and sets presence through it; the router and SSE
//! clients subscribe to its changes. The agent types themselves are the domain's
//! ([`crate::queue::agent`]).
//!
//! Presence is stored ([`InteractionStore::set_presence`]): with PostgreSQL every instance
//! shares it. Reads are answered from a copy kept here, which [`Agents::follow`] keeps up to
//! date with every instance's changes (its own included), so the router and the API read it
//! without a query.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use tokio::sync::broadcast::{self, error::RecvError};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::queue::agent::{Agent, Presence, PresenceChange};
use crate::store::{self, InteractionStore};

/// The configured agents and their presence.
pub struct Agents {
    list: Vec<Agent>,
    presence: RwLock<HashMap<String, Presence>>,
    /// When each agent's presence last changed, as this instance heard it (the wallboard).
    since: RwLock<HashMap<String, jiff::Timestamp>>,
    changes: broadcast::Sender<PresenceChange>,
    /// Where presence is kept for every instance; `None`: here only (tests of the API alone).
    store: Option<Arc<dyn InteractionStore>>,
}

impl std::fmt::Debug for Agents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agents")
            .field("list", &self.list)
            .field("presence", &self.presence)
            .field("stored", &self.store.is_some())
            .finish()
    }
}

impl Agents {
    /// Presence kept here only; all agents start `away`.
    pub fn new(list: Vec<Agent>) -> Self {
        let presence = list
            .iter()
            .map(|a| (a.id.clone(), Presence::Away))
            .collect();
        Self {
            list,
            presence: RwLock::new(presence),
            since: RwLock::new(HashMap::new()),
            changes: broadcast::channel(256).0,
            store: None,
        }
    }

    /// Presence kept in `store`, shared with every instance using it. Call [`Agents::follow`]
    /// to read what is stored and hear other instances' changes.
    pub fn stored(list: Vec<Agent>, store: Arc<dyn InteractionStore>) -> Self {
        Self {
            store: Some(store),
            ..Self::new(list)
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

    /// When `id`'s presence last changed, as far as this instance knows (`None`: not since
    /// Hammond started).
    pub fn since(&self, id: &str) -> Option<jiff::Timestamp> {
        self.since.read().ok().and_then(|s| s.get(id).copied())
    }

    /// Sets an agent's presence (stored first, for every instance) and broadcasts the change;
    /// `Ok(None)` for an unknown agent. A store that cannot take it changes nothing.
    pub async fn set_presence(
        &self,
        id: &str,
        status: Presence,
    ) -> Result<Option<PresenceChange>, store::Error> {
        if self.get(id).is_none() {
            return Ok(None);
        }
        if let Some(s) = &self.store {
            s.set_presence(id, status, crate::clock::wall()).await?;
        }
        Ok(self.update(id, status, true))
    }

    /// [`Agents::set_presence`] from code that cannot wait for the store (a call's driver
    /// setting an agent who did not answer `away`); a failure is logged.
    pub fn set_presence_soon(self: &Arc<Self>, id: &str, status: Presence) {
        let (agents, id) = (self.clone(), id.to_owned());
        tokio::spawn(async move {
            if let Err(e) = agents.set_presence(&id, status).await {
                tracing::warn!(agent.id = %id, error = %e, "presence not stored");
            }
        });
    }

    /// Keeps the copy here in step with the store until `stop`: what is stored now (another
    /// instance's agents may be available already), then every change, whichever instance
    /// made it. A no-op without a store.
    pub fn follow(self: &Arc<Self>, stop: CancellationToken) -> Option<JoinHandle<()>> {
        let store = self.store.clone()?;
        let agents = self.clone();
        // Subscribed before the first read: a change made in between is heard.
        let mut heard = store.subscribe_presence();
        Some(tokio::spawn(async move {
            agents.reload(store.as_ref()).await;
            loop {
                let next = tokio::select! {
                    h = heard.recv() => h,
                    () = stop.cancelled() => return,
                };
                match next {
                    Ok((id, status)) => {
                        agents.update(&id, status, false);
                    }
                    Err(RecvError::Lagged(_)) => agents.reload(store.as_ref()).await,
                    Err(RecvError::Closed) => return,
                }
            }
        }))
    }

    /// Reads every stored presence into the copy here.
    async fn reload(&self, store: &dyn InteractionStore) {
        match store.presences().await {
            Ok(all) => {
                for (id, status) in all {
                    self.update(&id, status, false);
                }
            }
            Err(e) => tracing::warn!(error = %e, "stored presence not read"),
        }
    }

    /// Records `status` here; broadcasts it when `always` or when it is a change.
    fn update(&self, id: &str, status: Presence, always: bool) -> Option<PresenceChange> {
        let agent = self.get(id)?;
        let before = self
            .presence
            .write()
            .ok()
            .and_then(|mut p| p.insert(id.to_owned(), status));
        let change = PresenceChange {
            id: agent.id.clone(),
            queues: agent.queues.clone(),
            status,
        };
        if before != Some(status)
            && let Ok(mut since) = self.since.write()
        {
            since.insert(id.to_owned(), crate::clock::wall());
        }
        if always || before != Some(status) {
            let _ = self.changes.send(change.clone());
        }
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
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
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
            role: crate::queue::agent::Role::Agent,
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

    #[tokio::test]
    async fn presence_starts_away_and_changes_are_broadcast() {
        let agents = Agents::new(vec![agent("alice", "a")]);
        let mut rx = agents.subscribe();
        assert_eq!(agents.presence("alice"), Presence::Away);
        assert!(agents.available_for("support").is_empty());
        agents
            .set_presence("alice", Presence::Available)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(rx.try_recv().unwrap().status, Presence::Available);
        assert_eq!(agents.available_for("support").len(), 1);
        let unknown = agents.set_presence("nobody", Presence::Available).await;
        assert!(unknown.unwrap().is_none());
    }

    /// Presence is the store's: another registry on the same store (another instance's)
    /// follows it, is told of the change once, and starts from what is stored.
    #[tokio::test]
    async fn stored_presence_is_followed_by_every_registry_on_the_store() {
        let store: Arc<dyn InteractionStore> = Arc::new(
            crate::store::SqliteStore::open("sqlite::memory:")
                .await
                .unwrap(),
        );
        let here = Arc::new(Agents::stored(vec![agent("alice", "a")], store.clone()));
        here.set_presence("alice", Presence::Available)
            .await
            .unwrap();
        let there = Arc::new(Agents::stored(
            vec![agent("alice", "a"), agent("bob", "b")],
            store.clone(),
        ));
        let mut heard = there.subscribe();
        let stop = CancellationToken::new();
        let task = there.follow(stop.clone()).unwrap();
        let first = heard.recv().await.unwrap();
        assert_eq!(
            (first.id.as_str(), first.status),
            ("alice", Presence::Available)
        );
        assert_eq!(there.presence("alice"), Presence::Available);
        here.set_presence("alice", Presence::Away).await.unwrap();
        let next = heard.recv().await.unwrap();
        assert_eq!(next.status, Presence::Away);
        assert_eq!(there.presence("alice"), Presence::Away);
        assert!(heard.try_recv().is_err(), "one change, heard once");
        stop.cancel();
        task.await.unwrap();
    }
}
