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
