//! Persistence of interactions, their feeds and the change-event log, behind one trait
//! ([`InteractionStore`]) with two backends: the embedded SQLite one ([`sqlite::SqliteStore`],
//! the default: one process) and PostgreSQL ([`pg::PgStore`]: several Hammond instances sharing
//! one database). Shell layer: async, sqlx. Both pass one test suite (`tests.rs`).
//!
//! Every write runs [`crate::interaction::lifecycle::apply`] inside one transaction that also
//! appends the feed entries and one event-log row; after commit the event goes out on a
//! `broadcast` channel ([`InteractionStore::subscribe`]) in event-id order, so a reader that
//! subscribes first and then replays [`InteractionStore::events_since`] sees every event once.
//! With PostgreSQL that channel carries every instance's events, in one global id order.
//!
//! What the backends share is in `write` (the writes and the decisions made on a stored row)
//! and `row` (reading a row back); each backend's SQL is its own.

/// The interaction columns without the position, in [`row::row_to_interaction`]'s order (the
/// same in both schemas).
macro_rules! base_cols {
    () => {
        "i.id, i.queue, i.status, i.communication_type, i.sub_type, i.customer_number, i.created_at, \
         i.updated_at, i.assigned_agent, i.callback_number, i.callback_attempts, i.callback_not_before, \
         i.callback_requested_at, i.leg, i.close_reason, i.disposition, i.voicemail_path, i.version, "
    };
}

pub mod lease;
mod local;
pub mod pg;
pub mod report;
pub mod retention;
mod row;
pub mod sqlite;
#[cfg(test)]
pub(crate) mod testing;
mod write;

use std::future::Future;
use std::pin::Pin;

use jiff::Timestamp;
use serde::Serialize;
use tokio::sync::broadcast;

use crate::interaction::{
    CloseReason, Event, FeedEntry, Interaction, InteractionId, LifecycleError, Status, SubType,
};
use crate::queue::agent::Presence;

pub use pg::PgStore;
pub use report::{MAX_REPORT_PAGE, ReportQuery, ReportRow};
pub use sqlite::SqliteStore;

/// A boxed, sendable store future.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, Error>> + Send + 'a>>;

/// A queue's callback retry rules by queue name: maximum attempts and retry interval.
pub type RetryRules = dyn Fn(&str) -> (u32, std::time::Duration) + Send + Sync;

/// Resolves once a write already committed is also on disk (survives a power cut).
pub type Synced = Pin<Box<dyn Future<Output = Result<(), Error>> + Send + 'static>>;

/// Store errors, by whose fault.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No interaction with this id (caller's fault → 404).
    #[error("interaction {0} not found")]
    NotFound(InteractionId),
    /// Someone else changed it first, or it is not in a state that allows this (→ 409).
    #[error("interaction {id} is {status}")]
    Conflict {
        /// The interaction.
        id: InteractionId,
        /// Its status when the write was attempted.
        status: Status,
    },
    /// Connected to another agent: only that agent may close it (→ 403).
    #[error("interaction {id} is assigned to another agent")]
    AssignedElsewhere {
        /// The interaction.
        id: InteractionId,
    },
    /// The number already has a pending callback in this queue (the booking rule).
    #[error("interaction {id}: {number} already has a pending callback in this queue")]
    DuplicateCallback {
        /// The interaction that asked.
        id: InteractionId,
        /// The number.
        number: String,
    },
    /// The number has booked the queue's daily cap of callbacks (the booking rule).
    #[error("interaction {id}: {number} booked {max_per_day} callbacks today, the queue's cap")]
    CallbackLimit {
        /// The interaction that asked.
        id: InteractionId,
        /// The number.
        number: String,
        /// The cap.
        max_per_day: u32,
    },
    /// The `Idempotency-Key` of a callback request was used before, by the request that
    /// created this interaction: the store answers with it (never surfaces from the trait).
    #[error("idempotency key already used for interaction {id}")]
    Replayed {
        /// The interaction the first request created.
        id: InteractionId,
    },
    /// The lifecycle refused the event (a bug in the caller, or a race lost).
    #[error("interaction {id}: {source}")]
    Lifecycle {
        /// The interaction.
        id: InteractionId,
        /// Why.
        #[source]
        source: LifecycleError,
    },
    /// A row the store cannot read back (corruption or a newer schema).
    #[error("bad stored value in {column}: {value:?}")]
    Corrupt {
        /// The column.
        column: &'static str,
        /// What it held.
        value: String,
    },
    /// The store URL is not one this build understands.
    #[error("unsupported store url {0:?} (expected sqlite://…, sqlite::memory: or postgres://…)")]
    UnsupportedUrl(String),
    /// Creating the database directory failed.
    #[error("creating {path}: {source}")]
    Io {
        /// The directory.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The database failed (dependency fault → 5xx).
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// The database failed under the writer's own connection (dependency fault → 5xx).
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The database cannot take the request now (locked by another process, disk full,
    /// read-only, an I/O error), or did not answer in time: nothing was written (→ 503). The
    /// store fails fast rather than hold callers: see [`InteractionStore`].
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The writer stopped before it answered (shutting down).
    #[error("the store is closed")]
    NotWritten,
    /// Migrations failed at start.
    #[error("migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl Error {
    /// The store could not serve the request now (a fault of the dependency, not of the
    /// request): an HTTP caller gets 503.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Unavailable(_) | Self::NotWritten => true,
            Self::Db(e) => db_unavailable(e),
            _ => false,
        }
    }
}

