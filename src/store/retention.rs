//! Event-log retention (shell): prunes change events older than `[store] event_retention`, at
//! start and then periodically. SSE clients resume from the log; one behind what was pruned
//! gets a `reset` (see `api::events`), so nothing is replayed with a hole in it.

use std::sync::Arc;
use std::time::Duration;

use jiff::SignedDuration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::InteractionStore;
use crate::clock;

/// The longest pause between prunings: a day's retention is enforced to within the hour.
const PRUNE_EVERY_MAX: Duration = Duration::from_secs(3600);

/// How often to prune for `retention`: a tenth of it, at least a second, at most an hour.
pub fn prune_every(retention: Duration) -> Duration {
    (retention / 10).clamp(Duration::from_secs(1), PRUNE_EVERY_MAX)
}

/// Prunes now, then every [`prune_every`], until `stop`.
pub fn spawn_pruner(
    store: Arc<dyn InteractionStore>,
    retention: Duration,
    stop: CancellationToken,
) -> JoinHandle<()> {
    let keep = SignedDuration::try_from(retention).unwrap_or(SignedDuration::MAX);
    tokio::spawn(async move {
        loop {
            if let Ok(before) = clock::wall().checked_sub(keep) {
                match store.prune_events(before).await {
                    Ok(0) => {}
                    Ok(n) => info!(events = n, older_than = %before, "event log pruned"),
                    Err(e) => warn!(error = %e, "event log not pruned"),
                }
            }
            tokio::select! {
                () = tokio::time::sleep(prune_every(retention)) => {}
                () = stop.cancelled() => return,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interaction::Interaction;
    use crate::store::SqliteStore;

    #[test]
    fn prunes_a_tenth_of_the_retention_within_bounds() {
        assert_eq!(
            prune_every(Duration::from_secs(7 * 86_400)),
            PRUNE_EVERY_MAX
        );
        assert_eq!(
            prune_every(Duration::from_secs(600)),
            Duration::from_secs(60)
        );
        assert_eq!(
            prune_every(Duration::from_millis(10)),
            Duration::from_secs(1)
        );
    }

    /// Events older than the retention go at start; the newer ones, and always the newest, stay.
    #[tokio::test]
    async fn the_pruner_keeps_the_retention() {
        let store = Arc::new(SqliteStore::open("sqlite::memory:").await.unwrap());
        let long_ago = clock::wall() - SignedDuration::from_hours(48);
        for _ in 0..30 {
            store
                .create(Interaction::inbound("support", "1", long_ago))
                .await
                .unwrap();
        }
        for _ in 0..5 {
            store
                .create(Interaction::inbound("support", "1", clock::wall()))
                .await
                .unwrap();
        }
        let stop = CancellationToken::new();
        let task = spawn_pruner(store.clone(), Duration::from_secs(86_400), stop.clone());
        let mut bounds = None;
        for _ in 0..100 {
            bounds = store.event_bounds().await.unwrap();
            if bounds == Some((31, 35)) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(bounds, Some((31, 35)));
        stop.cancel();
        task.await.unwrap();
    }
}
