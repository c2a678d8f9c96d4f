//! What both backends' writers share: the writes (`Op`), how a caller hands one over and how
//! long it waits ([`submit`]), and the decisions taken on the row as stored (an agent's close,
//! a callback booking), so SQLite and PostgreSQL keep one set of semantics. The SQL is each
//! backend's own (`sqlite/writer.rs`, `pg/writer.rs`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use tokio::sync::oneshot;

use super::{Booking, Error, NewCallback};
use crate::interaction::{
    CloseReason, Event, FeedEntry, Interaction, InteractionId, Status, SubType,
};

/// A write the store wants done.
#[derive(Debug)]
pub(crate) enum Op {
    Create(Interaction),
    Apply {
        id: InteractionId,
        event: Event,
        now: Timestamp,
        /// The accept guard (`status = 'open'` in the `UPDATE`).
        accept: bool,
    },
    /// A callback booking: the cap counted, and the pending-callback index checked, in the
    /// transaction that writes it.
    Book {
        id: InteractionId,
        booking: Booking,
        now: Timestamp,
    },
    /// A callback from outside a call: the idempotency key looked up, the cap counted and the
    /// pending-callback index checked, in the transaction that writes it.
    CreateCallback(NewCallback),
    /// An agent's close: decided on the row as stored, in the transaction that writes it.
    Close {
        id: InteractionId,
        agent: String,
        /// `None`: completed (voicemail_done for a voicemail).
        reason: Option<CloseReason>,
        disposition: Option<String>,
        now: Timestamp,
    },
}

impl Op {
    /// The interaction it changes (`None` for a create).
    pub(crate) fn target(&self) -> Option<InteractionId> {
        match self {
            Self::Create(_) | Self::CreateCallback(_) => None,
            Self::Apply { id, .. } | Self::Book { id, .. } | Self::Close { id, .. } => Some(*id),
        }
    }

    /// Someone waits on it (an INVITE, an agent, a caller about to hear a confirmation): the
    /// writer does not linger gathering a batch.
    pub(crate) fn is_urgent(&self) -> bool {
        matches!(
            self,
            Self::Apply { accept: true, .. }
                | Self::Close { .. }
                | Self::Book { .. }
                | Self::CreateCallback(_)
        )
    }

    /// A promise rides on it (an accept that dials, a callback the caller hears confirmed): it
    /// must survive a power cut before its caller hears of it.
    pub(crate) fn is_durable(&self) -> bool {
        match self {
            Self::Apply { accept, event, .. } => {
                *accept || matches!(event, Event::CallbackRequested { .. })
            }
            Self::Book { .. } | Self::CreateCallback(_) => true,
            Self::Create(_) | Self::Close { .. } => false,
        }
    }
}

/// What a write adds to the `UPDATE`'s version guard: one more compare-and-set on the status,
/// so the rule holds on any backend whatever the version says.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Guard {
    /// The version guard only.
    Version,
    /// `status = 'open'`: of concurrent accepts exactly one wins.
    Open,
    /// `status = <the status the decision was made on>`.
    Status(Status),
}

/// A queued write and where its answer goes.
#[derive(Debug)]
pub(crate) struct WriteJob {
    pub(crate) op: Op,
    pub(crate) reply: oneshot::Sender<Result<Wrote, Error>>,
    /// Who has the write: [`QUEUED`], then [`TAKEN`] by the writer or [`ABANDONED`] by a
    /// waiter that gave up: exactly one of them wins, so a write reported failed is never done.
    pub(crate) state: Arc<AtomicU8>,
}

/// [`WriteJob::state`]: waiting in the queue.
pub(crate) const QUEUED: u8 = 0;
/// [`WriteJob::state`]: the writer will do it (the waiter must wait for its answer).
pub(crate) const TAKEN: u8 = 1;
/// [`WriteJob::state`]: the waiter gave up; the writer drops it.
pub(crate) const ABANDONED: u8 = 2;

