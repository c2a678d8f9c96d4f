//! Presence and offer claims for a store that one process has to itself (SQLite): kept in
//! memory, since no other instance needs to see them. Agents start `away` at every start, as
//! they always did; with PostgreSQL both are tables every instance shares (`pg`).

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use jiff::Timestamp;
use tokio::sync::broadcast;

use super::OfferClaim;
use crate::queue::agent::Presence;

/// In-memory presence and claims.
#[derive(Debug)]
pub(crate) struct Local {
    presence: Mutex<HashMap<String, Presence>>,
    changes: broadcast::Sender<(String, Presence)>,
    /// Claimed key → until when.
    claims: Mutex<HashMap<String, Timestamp>>,
}

impl Default for Local {
    fn default() -> Self {
        Self {
            presence: Mutex::default(),
            changes: broadcast::channel(256).0,
            claims: Mutex::default(),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Local {
    pub(crate) fn claim(&self, claim: &OfferClaim, now: Timestamp) -> bool {
        let mut claims = lock(&self.claims);
        let keys = claim.keys();
        if keys
            .iter()
            .any(|k| claims.get(k).is_some_and(|until| *until >= now))
        {
            return false;
        }
        for k in keys {
            claims.insert(k, claim.until);
        }
        true
    }

    pub(crate) fn release(&self, claim: &OfferClaim) {
        let mut claims = lock(&self.claims);
        for k in claim.keys() {
            // Only this claim's hold: a later claim of the same key keeps its own `until`.
            if claims.get(&k) == Some(&claim.until) {
                claims.remove(&k);
            }
        }
    }

    pub(crate) fn set_presence(&self, agent: &str, presence: Presence) {
        lock(&self.presence).insert(agent.to_owned(), presence);
        let _ = self.changes.send((agent.to_owned(), presence));
    }

    pub(crate) fn presences(&self) -> Vec<(String, Presence)> {
        lock(&self.presence)
            .iter()
            .map(|(a, p)| (a.clone(), *p))
            .collect()
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<(String, Presence)> {
        self.changes.subscribe()
    }
}