/// A database error that says the database cannot serve now, whatever was asked: the
/// connection is gone or cannot be had, the server is shutting down, out of room or read-only,
/// or the statement ran out of time (PostgreSQL's SQLSTATE classes 08, 53, 57, 58 and 25006).
pub(crate) fn db_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => true,
        // SQLite's own refusals are classified where its writer meets them.
        sqlx::Error::Database(d) => d
            .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
            .is_some_and(|pg| {
                let c = pg.code();
                ["08", "53", "57", "58"]
                    .iter()
                    .any(|class| c.starts_with(class))
                    || c == "25006"
            }),
        _ => false,
    }
}

/// Filters and page of [`InteractionStore::list`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListQuery {
    /// Only this status.
    pub status: Option<Status>,
    /// Only these queues (`None` = all). An empty list matches nothing.
    pub queues: Option<Vec<String>>,
    /// Only this sub-type.
    pub sub_type: Option<SubType>,
    /// Page size (the store caps it at [`MAX_PAGE`]).
    pub limit: u32,
    /// Continue after this cursor (from a previous [`Page::next_cursor`]).
    pub cursor: Option<Cursor>,
}

/// Largest page [`InteractionStore::list`] returns.
pub const MAX_PAGE: u32 = 1000;

/// A position in the oldest-first order: (original arrival, id) of the last row seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    /// Arrival, microseconds since the epoch.
    pub created_us: i64,
    /// Tie-break.
    pub id: InteractionId,
}

impl Cursor {
    /// The opaque text form used in the API (`<created_us>.<id>`).
    pub fn encode(&self) -> String {
        format!("{}.{}", self.created_us, self.id)
    }

    /// Parses [`Cursor::encode`]'s output; `None` if malformed.
    pub fn decode(s: &str) -> Option<Self> {
        let (a, b) = s.split_once('.')?;
        Some(Self {
            created_us: a.parse().ok()?,
            id: b.parse().ok()?,
        })
    }
}

/// One row of a list: the interaction and its 1-based place in its queue's line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// The interaction.
    pub interaction: Interaction,
    /// Place in its queue's line when waiting (see [`InteractionStore::position`]).
    pub position: Option<u32>,
}

/// A page of [`Listed`] rows, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The rows.
    pub items: Vec<Listed>,
    /// Pass back to get the next page; `None` on the last.
    pub next_cursor: Option<Cursor>,
}

/// The outcome of [`InteractionStore::close_by`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closed {
    /// The interaction, now closed.
    pub interaction: Interaction,
    /// The status it was closed from.
    pub from: Status,
}

/// A callback request for [`InteractionStore::book_callback`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Booking {
    /// The number to call back (digits, optionally with `+`).
    pub number: String,
    /// Not to be dialled before (a callback booked outside business hours).
    pub not_before: Option<Timestamp>,
    /// The queue's cap on bookings per number per day (`max_per_day`); 0: no cap.
    pub max_per_day: u32,
    /// Where the day starts: bookings of this queue and number from then on count.
    pub since: Timestamp,
}

