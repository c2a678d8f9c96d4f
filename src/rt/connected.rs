//! Connected interactions whose call is up, so that an agent closing one through the API ends
//! its call: otherwise both phones would go on talking, or keep ringing, under an interaction
//! that is already closed.
//!
//! The task that owns the call registers it for as long as the call is up and listens on the
//! returned [`HangupRequest`]; the API's close asks for the hang-up once the close is stored.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

use crate::interaction::InteractionId;

#[derive(Default)]
pub struct ConnectedCalls {
    calls: Mutex<HashMap<InteractionId, Arc<Asked>>>,
}

/// One call's hang-up request: a flag to look at before a step that cannot be undone (dialling
/// the customer), and a wake-up for the task that waits.
#[derive(Default)]
struct Asked {
    flag: AtomicBool,
    notify: Notify,
}

impl ConnectedCalls {
    /// `interaction`'s call is up until the returned request is dropped.
    pub fn register(self: &Arc<Self>, interaction: InteractionId) -> HangupRequest {
        let asked = Arc::new(Asked::default());
        self.lock().insert(interaction, asked.clone());
        HangupRequest {
            calls: self.clone(),
            interaction,
            asked,
        }
    }

    /// Ask `interaction`'s call to hang up; `false` when it has no call up.
    pub fn hang_up(&self, interaction: InteractionId) -> bool {
        match self.lock().get(&interaction) {
            Some(asked) => {
                asked.flag.store(true, Ordering::Release);
                // Kept as a permit if the call's task is not waiting right now.
                asked.notify.notify_one();
                true
            }
            None => false,
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<InteractionId, Arc<Asked>>> {
        self.calls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// One registered call's side: completes when the call should hang up.
pub struct HangupRequest {
    calls: Arc<ConnectedCalls>,
    interaction: InteractionId,
    asked: Arc<Asked>,
}

impl HangupRequest {
    /// Completes once a hang-up is asked for (at once if it was asked meanwhile).
    pub async fn requested(&self) {
        self.asked.notify.notified().await;
    }

    /// Whether a hang-up was asked for (without waiting, and without using the request up).
    pub fn is_requested(&self) -> bool {
        self.asked.flag.load(Ordering::Acquire)
    }
}

impl Drop for HangupRequest {
    fn drop(&mut self) {
        let mut calls = self.calls.lock();
        // A later registration of the same interaction (a new call) is not ours to remove.
        if calls
            .get(&self.interaction)
            .is_some_and(|a| Arc::ptr_eq(a, &self.asked))
        {
            calls.remove(&self.interaction);
        }
    }
}

/// Completes when `request` asks for a hang-up; never without one.
pub async fn hang_up_requested(request: Option<&HangupRequest>) {
    match request {
        Some(r) => r.requested().await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hang_up_reaches_the_registered_call_even_before_it_listens() {
        let calls = Arc::new(ConnectedCalls::default());
        let request = calls.register(7);
        assert!(!request.is_requested());
        assert!(calls.hang_up(7));
        assert!(request.is_requested());
        tokio::time::timeout(std::time::Duration::from_secs(1), request.requested())
            .await
            .expect("the request was kept");
    }

    #[test]
    fn a_call_no_longer_up_cannot_be_hung_up() {
        let calls = Arc::new(ConnectedCalls::default());
        assert!(!calls.hang_up(7));
        drop(calls.register(7));
        assert!(!calls.hang_up(7));
    }

    #[test]
    fn an_old_registration_leaving_keeps_the_new_one() {
        let calls = Arc::new(ConnectedCalls::default());
        let old = calls.register(7);
        let _new = calls.register(7);
        drop(old);
        assert!(calls.hang_up(7));
    }
}