impl WriteJob {
    /// The writer takes the job, unless its waiter gave up first.
    pub(crate) fn take(&self) -> bool {
        self.state
            .compare_exchange(QUEUED, TAKEN, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
}

/// A write's answer: the interaction as written, and the status it was in before.
#[derive(Debug)]
pub(crate) struct Wrote {
    pub(crate) interaction: Interaction,
    pub(crate) from: Status,
}

/// How long a write someone is waiting on may wait for the writer to take it (a new call's
/// INVITE, a callback being confirmed, an agent's accept or close): past this the store is
/// stalled (a locked or failing database), and the caller is better told than held. Giving
/// such a write up is safe: the caller hears that it failed, and it is never done.
pub(crate) const WRITE_WAIT: Duration = Duration::from_secs(3);

/// How long a record of what happened (a feed entry, a call's end) may wait: nobody is held
/// by it, and losing it would leave the interaction wrong, so it waits out a longer stall, but
/// not for ever.
pub(crate) const RECORD_WAIT: Duration = Duration::from_secs(30);

/// How long `op` may wait for the writer to take it.
pub(crate) fn wait_for(op: &Op) -> Duration {
    match op {
        Op::Create(_)
        | Op::CreateCallback(_)
        | Op::Close { .. }
        | Op::Book { .. }
        | Op::Apply { accept: true, .. } => WRITE_WAIT,
        Op::Apply { accept: false, .. } => RECORD_WAIT,
    }
}

/// Hands `op` to a writer through `send` (`false`: the writer is gone) and waits for its
/// commit. A write the writer has not taken within its wait ([`wait_for`]) is abandoned (never
/// done) and fails [`Error::Unavailable`]; one it has taken is waited for (its transaction is
/// bounded by the backend's own timeouts).
pub(crate) async fn submit(op: Op, send: impl FnOnce(WriteJob) -> bool) -> Result<Wrote, Error> {
    let r = submit_inner(op, send).await;
    // Refusals by the lifecycle are answers, not failures; the database failing is.
    if let Err(e) = &r
        && (e.is_unavailable()
            || matches!(e, Error::Db(_) | Error::Sqlite(_) | Error::Corrupt { .. }))
    {
        crate::metrics::store_write_failed();
    }
    r
}

async fn submit_inner(op: Op, send: impl FnOnce(WriteJob) -> bool) -> Result<Wrote, Error> {
    let wait = wait_for(&op);
    let (reply, mut rx) = oneshot::channel();
    let state = Arc::new(AtomicU8::new(QUEUED));
    let job = WriteJob {
        op,
        reply,
        state: state.clone(),
    };
    if !send(job) {
        return Err(Error::NotWritten);
    }
    match tokio::time::timeout(wait, &mut rx).await {
        Ok(r) => r.map_err(|_| Error::NotWritten)?,
        Err(_) => {
            let gave_up =
                state.compare_exchange(QUEUED, ABANDONED, Ordering::AcqRel, Ordering::Acquire);
            if gave_up.is_ok() {
                return Err(Error::Unavailable(format!(
                    "the write waited {wait:?} for the store (not written)"
                )));
            }
            rx.await.map_err(|_| Error::NotWritten)?
        }
    }
}

/// A row written inside a transaction: as it now is, its version, the event's kind, the feed
/// entries it adds, and its status before.
pub(crate) struct Written {
    pub(crate) interaction: Interaction,
    pub(crate) version: i64,
    pub(crate) kind: &'static str,
    pub(crate) feed: Vec<FeedEntry>,
    pub(crate) from: Status,
}

/// The `created` write's feed entry.
pub(crate) fn created_entry(stored: &Interaction) -> FeedEntry {
    FeedEntry::new(
        stored.created_at,
        "created",
        format!("call received from {}", stored.customer_number),
    )
    .with("queue", &stored.queue)
    .with("customer_number", &stored.customer_number)
}

/// The `created` entry of a callback requested from outside a call.
pub(crate) fn api_created_entry(stored: &Interaction) -> FeedEntry {
    let mut e = created_entry(stored).with("via", "api");
    e.text = format!(
        "callback for {} created via the API",
        stored.customer_number
    );
    e
}

/// An agent's close, decided on `current`: an open interaction (any agent of its queue), or
/// a connected one assigned to `agent`; the status it is closed from is the guard.
pub(crate) fn close_by(
    current: &Interaction,
    agent: &str,
    reason: Option<CloseReason>,
    disposition: Option<String>,
) -> Result<(Event, Guard), Error> {
    let id = current.id;
    match current.status {
        Status::Open => {}
        Status::Connected if current.assigned_agent.as_deref() == Some(agent) => {}
        Status::Connected => return Err(Error::AssignedElsewhere { id }),
        status @ (Status::Bot | Status::Closed) => return Err(Error::Conflict { id, status }),
    }
    let reason = reason.unwrap_or(match current.sub_type {
        SubType::Voicemail => CloseReason::VoicemailDone,
        SubType::Inbound | SubType::Callback => CloseReason::Completed,
    });
    let event = Event::Closed {
        reason,
        disposition,
    };
    Ok((event, Guard::Status(current.status)))
}

/// A callback booking, decided on `current` given `booked`, the bookings of this queue and
/// number since [`Booking::since`] (this interaction's own earlier request aside), counted in
/// the transaction that writes it. The other half of the rule, one pending callback per queue
/// and number, is the `interactions_pending_callback` unique index, which the `UPDATE` meets.
pub(crate) fn book(
    current: &Interaction,
    b: &Booking,
    booked: i64,
) -> Result<(Event, Guard), Error> {
    if b.max_per_day > 0 && booked >= i64::from(b.max_per_day) {
        return Err(Error::CallbackLimit {
            id: current.id,
            number: b.number.clone(),
            max_per_day: b.max_per_day,
        });
    }
    let event = Event::CallbackRequested {
        number: b.number.clone(),
        not_before: b.not_before,
    };
    Ok((event, Guard::Version))
}

/// A callback from outside a call, decided given `booked` (the bookings of its queue and
/// number since [`Booking::since`], counted in the transaction that writes it): the daily cap,
/// then the feed entries the create writes after `created` ("requested via API", the note).
/// The pending-callback index has the last word at the `INSERT`.
pub(crate) fn api_callback(new: &NewCallback, booked: i64) -> Result<Vec<FeedEntry>, Error> {
    let b = &new.booking;
    if b.max_per_day > 0 && booked >= i64::from(b.max_per_day) {
        return Err(Error::CallbackLimit {
            id: 0,
            number: b.number.clone(),
            max_per_day: b.max_per_day,
        });
    }
    let at = new.interaction.created_at;
    let mut requested = FeedEntry::new(
        at,
        "callback_requested",
        format!("callback requested via API for {}", b.number),
    )
    .with("number", &b.number)
    .with("via", "api");
    if let Some(t) = b.not_before {
        requested = requested.with("not_before", t.to_string());
        requested.text = format!("{}, not before {t}", requested.text);
    }
    let mut feed = vec![requested];
    if let Some(note) = new.note.as_deref().filter(|n| !n.trim().is_empty()) {
        feed.push(FeedEntry::new(at, "note", note.trim()));
    }
    Ok(feed)
}

/// The duplicate-callback refusal for `next`, the row a refused `UPDATE` would have written.
pub(crate) fn duplicate(next: &Interaction) -> Error {
    Error::DuplicateCallback {
        id: next.id,
        number: next
            .callback
            .as_ref()
            .map(|c| c.number.clone())
            .unwrap_or_default(),
    }
}

/// An event's payload: the interaction as it now is, and the feed entries the write added.
#[derive(serde::Serialize)]
pub(crate) struct EventData<'a> {
    pub(crate) interaction: crate::interaction::InteractionJson<'a>,
    pub(crate) feed: &'a [FeedEntry],
}

impl EventData<'_> {
    /// The payload of the event that wrote `i` (at `position`) with `feed`, as stored text.
    pub(crate) fn text(i: &Interaction, position: Option<u32>, feed: &[FeedEntry]) -> String {
        serde_json::to_string(&EventData {
            interaction: i.json(position),
            feed,
        })
        .unwrap_or_default()
    }
}