/// A callback requested from outside a call, for [`InteractionStore::create_callback`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCallback {
    /// The interaction to create: [`Interaction::requested_callback`].
    pub interaction: Interaction,
    /// The booking rules (number, not-before, the daily cap and where the day starts).
    pub booking: Booking,
    /// The agent's or program's note, added to the feed.
    pub note: Option<String>,
    /// The request's `Idempotency-Key`, scoped by its client (`<client>:<key>`): a request
    /// that repeats it gets the interaction the first one created.
    pub idempotency_key: Option<String>,
}

/// What [`InteractionStore::create_callback`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedCallback {
    /// The interaction (new, or the one the first request with the same key created).
    pub interaction: Interaction,
    /// The request repeated an idempotency key: nothing was written.
    pub replayed: bool,
}

/// An interaction with its whole feed.
#[derive(Debug, Clone, PartialEq)]
pub struct Detail {
    /// The interaction and its position.
    pub listed: Listed,
    /// The feed, oldest first.
    pub feed: Vec<FeedEntry>,
}

/// One row of the event log: what changed and the feed entries it added. `data` is
/// `{"interaction": <pinned JSON with position>, "feed": [...]}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredEvent {
    /// Monotonic event id (the SSE `id:`).
    pub id: i64,
    /// The interaction.
    pub interaction_id: InteractionId,
    /// Its queue (for per-agent filtering).
    pub queue: String,
    /// When.
    pub at: Timestamp,
    /// `created` or the lifecycle event's name (the SSE `event:`).
    pub kind: String,
    /// The JSON payload, as text: written once by the writer, stored and sent as it is (a
    /// `Value` tree cost allocations to build, to serialise and to drop, for every event).
    pub data: String,
}

/// A push offer's hold on an interaction and on the agent it rings: while it lasts (until
/// `until`, a little past the ring time, so a claim whose instance died lapses by itself), no
/// other offer is made of that interaction or to that agent, by this instance or by any other
/// sharing the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferClaim {
    /// The interaction offered.
    pub interaction: InteractionId,
    /// The agent rung.
    pub agent: String,
    /// When the claim lapses if not released.
    pub until: Timestamp,
}

impl OfferClaim {
    /// The two things claimed, as stored keys.
    pub(crate) fn keys(&self) -> [String; 2] {
        [
            format!("interaction:{}", self.interaction),
            format!("agent:{}", self.agent),
        ]
    }
}

/// Persistence of interactions. Object-safe: hold it as `Arc<dyn InteractionStore>`.
///
/// Every call answers within a few seconds, whatever the database does: a store that is locked
/// by another process, full, read-only or stalled fails fast with [`Error::Unavailable`]
/// rather than hold a caller who is listening to silence (a new call's INVITE, a callback being
/// confirmed, an agent's accept). A write that fails so is never done later.
pub trait InteractionStore: Send + Sync {
    /// Stores a new interaction (an inbound call, on INVITE) with a `created` feed entry; returns
    /// it with its id.
    fn create(&self, new: Interaction) -> StoreFuture<'_, Interaction>;

    /// One interaction with its position and feed.
    fn get(&self, id: InteractionId) -> StoreFuture<'_, Detail>;

    /// Interactions matching `q`, oldest (by original arrival) first, with positions.
    fn list(&self, q: ListQuery) -> StoreFuture<'_, Page>;

    /// The interaction's place in its queue's line: when it is waiting (open or bot), the
    /// number of waiting interactions of its queue that arrived before it (original arrival,
    /// then id), plus one; `None` when it is not waiting. The one rule for every position: the
    /// Home List's, the event log's and the one announced to the caller. An indexed count of
    /// the line ahead of it, whatever the queue's history.
    fn position(&self, id: InteractionId) -> StoreFuture<'_, Option<u32>>;

    /// Applies a lifecycle event in one transaction (read, apply, write row + feed + event log).
    /// A refused event is [`Error::Lifecycle`], except refusals by status, which are
    /// [`Error::Conflict`].
    fn apply(
        &self,
        id: InteractionId,
        event: Event,
        now: Timestamp,
    ) -> StoreFuture<'_, Interaction>;

    /// Assigns an open interaction to `agent` atomically: of concurrent accepts exactly one wins;
    /// the others get [`Error::Conflict`].
    fn accept(
        &self,
        id: InteractionId,
        agent: &str,
        now: Timestamp,
    ) -> StoreFuture<'_, Interaction>;

