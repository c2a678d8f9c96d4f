//! Which task owns which SIP call leg. The SIP endpoint task routes each user-agent event to the
//! leg's owner through this map; inbound calls are registered by the call manager, outbound legs
//! by whoever dials them (before the INVITE leaves, so no response can be missed).

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::mpsc;

use crate::sip::ua::{CallId, SipEvent};

#[derive(Default)]
pub struct LegRegistry {
    owners: Mutex<HashMap<CallId, mpsc::UnboundedSender<SipEvent>>>,
}

impl LegRegistry {
    pub fn register(&self, call: CallId, tx: mpsc::UnboundedSender<SipEvent>) {
        self.lock().insert(call, tx);
    }

    pub fn remove(&self, call: CallId) {
        self.lock().remove(&call);
    }

    /// Every leg with an owner right now (at shutdown: the legs to hang up).
    pub fn calls(&self) -> Vec<CallId> {
        self.lock().keys().copied().collect()
    }

    /// Hand `event` to the leg's owner; a leg's last event (`CallEnded`, `Failed`) also
    /// unregisters it. `false` when nobody owns the leg (it already ended).
    pub fn dispatch(&self, call: CallId, event: SipEvent) -> bool {
        let last = matches!(event, SipEvent::CallEnded { .. } | SipEvent::Failed { .. });
        let mut owners = self.lock();
        let delivered = owners.get(&call).is_some_and(|tx| tx.send(event).is_ok());
        if last || !delivered {
            owners.remove(&call);
        }
        delivered
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<CallId, mpsc::UnboundedSender<SipEvent>>> {
        self.owners
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
