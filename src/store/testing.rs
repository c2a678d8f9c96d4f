//! For tests only: the real SQLite store with hooks at exact points, to make a race or a stall
//! happen where a test needs it (an accept landing between a read and a write, a writer
//! committing while the log is replayed, a store that stops answering).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use jiff::Timestamp;
use tokio::sync::broadcast;

use super::{
    Booking, Closed, CreatedCallback, Detail, InteractionStore, ListQuery, NewCallback, OfferClaim,
    Page, RetryRules, SqliteStore, StoreFuture, StoredEvent,
};
use crate::interaction::{CloseReason, Event, Interaction, InteractionId, Status, SubType};
use crate::queue::agent::Presence;

/// Something a hook does, given the real store and the call's argument.
pub(crate) type Hook<A> =
    Box<dyn Fn(Arc<SqliteStore>, A) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// Where the hooks run; a missing hook does nothing.
#[derive(Default)]
pub(crate) struct Hooks {
    /// After `get(id)` has read its row, before it returns it.
    pub(crate) after_get: Option<Hook<InteractionId>>,
    /// Before `events_since(after, _)` reads the log.
    pub(crate) before_events_since: Option<Hook<i64>>,
    /// After `events_since(after, _)` has read the log, before it returns it.
    pub(crate) after_events_since: Option<Hook<i64>>,
    /// Before `position(id)` and `book_callback(id, ..)` (the waits a caller listens to).
    pub(crate) before_caller_wait: Option<Hook<InteractionId>>,
}

/// The real store, with [`Hooks`].
pub(crate) struct Hooked {
    pub(crate) inner: Arc<SqliteStore>,
    pub(crate) hooks: Hooks,
}

impl Hooked {
    async fn run<A>(&self, hook: Option<&Hook<A>>, arg: A) {
        if let Some(h) = hook {
            h(self.inner.clone(), arg).await;
        }
    }
}

impl InteractionStore for Hooked {
    fn create(&self, new: Interaction) -> StoreFuture<'_, Interaction> {
        self.inner.create(new)
    }
    fn get(&self, id: InteractionId) -> StoreFuture<'_, Detail> {
        Box::pin(async move {
            let d = self.inner.get(id).await?;
            self.run(self.hooks.after_get.as_ref(), id).await;
            Ok(d)
        })
    }
    fn list(&self, q: ListQuery) -> StoreFuture<'_, Page> {
        self.inner.list(q)
    }
    fn position(&self, id: InteractionId) -> StoreFuture<'_, Option<u32>> {
        Box::pin(async move {
            self.run(self.hooks.before_caller_wait.as_ref(), id).await;
            self.inner.position(id).await
        })
    }
    fn apply(&self, id: InteractionId, e: Event, now: Timestamp) -> StoreFuture<'_, Interaction> {
        self.inner.apply(id, e, now)
    }
    fn accept(
        &self,
        id: InteractionId,
        agent: &str,
        now: Timestamp,
    ) -> StoreFuture<'_, Interaction> {
        self.inner.accept(id, agent, now)
    }
    fn close_by(
        &self,
        id: InteractionId,
        agent: &str,
        reason: Option<CloseReason>,
        disposition: Option<String>,
        now: Timestamp,
    ) -> StoreFuture<'_, Closed> {
        self.inner.close_by(id, agent, reason, disposition, now)
    }
    fn book_callback(
        &self,
        id: InteractionId,
        b: Booking,
        now: Timestamp,
    ) -> StoreFuture<'_, Interaction> {
        Box::pin(async move {
            self.run(self.hooks.before_caller_wait.as_ref(), id).await;
            self.inner.book_callback(id, b, now).await
        })
    }
    fn create_callback(&self, new: NewCallback) -> StoreFuture<'_, CreatedCallback> {
        self.inner.create_callback(new)
    }
    fn next_due(&self, q: &str, now: Timestamp) -> StoreFuture<'_, Option<Interaction>> {
        self.inner.next_due(q, now)
    }
    fn events_since(&self, after: i64, limit: u32) -> StoreFuture<'_, Vec<StoredEvent>> {
        Box::pin(async move {
            self.run(self.hooks.before_events_since.as_ref(), after)
                .await;
            let out = self.inner.events_since(after, limit).await?;
            self.run(self.hooks.after_events_since.as_ref(), after)
                .await;
            Ok(out)
        })
    }
    fn event_bounds(&self) -> StoreFuture<'_, Option<(i64, i64)>> {
        self.inner.event_bounds()
    }
    fn prune_events(&self, before: Timestamp) -> StoreFuture<'_, u64> {
        self.inner.prune_events(before)
    }
    fn subscribe(&self) -> broadcast::Receiver<Arc<StoredEvent>> {
        self.inner.subscribe()
    }
    fn recover<'a>(
        &'a self,
        now: Timestamp,
        retry: &'a RetryRules,
    ) -> StoreFuture<'a, Vec<Interaction>> {
        self.inner.recover(now, retry)
    }
    fn renew_lease(&self, ttl: std::time::Duration) -> StoreFuture<'_, bool> {
        self.inner.renew_lease(ttl)
    }
    fn settle_lost_instances<'a>(
        &'a self,
        now: Timestamp,
        retry: &'a RetryRules,
    ) -> StoreFuture<'a, Vec<(String, Interaction)>> {
        self.inner.settle_lost_instances(now, retry)
    }
    fn counts(&self) -> StoreFuture<'_, Vec<(Status, SubType, u64)>> {
        self.inner.counts()
    }
    fn ping(&self) -> StoreFuture<'_, ()> {
        self.inner.ping()
    }
    fn claim_offer(&self, claim: OfferClaim, now: Timestamp) -> StoreFuture<'_, bool> {
        self.inner.claim_offer(claim, now)
    }
    fn release_offer(&self, claim: OfferClaim) -> StoreFuture<'_, ()> {
        self.inner.release_offer(claim)
    }
    fn set_presence(&self, agent: &str, p: Presence, now: Timestamp) -> StoreFuture<'_, ()> {
        self.inner.set_presence(agent, p, now)
    }
    fn presences(&self) -> StoreFuture<'_, Vec<(String, Presence)>> {
        self.inner.presences()
    }
    fn report(&self, q: super::ReportQuery) -> StoreFuture<'_, Vec<super::ReportRow>> {
        self.inner.report(q)
    }
    fn hold_webhook(
        &self,
        webhook: &str,
        until: Timestamp,
        now: Timestamp,
    ) -> StoreFuture<'_, bool> {
        self.inner.hold_webhook(webhook, until, now)
    }
    fn webhook_cursor(&self, webhook: &str) -> StoreFuture<'_, Option<i64>> {
        self.inner.webhook_cursor(webhook)
    }
    fn set_webhook_cursor(&self, webhook: &str, last: i64) -> StoreFuture<'_, ()> {
        self.inner.set_webhook_cursor(webhook, last)
    }
    fn subscribe_presence(&self) -> broadcast::Receiver<(String, Presence)> {
        self.inner.subscribe_presence()
    }
}
