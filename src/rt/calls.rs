//! The call manager: routes the user agent's events to call tasks, and starts a task for each
//! new call whose Request-URI selects a queue (404 otherwise).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::mpsc;
use tracing::{debug, info};

use super::call_task::{self, IncomingCall};
use super::services::Services;
use super::sip_socket::{EventSink, UaHandle};
use crate::sip::ua::{Command, SipEvent};

/// Starts call tasks and routes events to the legs' owners. Lives in the SIP endpoint task.
pub struct CallManager {
    svc: Arc<Services>,
    /// Set on SIGTERM: new calls get 503 while the ones in progress finish.
    draining: Arc<AtomicBool>,
}

impl CallManager {
    pub fn new(svc: Arc<Services>, draining: Arc<AtomicBool>) -> Self {
        Self { svc, draining }
    }
}

impl EventSink for CallManager {
    fn dispatch(&mut self, event: SipEvent, ua: &UaHandle) {
        let call = match &event {
            SipEvent::IncomingCall { call, .. }
            | SipEvent::CallConfirmed { call }
            | SipEvent::CallCancelled { call }
            | SipEvent::CallEnded { call, .. }
            | SipEvent::ReInvite { call, .. }
            | SipEvent::InfoReceived { call, .. }
            | SipEvent::Progress { call, .. }
            | SipEvent::Answered { call, .. }
            | SipEvent::Failed { call, .. }
            | SipEvent::ReferResponse { call, .. }
            | SipEvent::ReferNotify { call, .. } => *call,
        };
        match event {
            SipEvent::IncomingCall {
                call,
                invite,
                source,
            } => {
                if self.draining.load(Ordering::Relaxed) {
                    ua.send(Command::Reject { call, status: 503 });
                    return;
                }
                if self.svc.media.overloaded() {
                    debug!("call refused: media clock overloaded (503)");
                    ua.send(Command::Reject { call, status: 503 });
                    return;
                }
                let user = invite.uri.user_decoded().unwrap_or_default();
                let Some(flow) = self.svc.queues.current().route(&user) else {
                    info!(user = %user, "no queue for this Request-URI (404)");
                    ua.send(Command::Reject { call, status: 404 });
                    return;
                };
                let (tx, rx) = mpsc::unbounded_channel();
                self.svc.legs.register(call, tx);
                call_task::spawn(
                    self.svc.clone(),
                    IncomingCall {
                        call,
                        invite: *invite,
                        source,
                        flow,
                    },
                    rx,
                );
            }
            other => {
                self.svc.legs.dispatch(call, other);
            }
        }
    }
}