/// The window a writer's load is measured over.
pub(crate) const LOAD_WINDOW: Duration = Duration::from_millis(100);

/// A writer's write rate over the last whole window: a busy writer lingers a moment to gather
/// a bigger batch (a commit's cost is shared by every write in it); an idle one never waits.
pub(crate) struct Load {
    window_start: Instant,
    this_window: usize,
    last_window: usize,
    /// Writes per window from which the writer counts as busy.
    busy_writes: usize,
}

impl Load {
    pub(crate) fn new(now: Instant, busy_writes: usize) -> Self {
        Self {
            window_start: now,
            this_window: 0,
            last_window: 0,
            busy_writes,
        }
    }

    /// Whether the last whole window (or this one so far) reached the busy rate.
    pub(crate) fn busy(&mut self, now: Instant) -> bool {
        let elapsed = now.duration_since(self.window_start);
        if elapsed >= LOAD_WINDOW {
            // A gap of more than one window means the last one was empty.
            self.last_window = if elapsed < 2 * LOAD_WINDOW {
                self.this_window
            } else {
                0
            };
            self.this_window = 0;
            self.window_start = now;
        }
        self.last_window.max(self.this_window) >= self.busy_writes
    }

    /// Counts writes done.
    pub(crate) fn count(&mut self, writes: usize) {
        self.this_window += writes;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_from_the_write_rate_of_the_last_window() {
        const BUSY: usize = 200;
        let t0 = crate::clock::now();
        let mut load = Load::new(t0, BUSY);
        assert!(!load.busy(t0));
        load.count(BUSY - 1);
        assert!(!load.busy(t0 + Duration::from_millis(50)));
        load.count(1);
        assert!(load.busy(t0 + Duration::from_millis(60)), "this window");
        assert!(load.busy(t0 + LOAD_WINDOW), "the last window");
        assert!(
            !load.busy(t0 + LOAD_WINDOW * 2),
            "a quiet window since: not busy"
        );
        load.count(BUSY);
        assert!(
            !load.busy(t0 + LOAD_WINDOW * 5),
            "after a long gap the last window was empty"
        );
    }
}
