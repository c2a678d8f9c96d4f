//! Instance leases (shell): on a store several instances share, each instance renews its
//! lease every [`RENEW_EVERY`] and, on the same beat, settles the interactions of any
//! instance whose lease lapsed (it died: kill -9, power, cut off from the database). A death
//! is settled within [`LEASE_TTL`] + [`RENEW_EVERY`] and a write per interaction, well inside
//! the 45 s a contact centre may wait to see a dead box's calls closed and its dialling
//! callbacks back in the queue. On a store one process owns (SQLite) both are no-ops.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::{InteractionStore, RetryRules};
use crate::clock;

/// How long a renewed lease holds. Four renewals fit in it, so a busy instance that misses
/// two or three (a slow disk, a long pause) is not declared dead.
pub const LEASE_TTL: Duration = Duration::from_secs(20);

/// How often an instance renews its lease and looks for lost ones.
pub const RENEW_EVERY: Duration = Duration::from_secs(5);

/// Takes this instance's lease (before it settles its own crash's interactions and takes
/// calls). A store that cannot be reached now is retried by the beat.
pub async fn take(store: &dyn InteractionStore) {
    if let Err(e) = store.renew_lease(LEASE_TTL).await {
        warn!(error = %e, "instance lease not taken; retrying");
    }
}

/// Renews the lease and settles lost instances every [`RENEW_EVERY`], until `stop`.
pub fn spawn_keeper(
    store: Arc<dyn InteractionStore>,
    retry: Arc<RetryRules>,
    stop: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = tokio::time::sleep(RENEW_EVERY) => {}
                () = stop.cancelled() => return,
            }
            beat(&*store, &*retry).await;
        }
    })
}

/// One beat: renew, then settle whoever died.
async fn beat(store: &dyn InteractionStore, retry: &RetryRules) {
    match store.renew_lease(LEASE_TTL).await {
        Ok(true) => {}
        Ok(false) => error!(
            "this instance's lease had lapsed: other instances may have settled its calls as \
             a dead instance's"
        ),
        Err(e) => warn!(error = %e, "instance lease not renewed"),
    }
    match store.settle_lost_instances(clock::wall(), retry).await {
        Ok(settled) => {
            for (instance, i) in &settled {
                info!(lost = %instance, interaction.id = i.id, status = %i.status,
                      "a lost instance's interaction settled");
            }
            crate::metrics::lost_instance_settled(settled.len() as u64);
        }
        Err(e) => warn!(error = %e, "lost instances not settled"),
    }
}
