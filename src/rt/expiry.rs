//! The expiry sweep: a callback still open past its queue's `[callback] expiry` (from its
//! request, or from a later not-before) closes `expired`, with a feed entry saying why. Runs
//! every [`EVERY`]; the decision is the flow's ([`crate::workflow::Flow::callback_expires`]).
//! On a store shared by several instances each sweeps; the lifecycle refuses a second close,
//! so a callback expires once.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use super::queue_watch::QueueRegistry;
use crate::interaction::{CloseReason, Event, Note, Status, SubType};
use crate::store::{InteractionStore, ListQuery, MAX_PAGE};

/// How often open callbacks are checked.
pub const EVERY: Duration = Duration::from_secs(30);

/// Sweeps every [`EVERY`] until `shutdown`.
pub fn spawn(
    store: Arc<dyn InteractionStore>,
    queues: Arc<QueueRegistry>,
    shutdown: CancellationToken,
) {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = tokio::time::sleep(EVERY) => {}
                () = shutdown.cancelled() => return,
            }
            let n = sweep(store.as_ref(), &queues, crate::clock::wall()).await;
            if n > 0 {
                info!(count = n, "callbacks expired");
            }
        }
    });
}

/// Closes every open callback past its queue's expiry at `now` (a page of the oldest per
/// queue each time); returns how many closed.
pub async fn sweep(store: &dyn InteractionStore, queues: &QueueRegistry, now: Timestamp) -> usize {
    let mut closed = 0;
    let set = queues.current();
    for flow in set.iter().filter(|f| f.callback.expiry.is_some()) {
        let page = match store
            .list(ListQuery {
                status: Some(Status::Open),
                queues: Some(vec![flow.name.clone()]),
                sub_type: Some(SubType::Callback),
                limit: MAX_PAGE,
                cursor: None,
            })
            .await
        {
            Ok(p) => p,
            Err(e) => {
                debug!(error = %e, "expiry sweep: list failed");
                continue;
            }
        };
        for l in page.items {
            let i = l.interaction;
            let Some(cb) = &i.callback else { continue };
            let requested = cb.requested_at.unwrap_or(i.created_at);
            let Some(at) = flow.callback_expires(requested, cb.not_before) else {
                continue;
            };
            if at > now {
                continue;
            }
            let note = Event::Note(Note::Expired {
                after: flow.callback.expiry.unwrap_or_default(),
            });
            let close = Event::Closed {
                reason: CloseReason::Expired,
                disposition: None,
            };
            // Taken by an agent meanwhile: the close is refused, and that is right.
            if store.apply(i.id, close, now).await.is_ok() {
                closed += 1;
                if let Err(e) = store.apply(i.id, note, now).await {
                    debug!(error = %e, "expiry note not written");
                }
            }
        }
    }
    closed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interaction::Interaction;
    use crate::store::SqliteStore;
    use crate::workflow::QueueSet;
    use crate::workflow::test_support::support_flow;

    /// Issue 21: an open callback past the queue's expiry (7 days in the shipped queue) is
    /// closed `expired` with the feed saying so; a younger one, and one whose chosen slot is
    /// later, stay open.
    #[tokio::test]
    async fn callbacks_past_their_expiry_close_expired_on_the_feed() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&format!("sqlite://{}/h.db", dir.path().display()))
            .await
            .unwrap();
        let queues = QueueRegistry::new(QueueSet::new([support_flow()]), Vec::new());
        let t = |s: &str| s.parse::<Timestamp>().unwrap();
        let new = |number: &str, at: &str, not_before: Option<&str>| crate::store::NewCallback {
            interaction: Interaction::requested_callback(
                "support",
                number,
                not_before.map(t),
                t(at),
            ),
            booking: crate::store::Booking {
                number: number.into(),
                not_before: not_before.map(t),
                max_per_day: 0,
                since: t(at),
            },
            note: None,
            idempotency_key: None,
        };
        let old = store
            .create_callback(new("+15551230001", "2026-03-01T10:00:00Z", None))
            .await
            .unwrap()
            .interaction;
        let young = store
            .create_callback(new("+15551230002", "2026-03-05T10:00:00Z", None))
            .await
            .unwrap()
            .interaction;
        let slot = store
            .create_callback(new(
                "+15551230003",
                "2026-03-01T10:00:00Z",
                Some("2026-03-03T15:00:00Z"),
            ))
            .await
            .unwrap()
            .interaction;
        let now = t("2026-03-08T12:00:00Z");
        assert_eq!(sweep(&store, &queues, now).await, 1);
        let d = store.get(old.id).await.unwrap();
        assert_eq!(d.listed.interaction.status, Status::Closed);
        assert_eq!(
            d.listed.interaction.close_reason,
            Some(CloseReason::Expired)
        );
        assert!(
            d.feed
                .iter()
                .any(|e| e.kind == "expired" && e.text.contains("7d")),
            "{:?}",
            d.feed
        );
        for id in [young.id, slot.id] {
            assert_eq!(
                store.get(id).await.unwrap().listed.interaction.status,
                Status::Open
            );
        }
        // Past the slot's own week, it goes too; a second sweep finds nothing more.
        assert_eq!(sweep(&store, &queues, t("2026-03-10T16:00:00Z")).await, 1);
        assert_eq!(sweep(&store, &queues, t("2026-03-10T16:00:00Z")).await, 0);
    }
}
