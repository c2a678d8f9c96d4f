//! The store-derived gauges of `GET /metrics`, refreshed on each scrape. Metric names and the
//! recorder live in [`crate::metrics`].

use crate::interaction::{Status, SubType};
use crate::metrics::{CALLBACKS_PENDING, INTERACTIONS};
use crate::store::InteractionStore;

/// Sets the store-derived gauges; every (status, sub_type) pair is set, so counts that drop to
/// zero show zero.
pub(crate) async fn refresh(store: &dyn InteractionStore) -> Result<(), crate::store::Error> {
    let counts = store.counts().await?;
    let mut pending = 0;
    for status in [Status::Open, Status::Bot, Status::Connected, Status::Closed] {
        for sub_type in [SubType::Inbound, SubType::Callback, SubType::Voicemail] {
            let n = counts
                .iter()
                .find(|(s, t, _)| *s == status && *t == sub_type)
                .map_or(0, |c| c.2);
            if (status, sub_type) == (Status::Open, SubType::Callback) {
                pending = n;
            }
            metrics::gauge!(INTERACTIONS, "status" => status.as_str(), "sub_type" => sub_type.as_str()).set(n as f64);
        }
    }
    metrics::gauge!(CALLBACKS_PENDING).set(pending as f64);
    Ok(())
}

/// Sets `hammond_callback_oldest_due_seconds` for each queue: since when its oldest callback
/// that may be dialled now has been due (its not-before time, else its request).
pub(crate) async fn refresh_overdue(
    store: &dyn InteractionStore,
    queues: &[String],
) -> Result<(), crate::store::Error> {
    let now = crate::clock::wall();
    for q in queues {
        // Oldest first: the first page holds the oldest due one unless a hundred older ones
        // are all booked for later.
        let page = store
            .list(crate::store::ListQuery {
                status: Some(Status::Open),
                queues: Some(vec![q.clone()]),
                sub_type: Some(SubType::Callback),
                limit: 100,
                cursor: None,
            })
            .await?;
        let due_since = page
            .items
            .iter()
            .map(|l| &l.interaction)
            .filter(|i| i.not_due_at(now).is_none())
            .filter_map(|i| {
                let cb = i.callback.as_ref()?;
                Some(cb.not_before.or(cb.requested_at).unwrap_or(i.created_at))
            })
            .min();
        let secs = due_since.map_or(0.0, |t| now.duration_since(t).as_secs_f64().max(0.0));
        crate::metrics::callback_oldest_due(q, secs);
    }
    Ok(())
}