    /// [`InteractionStore::accept`] in two steps, for a caller that can start work at the
    /// commit and must not report success before the sync: returns once the accept is committed
    /// (visible, and surviving a crash of Hammond) with a future that resolves once it is on disk
    /// too. The default waits for both before returning (a backend whose commit is durable).
    fn accept_committed(
        &self,
        id: InteractionId,
        agent: &str,
        now: Timestamp,
    ) -> StoreFuture<'_, (Interaction, Synced)> {
        let agent = agent.to_owned();
        Box::pin(async move {
            let i = self.accept(id, &agent, now).await?;
            let synced: Synced = Box::pin(async { Ok(()) });
            Ok((i, synced))
        })
    }

    /// An agent's close, atomic: decided and written in one transaction on the row as stored
    /// (a compare-and-set on the status it saw), so it cannot close what another agent has just
    /// accepted. An open interaction may be closed by any agent (of its queue: the caller's
    /// check), a connected one only by its agent ([`Error::AssignedElsewhere`] otherwise); bot
    /// and closed ones are [`Error::Conflict`], a ringing caller the lifecycle's `LiveCall`.
    /// `reason` defaults to completed (voicemail_done for a voicemail). [`Closed::from`] says
    /// whether a call was up (connected), for the caller to hang it up.
    fn close_by(
        &self,
        id: InteractionId,
        agent: &str,
        reason: Option<CloseReason>,
        disposition: Option<String>,
        now: Timestamp,
    ) -> StoreFuture<'_, Closed>;

    /// Books the caller's callback (bot; inbound → callback, see [`Event::CallbackRequested`])
    /// under one rule, per queue and number, that the store enforces atomically: at most one
    /// pending (not closed) callback ([`Error::DuplicateCallback`]: a unique index, so two
    /// bookings at once, or on two Hammond instances, cannot both win; booking again for this
    /// same interaction is no duplicate), and at most [`Booking::max_per_day`] booked since
    /// [`Booking::since`] ([`Error::CallbackLimit`], counted in the same transaction). On disk
    /// before it returns: the caller hears it confirmed next.
    fn book_callback(
        &self,
        id: InteractionId,
        booking: Booking,
        now: Timestamp,
    ) -> StoreFuture<'_, Interaction>;

    /// Stores a callback requested from outside a call (open, sub-type callback, feed
    /// "callback requested via API" and the note) under the same booking rule as
    /// [`InteractionStore::book_callback`], atomically: one pending callback per queue and
    /// number ([`Error::DuplicateCallback`]), at most `max_per_day` booked since `since`
    /// ([`Error::CallbackLimit`]). A repeated idempotency key writes nothing and answers with
    /// the interaction the first request created (`replayed`). On disk before it returns.
    fn create_callback(&self, new: NewCallback) -> StoreFuture<'_, CreatedCallback>;

    /// The oldest open interaction of `queue` that may be handled at `now` (its callback's
    /// not-before has passed).
    fn next_due(&self, queue: &str, now: Timestamp) -> StoreFuture<'_, Option<Interaction>>;

    /// Event-log rows with id greater than `after`, oldest first, at most `limit`.
    fn events_since(&self, after: i64, limit: u32) -> StoreFuture<'_, Vec<StoredEvent>>;

    /// The oldest and the newest event-log ids (`None` while the log is empty): how far behind
    /// a resuming client is, and whether what it missed was pruned.
    fn event_bounds(&self) -> StoreFuture<'_, Option<(i64, i64)>>;

    /// Deletes the event-log rows older than `before` (the retention), a chunk per short
    /// transaction so writes go on meanwhile; the newest row always stays, so ids are never
    /// handed out twice. Returns how many went.
    fn prune_events(&self, before: Timestamp) -> StoreFuture<'_, u64>;

    /// Live events, in id order, from now on.
    fn subscribe(&self) -> broadcast::Receiver<std::sync::Arc<StoredEvent>>;

    /// At start: settles interactions a crash left `bot` or `connected`, or ringing (open
    /// inbound) (see [`Event::Recovered`]); returns them as settled. On a store shared by
    /// several instances, only this instance's (another's calls are live on it). `retry` gives a queue's callback
    /// retry rules (maximum attempts, retry interval), for a dial the crash cut.
    fn recover<'a>(
        &'a self,
        now: Timestamp,
        retry: &'a RetryRules,
    ) -> StoreFuture<'a, Vec<Interaction>>;

    /// Holds this instance's lease on a store shared by several instances for `ttl` from now
    /// (the store's clock, so instances' clocks need not agree). `false` when the lease had
    /// lapsed (or never was) before this renewal: then other instances may have settled this
    /// instance's interactions as a dead instance's. A store one process owns (SQLite) has no
    /// other instance to lose: always `true`.
    fn renew_lease(&self, ttl: std::time::Duration) -> StoreFuture<'_, bool>;

    /// Settles the interactions engaged on instances whose lease lapsed (they died: kill -9,
    /// power, cut off), as [`InteractionStore::recover`] settles a crash's, with a feed entry
    /// naming the lost instance; returns each with that instance's name. Several survivors
    /// may run it at once: each interaction is settled once (a settled one is no longer
    /// engaged). Confirmed callbacks waiting in the queue are not engaged and stay as they
    /// are. Nothing to do on a store one process owns.
    fn settle_lost_instances<'a>(
        &'a self,
        now: Timestamp,
        retry: &'a RetryRules,
    ) -> StoreFuture<'a, Vec<(String, Interaction)>>;

    /// Counts by (status, sub_type), for the metrics gauges.
    fn counts(&self) -> StoreFuture<'_, Vec<(Status, SubType, u64)>>;

    /// For `/healthz`: a read, and a write (a heartbeat row) through the same path as every
    /// other write, each within a short time. A database that answers reads may still refuse
    /// writes (locked, full, read-only): that is unhealthy too.
    fn ping(&self) -> StoreFuture<'_, ()>;

    /// Takes `claim` for this instance if neither its interaction nor its agent is claimed now
    /// (a claim past its `until` no longer counts): `true` when taken, both or neither. The
    /// router claims before it rings an agent, so an interaction is offered by one instance at
    /// a time and an agent rung by one offer at a time.
    fn claim_offer(&self, claim: OfferClaim, now: Timestamp) -> StoreFuture<'_, bool>;

    /// Gives `claim` back (the offer ended); a claim that is not this instance's is left alone.
    fn release_offer(&self, claim: OfferClaim) -> StoreFuture<'_, ()>;

    /// Records an agent's presence, for every instance sharing the store; the change then
    /// reaches [`InteractionStore::subscribe_presence`] (this instance's included).
    fn set_presence(&self, agent: &str, presence: Presence, now: Timestamp) -> StoreFuture<'_, ()>;

    /// Every stored presence (an agent with none is `away`).
    fn presences(&self) -> StoreFuture<'_, Vec<(String, Presence)>>;

    /// Presence changes from now on, whichever instance made them: the agent and its presence
    /// as now stored. After a lost connection every stored presence is sent again.
    fn subscribe_presence(&self) -> broadcast::Receiver<(String, Presence)>;

    /// The interactions of `q.queues` that arrived in `[q.from, q.to)`, oldest first (arrival,
    /// then id), each with when it was first bridged and when it closed: what every report is
    /// computed from (see [`report`]). A page of at most [`MAX_REPORT_PAGE`].
    fn report(&self, q: ReportQuery) -> StoreFuture<'_, Vec<ReportRow>>;

    /// The last event-log id `webhook` is done with (delivered, or given up on); `None` before
    /// its first delivery.
    fn webhook_cursor(&self, webhook: &str) -> StoreFuture<'_, Option<i64>>;

    /// Moves `webhook`'s cursor forward to `last` (a smaller value leaves it where it is).
    fn set_webhook_cursor(&self, webhook: &str, last: i64) -> StoreFuture<'_, ()>;

    /// Takes or renews this instance's hold on delivering `webhook` until `until`: `true` while
    /// it is this instance's (it was free, lapsed, or already ours). On a store shared by
    /// several instances one of them delivers each webhook at a time; the embedded store has
    /// one process, which always holds it.
    fn hold_webhook(
        &self,
        webhook: &str,
        until: Timestamp,
        now: Timestamp,
    ) -> StoreFuture<'_, bool>;
}

/// Opens the store named by the service config's `[store] url`, as `instance` (this Hammond's
/// name among those sharing a PostgreSQL store: who owns a call, whose claims these are).
pub async fn open(
    url: &str,
    instance: &str,
) -> Result<std::sync::Arc<dyn InteractionStore>, Error> {
    if url.starts_with("sqlite:") {
        Ok(std::sync::Arc::new(SqliteStore::open(url).await?))
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        Ok(std::sync::Arc::new(PgStore::open(url, instance).await?))
    } else {
        Err(Error::UnsupportedUrl(url.to_owned()))
    }
}

#[cfg(test)]
mod tests;
