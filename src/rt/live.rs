//! Live callers waiting in a queue, as the router sees them: each one's call task accepts
//! commands (an offer to an agent) through this registry.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::{mpsc, oneshot};

use crate::interaction::InteractionId;
use crate::queue::agent::Agent;

/// What the router asks of a live call.
#[derive(Debug)]
pub enum CallCommand {
    /// Ring `agent`'s phone; bridge the caller to it if answered within `ring_timeout`.
    Offer {
        agent: Agent,
        ring_timeout: Duration,
        done: oneshot::Sender<OfferOutcome>,
        /// Held until the call is over when the agent answers (see [`CallOver`]).
        over: CallOver,
    },
}

/// Given with every offer. The call's driver holds it until the call is over if the agent
/// answered; the router keeps that agent busy until it is dropped, so no pass finds the agent
/// free while its call is up, whether or not the store shows the call yet.
#[derive(Debug)]
pub struct CallOver {
    _tx: oneshot::Sender<()>,
}

impl CallOver {
    /// A new one, and what completes when it is dropped.
    pub fn new() -> (Self, oneshot::Receiver<()>) {
        let (tx, rx) = oneshot::channel();
        (Self { _tx: tx }, rx)
    }
}

pub use crate::call::OfferOutcome;

/// Commands queued for one call. The router sends at most one offer per caller at a time, so
/// a full queue means the call's task is stuck: the offer is refused there and then
/// (`LiveCaller::send` returns `false`) rather than waiting on it.
const COMMAND_QUEUE: usize = 4;

/// One waiting live caller.
#[derive(Debug, Clone)]
pub struct LiveCaller {
    pub interaction: InteractionId,
    pub queue: String,
    /// Original arrival: live callers and callbacks are served in this order.
    pub created_at: Timestamp,
    tx: mpsc::Sender<CallCommand>,
}

impl LiveCaller {
    /// Queue `cmd` for the call; `false` when it is gone or its queue is full.
    pub fn send(&self, cmd: CallCommand) -> bool {
        self.tx.try_send(cmd).is_ok()
    }
}

#[derive(Default)]
pub struct LiveCalls {
    calls: Mutex<HashMap<InteractionId, LiveCaller>>,
}

impl LiveCalls {
    /// Register a call; commands arrive on the returned receiver.
    pub fn register(
        &self,
        interaction: InteractionId,
        queue: &str,
        created_at: Timestamp,
    ) -> mpsc::Receiver<CallCommand> {
        let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
        self.lock().insert(
            interaction,
            LiveCaller {
                interaction,
                queue: queue.to_owned(),
                created_at,
                tx,
            },
        );
        rx
    }

    pub fn remove(&self, interaction: InteractionId) {
        self.lock().remove(&interaction);
    }

    /// Waiting callers of `queue`, oldest first.
    pub fn waiting(&self, queue: &str) -> Vec<LiveCaller> {
        let mut v: Vec<LiveCaller> = self
            .lock()
            .values()
            .filter(|c| c.queue == queue)
            .cloned()
            .collect();
        v.sort_by_key(|c| (c.created_at, c.interaction));
        v
    }

    /// One waiting caller by interaction.
    pub fn waiting_one(&self, interaction: InteractionId) -> Option<LiveCaller> {
        self.lock().get(&interaction).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<InteractionId, LiveCaller>> {
        self.calls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
