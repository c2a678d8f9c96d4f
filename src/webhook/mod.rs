//! Webhooks (issue 17): every lifecycle event of the event log POSTed as JSON to the
//! configured `[[webhooks]]`, signed per Standard Webhooks (`webhook-id`, `webhook-timestamp`,
//! `webhook-signature` = HMAC-SHA256, see [`sign`]).
//!
//! The outbox is the event log itself: the store writes each change's event in the transaction
//! that makes the change, so nothing is ever lost between a change and its webhook, and a
//! delivery never touches a call's path (a call's driver never waits on a webhook). Each
//! webhook has a cursor in the store (the last event it is done with); [`deliver`] reads the log
//! after it, POSTs each wanted event in order, retries a failing one with backoff
//! ([`backoff`]), and moves the cursor past an event once it was delivered or given up on.
//! Killed mid-delivery, Hammond resumes from the cursor: at least once, never lost (unless the
//! receiver stays down past the event log's retention, or the retries run out; both are counted
//! in `/metrics` and shown on the wallboard).
//!
//! `webhook-id` is `evt_<event id>`, the same on every attempt and every instance, so a
//! receiver deduplicates on it. With several instances on one PostgreSQL store one instance at
//! a time delivers each webhook (a hold renewed while it works,
//! [`crate::store::InteractionStore::hold_webhook`]); if it dies, another takes over from the
//! stored cursor after the hold lapses (30 s), which may send the event in flight again.

pub mod deliver;
pub mod sign;

use serde::Serialize;

/// Every event kind a webhook may ask for (the domain's list: the config checks it too).
pub use crate::interaction::EVENT_KINDS;

/// Waits between attempts at one event: quick at first (a receiver restarting), then up to
/// hours; after the last, the event is given up on. `attempt` counts failed attempts so far
/// (1 after the first failure).
pub fn backoff(attempt: u32) -> Option<std::time::Duration> {
    const SECS: [u64; 10] = [1, 5, 30, 120, 600, 1800, 3600, 7200, 14_400, 28_800];
    let k = usize::try_from(attempt).ok()?.checked_sub(1)?;
    SECS.get(k).map(|s| std::time::Duration::from_secs(*s))
}

/// One webhook's delivery state, for the wallboard.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct WebhookState {
    /// The webhook's name.
    pub name: String,
    /// Events delivered since start.
    pub delivered: u64,
    /// Attempts that failed since start.
    pub failed_attempts: u64,
    /// Events given up on since start (retries exhausted).
    pub given_up: u64,
    /// The last event id it is done with.
    pub cursor: i64,
    /// Whether it is retrying an event now.
    pub retrying: bool,
    /// The last failure, if the latest attempt failed.
    pub last_error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_then_gives_up() {
        assert_eq!(backoff(0), None);
        assert_eq!(backoff(1), Some(std::time::Duration::from_secs(1)));
        assert_eq!(backoff(2), Some(std::time::Duration::from_secs(5)));
        assert_eq!(backoff(10), Some(std::time::Duration::from_secs(28_800)));
        assert_eq!(backoff(11), None);
    }

    #[test]
    fn every_lifecycle_event_can_be_asked_for() {
        use crate::interaction::Event;
        let rescheduled = Event::Rescheduled {
            not_before: jiff::Timestamp::UNIX_EPOCH,
            by: "alice".into(),
        };
        for e in [
            Event::EnteredWorkflow,
            Event::Bridged,
            Event::Answered,
            rescheduled,
        ] {
            assert!(EVENT_KINDS.contains(&e.name()));
        }
    }
}
