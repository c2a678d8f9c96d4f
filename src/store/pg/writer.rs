//! This instance's one writer: group commit of every queued write in one transaction, on a
//! connection of its own, as the SQLite writer does (a commit, and its round trips, shared by
//! every write in it). One transaction over writes `w1 … wn`:
//!
//! ```text
//! BEGIN [; SET LOCAL synchronous_commit TO on]      -- on: an accept or a booking rides on it
//! per write, bookings first, then by interaction id (so two instances' batches take row locks
//! in one order and cannot deadlock):
//!   create:  INSERT … RETURNING id, the line ahead of it
//!   update:  [SELECT … FOR UPDATE, when the row is not known or turned out stale]
//!            [booking: pg_advisory_xact_lock(queue, number); COUNT of the day's bookings]
//!            [SAVEPOINT: a callback request may meet the pending-callback unique index]
//!            UPDATE … WHERE id = $ AND version = $ [AND status = $] RETURNING the line ahead
//! INSERT the feed entries (one statement) ; pg_advisory_xact_lock(events)
//! INSERT the events, ids MAX(id) + 1 …, and pg_notify(newest id) (one statement)
//! COMMIT
//! ```
//!
//! The events lock is taken last and held to commit, so event ids are committed in id order
//! across every instance: a reader that has seen id n never sees a smaller one appear. Each
//! write gets its own answer: a lost update or a refused lifecycle event fails only that write.
//! A database error rolls the batch back; the writes are then redone one per transaction so
//! only the one at fault fails, unless the database takes no write now (gone, shutting down,
//! full, read-only, out of time): then they all fail at once. A write whose waiter gave up
//! before the writer took it is dropped, never done. After the commit the events go to the
//! pump (this instance's subscribers) without a read.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use sqlx::postgres::{PgConnectOptions, PgRow};
use sqlx::{Connection, PgConnection, Row};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::notify::EVENTS_CHANNEL;
use crate::interaction::{Event, Interaction, InteractionId, Leg, LifecycleError, apply};
use crate::store::row::{row_to_interaction, us};
use crate::store::write::{self, EventData, Guard, Load, Op, WriteJob, Written, Wrote};
use crate::store::{Booking, Error, NewCallback, StoredEvent, db_unavailable};

/// Most writes one transaction takes from the queue.
const MAX_BATCH: usize = 256;

/// How long a busy writer waits for more writes before it begins a transaction: a
/// transaction's fixed statements (BEGIN, the feed, the events, COMMIT) and its commit are
/// shared by every write in it. Idle, or with an accept, a close or a booking queued, nothing
/// waits.
const GATHER: Duration = Duration::from_millis(2);

/// Writes per [`crate::store::write::LOAD_WINDOW`] from which the writer counts as busy (200
/// writes/s: about 50 calls/s setting up and hanging up). Lower than SQLite's: each
/// transaction costs round trips and the server's work, not a function call.
const BUSY_WRITES: usize = 20;

/// Most interactions the writer remembers (closed ones are forgotten at once).
const CACHE_MAX: usize = 20_000;

/// The advisory lock every instance's writer holds from its event-log append to its commit.
const EVENTS_LOCK: i64 = 0x6861_6d6d_6f6e_6401;

/// How long (re)connecting may take before the writes waiting on it fail.
const CONNECT_WAIT: Duration = Duration::from_secs(3);

/// A batch's bound on the client side, for a server that stops answering without closing
/// the connection (each statement is bounded by `statement_timeout` on the server side).
const BATCH_WAIT: Duration = Duration::from_secs(15);

/// One write's result inside a batch, before the batch commits.
struct Done {
    interaction: Interaction,
    from: Status,
    version: i64,
    event: Arc<StoredEvent>,
}

use crate::interaction::Status;

/// The writer task's state.
pub(super) struct Writer {
    opts: PgConnectOptions,
    conn: Option<PgConnection>,
    instance: String,
    /// Rows as last committed by this writer, with their versions. Another instance may have
    /// changed one since: the version guard catches it and the row is read again.
    cache: HashMap<InteractionId, (Interaction, i64)>,
    /// This instance's event pump: the events of each commit, in id order.
    pump: mpsc::UnboundedSender<Vec<Arc<StoredEvent>>>,
}

impl Writer {
    /// Connects with `opts` (commits are asynchronous unless a promise needs them on disk).
    pub(super) async fn connect(
        opts: PgConnectOptions,
        instance: String,
        pump: mpsc::UnboundedSender<Vec<Arc<StoredEvent>>>,
    ) -> Result<Self, Error> {
        let opts = opts.options([("synchronous_commit", "off")]);
        let conn = PgConnection::connect_with(&opts).await?;
        Ok(Self {
            opts,
            conn: Some(conn),
            instance,
            cache: HashMap::new(),
            pump,
        })
    }

    /// Writes batches until the store is dropped.
    pub(super) async fn run(
        mut self,
        mut rx: mpsc::UnboundedReceiver<WriteJob>,
        stop: CancellationToken,
    ) {
        let mut load = Load::new(crate::clock::now(), BUSY_WRITES);
        loop {
            let first = tokio::select! {
                j = rx.recv() => match j {
                    Some(j) => j,
                    None => break,
                },
                () = stop.cancelled() => break,
            };
            let mut batch = vec![first];
            take_queued(&mut rx, &mut batch);
            let urgent = batch.iter().any(|j| j.op.is_urgent());
            if load.busy(crate::clock::now()) && !urgent && batch.len() < MAX_BATCH {
                tokio::time::sleep(GATHER).await;
                take_queued(&mut rx, &mut batch);
            }
            // A write whose waiter gave up is not done (it was told so).
            batch.retain(WriteJob::take);
            load.count(batch.len());
            if !batch.is_empty() {
                self.write_batch(batch).await;
            }
        }
        if let Some(conn) = self.conn.take() {
            let _ = conn.close().await;
        }
    }

    async fn write_batch(&mut self, batch: Vec<WriteJob>) {
        let ops: Vec<&Op> = batch.iter().map(|j| &j.op).collect();
        match self.transaction(&ops).await {
            Ok(results) => {
                self.committed(&results);
                for (job, r) in batch.into_iter().zip(results) {
                    let _ = job.reply.send(r.map(Done::wrote));
                }
            }
            Err(e) if e.is_unavailable() => {
                // The database takes no write now: every write of the batch fails at once
                // (redoing them one by one would hold each caller a timeout more).
                self.forget();
                let why = e.to_string();
                for job in batch {
                    let _ = job.reply.send(Err(Error::Unavailable(why.clone())));
                }
            }
            Err(_) => {
                // One write broke the batch (or two instances' batches met in a deadlock):
                // redo each write alone, so only a faulty one fails.
                self.forget();
                for job in batch {
                    let r = match self.transaction(&[&job.op]).await {
                        Ok(mut r) => r.pop().unwrap_or(Err(Error::NotWritten)),
                        Err(e) => {
                            self.forget();
                            Err(if e.is_unavailable() {
                                Error::Unavailable(e.to_string())
                            } else {
                                e
                            })
                        }
                    };
                    self.committed(std::slice::from_ref(&r));
                    let _ = job.reply.send(r.map(Done::wrote));
                }
            }
        }
    }

    /// After a commit: remember the rows, hand the events to the pump in id order.
    fn committed(&mut self, results: &[Result<Done, Error>]) {
        if self.cache.len() > CACHE_MAX {
            self.cache.clear();
        }
        let mut events: Vec<Arc<StoredEvent>> = Vec::with_capacity(results.len());
        for d in results.iter().filter_map(|r| r.as_ref().ok()) {
            let i = &d.interaction;
            if i.status == Status::Closed {
                self.cache.remove(&i.id);
            } else {
                self.cache.insert(i.id, (i.clone(), d.version));
            }
            events.push(d.event.clone());
        }
        if !events.is_empty() {
            events.sort_by_key(|e| e.id);
            let _ = self.pump.send(events);
        }
    }

    /// After a rollback: what the writer remembers may not match the database.
    fn forget(&mut self) {
        self.cache.clear();
    }

    /// The connection, reconnecting when the last one was lost.
    async fn connection(&mut self) -> Result<&mut PgConnection, Error> {
        if self.conn.is_none() {
            let conn = tokio::time::timeout(CONNECT_WAIT, PgConnection::connect_with(&self.opts))
                .await
                .map_err(|_| {
                    Error::Unavailable(format!(
                        "no connection to the database within {CONNECT_WAIT:?}"
                    ))
                })??;
            self.conn = Some(conn);
        }
        Ok(self.conn.as_mut().expect("connected just above"))
    }

    /// One transaction over `ops`. `Err` only for a database error (rolled back); per-write
    /// refusals are in the vector, in `ops`' order.
    async fn transaction(&mut self, ops: &[&Op]) -> Result<Vec<Result<Done, Error>>, Error> {
        let begin = if ops.iter().any(|o| o.is_durable()) {
            "BEGIN; SET LOCAL synchronous_commit TO on"
        } else {
            "BEGIN"
        };
        // A connection the server closed while it was idle (a restart of PostgreSQL, an idle
        // reaper) fails at BEGIN, before anything was done: reconnect once and go on.
        let mut retried = false;
        loop {
            let conn = self.connection().await?;
            match sqlx::raw_sql(begin).execute(&mut *conn).await {
                Ok(_) => break,
                Err(e) => {
                    let e = Error::from(e);
                    if lost_connection(&e) {
                        self.conn = None;
                        if !retried {
                            retried = true;
                            continue;
                        }
                    }
                    return Err(e);
                }
            }
        }
        let conn = self.conn.as_mut().expect("BEGIN went through on it");
        let run = async {
            match body(conn, &self.cache, &self.instance, ops).await {
                Ok(done) => {
                    sqlx::raw_sql("COMMIT").execute(&mut *conn).await?;
                    Ok(done)
                }
                Err(e) => {
                    let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await;
                    Err(e)
                }
            }
        };
        let r = match tokio::time::timeout(BATCH_WAIT, run).await {
            Ok(r) => r,
            Err(_) => Err(Error::Unavailable(format!(
                "the database did not answer within {BATCH_WAIT:?}"
            ))),
        };
        if let Err(e) = &r
            && lost_connection(e)
        {
            // A connection that failed or timed out mid-transaction is not reused.
            self.conn = None;
        }
        r
    }
}

impl Done {
    fn wrote(self) -> Wrote {
        Wrote {
            interaction: self.interaction,
            from: self.from,
        }
    }
}

/// Moves the queued writes into `batch` (up to [`MAX_BATCH`]).
fn take_queued(rx: &mut mpsc::UnboundedReceiver<WriteJob>, batch: &mut Vec<WriteJob>) {
    while batch.len() < MAX_BATCH {
        match rx.try_recv() {
            Ok(j) => batch.push(j),
            Err(_) => break,
        }
    }
}

/// The connection cannot be trusted any more: the next transaction reconnects.
fn lost_connection(e: &Error) -> bool {
    match e {
        Error::Unavailable(_) => true,
        Error::Db(d) => db_unavailable(d),
        _ => false,
    }
}

/// The transaction's body: every write, then the feed and the events. Per-write refusals are
/// in the vector; a database error ends the transaction.
async fn body(
    conn: &mut PgConnection,
    cache: &HashMap<InteractionId, (Interaction, i64)>,
    instance: &str,
    ops: &[&Op],
) -> Result<Vec<Result<Done, Error>>, Error> {
    // Bookings first (their advisory locks before any row lock), then by interaction: every
    // instance's batches lock in one order.
    let mut order: Vec<usize> = (0..ops.len()).collect();
    order.sort_by_key(|&k| match ops[k] {
        Op::Book { id, booking, .. } => (0, booking.number.clone(), *id),
        Op::CreateCallback(new) => (0, new.booking.number.clone(), 0),
        op => (1, String::new(), op.target().unwrap_or(0)),
    });
    // Rows written earlier in this transaction (newer than the cache).
    let mut fresh: HashMap<InteractionId, (Interaction, i64)> = HashMap::new();
    let mut out: Vec<Option<Result<Done, Error>>> = (0..ops.len()).map(|_| None).collect();
    let mut written: Vec<(usize, Written, Option<u32>)> = Vec::with_capacity(ops.len());
    for k in order {
        let known = ops[k]
            .target()
            .and_then(|id| fresh.get(&id).or_else(|| cache.get(&id)))
            .cloned();
        let r = match ops[k] {
            Op::Create(new) => create(conn, new, instance).await,
            Op::CreateCallback(new) => create_callback(conn, new, instance).await,
            Op::Apply {
                id,
                event,
                now,
                accept,
            } => {
                let guard = if *accept { Guard::Open } else { Guard::Version };
                let request = matches!(event, Event::CallbackRequested { .. });
                let decide = |_: &Interaction| Ok((event.clone(), guard));
                update(conn, known, *id, *now, instance, request, decide).await
            }
            Op::Close {
                id,
                agent,
                reason,
                disposition,
                now,
            } => {
                let decide = |current: &Interaction| {
                    write::close_by(current, agent, *reason, disposition.clone())
                };
                update(conn, known, *id, *now, instance, false, decide).await
            }
            Op::Book { id, booking, now } => book(conn, known, *id, booking, *now, instance).await,
        };
        match r {
            Ok((w, position)) => {
                fresh.insert(w.interaction.id, (w.interaction.clone(), w.version));
                written.push((k, w, position));
            }
            Err(e @ Error::Db(_)) => return Err(e),
            Err(e) => out[k] = Some(Err(e)),
        }
    }
    if !written.is_empty() {
        let base = append(conn, &written).await?;
        for (n, (k, w, position)) in written.into_iter().enumerate() {
            let i = w.interaction;
            let event = Arc::new(StoredEvent {
                id: base + 1 + n as i64,
                interaction_id: i.id,
                queue: i.queue.clone(),
                at: i.updated_at,
                kind: w.kind.to_owned(),
                data: EventData::text(&i, position, &w.feed),
            });
            out[k] = Some(Ok(Done {
                interaction: i,
                from: w.from,
                version: w.version,
                event,
            }));
        }
    }
    Ok(out
        .into_iter()
        .map(|o| o.expect("every write has its answer"))
        .collect())
}

/// The feed entries and the events of `written`, in that order; returns the event-log id
/// before the first one (ids follow on from it, gap-free).
async fn append(
    conn: &mut PgConnection,
    written: &[(usize, Written, Option<u32>)],
) -> Result<i64, Error> {
    let entries = written
        .iter()
        .flat_map(|(_, w, _)| w.feed.iter().map(move |e| (w.interaction.id, e)));
    let (mut ids, mut ats, mut kinds, mut texts, mut datas) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (id, e) in entries {
        ids.push(id);
        ats.push(us(e.at));
        kinds.push(e.kind.clone());
        texts.push(e.text.clone());
        datas.push(serde_json::to_string(&e.data).unwrap_or_default());
    }
    // The events lock is taken last and held to commit (see the module docs).
    sqlx::query(
        "WITH f AS (INSERT INTO feed (interaction_id, at, kind, text, data) \
         SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[])) \
         SELECT pg_advisory_xact_lock($6)::text",
    )
    .bind(ids)
    .bind(ats)
    .bind(kinds)
    .bind(texts)
    .bind(datas)
    .bind(EVENTS_LOCK)
    .execute(&mut *conn)
    .await?;
    let (mut ids, mut queues, mut ats, mut kinds, mut datas) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (_, w, position) in written {
        let i = &w.interaction;
        ids.push(i.id);
        queues.push(i.queue.clone());
        ats.push(us(i.updated_at));
        kinds.push(w.kind);
        datas.push(EventData::text(i, *position, &w.feed));
    }
    let n = ids.len() as i64;
    // A fresh snapshot, taken after the lock: MAX(id) is every instance's newest.
    let base: i64 = sqlx::query_scalar(
        "WITH m AS (SELECT COALESCE(MAX(id), 0) AS base FROM events), \
         e AS (INSERT INTO events (id, interaction_id, queue, at, kind, data) \
         SELECT m.base + u.n, u.iid, u.q, u.at, u.kind, u.data FROM m, \
         UNNEST($1::bigint[], $2::text[], $3::bigint[], $4::text[], $5::text[]) \
         WITH ORDINALITY AS u(iid, q, at, kind, data, n)) \
         SELECT m.base FROM m, LATERAL (SELECT pg_notify($6, (m.base + $7)::text)::text) AS notified",
    )
    .bind(ids)
    .bind(queues)
    .bind(ats)
    .bind(kinds)
    .bind(datas)
    .bind(EVENTS_CHANNEL)
    .bind(n)
    .fetch_one(&mut *conn)
    .await?;
    Ok(base)
}

/// The columns `create` and `try_update` bind from an interaction, in this order after the
/// fixed ones: `assigned_agent`, `callback_number`, `callback_attempts`,
/// `callback_not_before`, `callback_requested_at`, `leg`, `close_reason`, `disposition`,
/// `voicemail_path`.
macro_rules! bind_changeable {
    ($q:expr, $i:expr) => {{
        let i: &Interaction = $i;
        let cb = i.callback.as_ref();
        $q.bind(i.assigned_agent.clone())
            .bind(cb.map(|c| c.number.clone()))
            .bind(i64::from(cb.map_or(0, |c| c.attempts)))
            .bind(cb.and_then(|c| c.not_before).map(us))
            .bind(cb.and_then(|c| c.requested_at).map(us))
            .bind(i.leg.map(Leg::as_str))
            .bind(i.close_reason.map(crate::interaction::CloseReason::as_str))
            .bind(i.disposition.clone())
            .bind(
                i.voicemail_path
                    .as_ref()
                    .map(|p| p.to_string_lossy().into_owned()),
            )
    }};
}

/// The waiting interactions of the row's queue ahead of it (the position, less one), for the
/// row just inserted (`ins`) or updated (`interactions`). `COUNT(o.version)`, not `COUNT(*)`:
/// see `position_of_i!` (an index-only scan would walk the dead versions again every time).
macro_rules! ahead_of {
    ($t:literal) => {
        concat!(
            "(SELECT COUNT(o.version) FROM interactions o WHERE o.queue = ",
            $t,
            ".queue AND o.status IN ('open', 'bot') AND (o.created_at, o.id) < (",
            $t,
            ".created_at, ",
            $t,
            ".id))"
        )
    };
}

/// Its place in line, from the count of those ahead.
fn position(i: &Interaction, ahead: Option<i64>) -> Option<u32> {
    if !i.status.is_waiting() {
        return None;
    }
    ahead.and_then(|n| u32::try_from(n + 1).ok())
}

async fn create(
    conn: &mut PgConnection,
    new: &Interaction,
    instance: &str,
) -> Result<(Written, Option<u32>), Error> {
    let q = sqlx::query(concat!(
        "WITH ins AS (INSERT INTO interactions (queue, status, communication_type, sub_type, \
         customer_number, created_at, updated_at, assigned_agent, callback_number, callback_attempts, \
         callback_not_before, callback_requested_at, leg, close_reason, disposition, voicemail_path, \
         instance) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17) \
         RETURNING id, queue, created_at) SELECT ins.id, ",
        ahead_of!("ins"),
        " AS ahead FROM ins"
    ))
    .bind(new.queue.as_str())
    .bind(new.status.as_str())
    .bind(new.communication_type.as_str())
    .bind(new.sub_type.as_str())
    .bind(new.customer_number.as_str())
    .bind(us(new.created_at))
    .bind(us(new.updated_at));
    let row = bind_changeable!(q, new)
        .bind(instance)
        .fetch_one(&mut *conn)
        .await?;
    let mut stored = new.clone();
    stored.id = row.try_get("id")?;
    let position = position(&stored, row.try_get("ahead")?);
    let entry = write::created_entry(&stored);
    Ok((
        Written {
            from: stored.status,
            interaction: stored,
            version: 0,
            kind: "created",
            feed: vec![entry],
        },
        position,
    ))
}

/// A callback from outside a call ([`write::api_callback`]'s rules), under advisory locks on
/// its idempotency key and on its queue and number (two requests with one key, or for one
/// number, on any instances, go one after the other): a repeated key is [`Error::Replayed`],
/// the day's bookings are counted, and the pending-callback index refuses a second pending
/// callback at the `INSERT` (rolled back to a savepoint: only this write fails).
async fn create_callback(
    conn: &mut PgConnection,
    new: &NewCallback,
    instance: &str,
) -> Result<(Written, Option<u32>), Error> {
    let queue = &new.interaction.queue;
    let b = &new.booking;
    if let Some(key) = &new.idempotency_key {
        sqlx::query(
            "SELECT pg_advisory_xact_lock(hashtextextended('idempotency ' || $1, 0))::text",
        )
        .bind(key)
        .execute(&mut *conn)
        .await?;
        let id: Option<i64> =
            sqlx::query_scalar("SELECT id FROM interactions WHERE idempotency_key = $1")
                .bind(key)
                .fetch_optional(&mut *conn)
                .await?;
        if let Some(id) = id {
            return Err(Error::Replayed { id });
        }
    }
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1 || ' ' || $2, 0))::text")
        .bind(queue)
        .bind(&b.number)
        .execute(&mut *conn)
        .await?;
    let booked = if b.max_per_day == 0 {
        0
    } else {
        sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM interactions WHERE queue = $1 AND callback_number = $2 \
             AND callback_requested_at >= $3",
        )
        .bind(queue)
        .bind(&b.number)
        .bind(us(b.since))
        .fetch_one(&mut *conn)
        .await?
    };
    let extra = write::api_callback(new, booked)?;
    sqlx::raw_sql("SAVEPOINT request")
        .execute(&mut *conn)
        .await?;
    let (mut w, position) = match create(conn, &new.interaction, instance).await {
        Err(Error::Db(sqlx::Error::Database(d)))
            if d.constraint() == Some("interactions_pending_callback") =>
        {
            sqlx::raw_sql("ROLLBACK TO SAVEPOINT request")
                .execute(&mut *conn)
                .await?;
            return Err(write::duplicate(&new.interaction));
        }
        r => r?,
    };
    if let Some(key) = &new.idempotency_key {
        sqlx::query("UPDATE interactions SET idempotency_key = $1 WHERE id = $2")
            .bind(key)
            .bind(w.interaction.id)
            .execute(&mut *conn)
            .await?;
    }
    w.feed = vec![write::api_created_entry(&w.interaction)];
    w.feed.extend(extra);
    Ok((w, position))
}

/// The row as stored, locked until the transaction ends.
async fn read(conn: &mut PgConnection, id: InteractionId) -> Result<(Interaction, i64), Error> {
    let row: Option<PgRow> = sqlx::query(concat!(
        "SELECT ",
        base_cols!(),
        "NULL::bigint AS position FROM interactions i WHERE i.id = $1 FOR UPDATE"
    ))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    row_to_interaction(&row.ok_or(Error::NotFound(id))?)
}

/// Applies the event `decide` makes of the row the writer knows (`known`) or reads. A known
/// row that turns out stale (the guard fails, or the decision or the lifecycle refuses it) is
/// read again, once, and locked: the decision is always made on the row as stored.
async fn update(
    conn: &mut PgConnection,
    known: Option<(Interaction, i64)>,
    id: InteractionId,
    now: Timestamp,
    instance: &str,
    savepoint: bool,
    decide: impl Fn(&Interaction) -> Result<(Event, Guard), Error>,
) -> Result<(Written, Option<u32>), Error> {
    // A refused decision on a known row may be a stale row's: decide on the row as stored.
    if let Some((current, version)) = known
        && let Ok((event, guard)) = decide(&current)
    {
        let w = try_update(
            conn, &current, version, &event, now, guard, instance, savepoint,
        );
        match w.await {
            Ok(Some(w)) => return Ok(w),
            Err(e @ Error::Db(_)) => return Err(e),
            // Stale or refused: decide on the row as stored.
            Ok(None) | Err(_) => {}
        }
    }
    let (current, version) = read(conn, id).await?;
    let (event, guard) = decide(&current)?;
    try_update(
        conn, &current, version, &event, now, guard, instance, savepoint,
    )
    .await?
    .ok_or(Error::Conflict {
        id,
        status: current.status,
    })
}

/// A callback booking: the day's bookings of its queue and number counted under an advisory
/// lock on both (two bookings of one number, on any instances, count one after the other),
/// then the request written (where the pending-callback index has its say).
async fn book(
    conn: &mut PgConnection,
    known: Option<(Interaction, i64)>,
    id: InteractionId,
    b: &Booking,
    now: Timestamp,
    instance: &str,
) -> Result<(Written, Option<u32>), Error> {
    let booked = if b.max_per_day == 0 {
        0
    } else {
        let queue = match &known {
            Some((i, _)) => i.queue.clone(),
            None => {
                let queue: Option<String> =
                    sqlx::query_scalar("SELECT queue FROM interactions WHERE id = $1")
                        .bind(id)
                        .fetch_optional(&mut *conn)
                        .await?;
                queue.ok_or(Error::NotFound(id))?
            }
        };
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1 || ' ' || $2, 0))::text")
            .bind(&queue)
            .bind(&b.number)
            .execute(&mut *conn)
            .await?;
        // A statement after the lock: its snapshot has every booking committed before it.
        sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM interactions WHERE queue = $1 AND callback_number = $2 \
             AND callback_requested_at >= $3 AND id <> $4",
        )
        .bind(&queue)
        .bind(&b.number)
        .bind(us(b.since))
        .bind(id)
        .fetch_one(&mut *conn)
        .await?
    };
    let decide = |current: &Interaction| write::book(current, b, booked);
    update(conn, known, id, now, instance, true, decide).await
}

/// `Ok(None)`: the guard failed (someone changed the row since `version`).
#[allow(clippy::too_many_arguments)]
async fn try_update(
    conn: &mut PgConnection,
    current: &Interaction,
    version: i64,
    event: &Event,
    now: Timestamp,
    guard: Guard,
    instance: &str,
    savepoint: bool,
) -> Result<Option<(Written, Option<u32>)>, Error> {
    let id = current.id;
    let kind = event.name();
    let change = apply(current, event.clone(), now).map_err(|source| match source {
        LifecycleError::NotAllowed { status, .. } => Error::Conflict { id, status },
        source => Error::Lifecycle { id, source },
    })?;
    let next = &change.interaction;
    macro_rules! update {
        ($set:literal, $guard:literal, $ret:expr) => {
            concat!(
                "UPDATE interactions SET status = $1, sub_type = $2, updated_at = $3, \
                 assigned_agent = $4, callback_number = $5, callback_attempts = $6, \
                 callback_not_before = $7, callback_requested_at = $8, leg = $9, \
                 close_reason = $10, disposition = $11, voicemail_path = $12, \
                 version = version + 1",
                $set,
                " WHERE id = $13 AND version = $14",
                $guard,
                " RETURNING ",
                $ret
            )
        };
    }
    // The status guard makes accept and close atomic whatever the version says (an accept is
    // a conditional UPDATE: of concurrent ones on any instances exactly one finds it open);
    // the version guard catches every other lost update. The accepting instance dials: it
    // holds the call from now on.
    let waiting = next.status.is_waiting();
    let sql = match (guard, waiting) {
        (Guard::Version, true) => update!("", "", ahead_of!("interactions")),
        (Guard::Version, false) => update!("", "", "NULL::bigint"),
        (Guard::Open, true) => update!(
            ", instance = $15",
            " AND status = 'open'",
            ahead_of!("interactions")
        ),
        (Guard::Open, false) => update!(", instance = $15", " AND status = 'open'", "NULL::bigint"),
        (Guard::Status(_), true) => update!("", " AND status = $15", ahead_of!("interactions")),
        (Guard::Status(_), false) => update!("", " AND status = $15", "NULL::bigint"),
    };
    let q = sqlx::query(sql)
        .bind(next.status.as_str())
        .bind(next.sub_type.as_str())
        .bind(us(next.updated_at));
    let mut q = bind_changeable!(q, next).bind(id).bind(version);
    match guard {
        Guard::Version => {}
        Guard::Open => q = q.bind(instance),
        Guard::Status(s) => q = q.bind(s.as_str()),
    }
    if savepoint {
        sqlx::raw_sql("SAVEPOINT request")
            .execute(&mut *conn)
            .await?;
    }
    let row = match q.fetch_optional(&mut *conn).await {
        Ok(row) => row,
        Err(sqlx::Error::Database(d))
            if savepoint && d.constraint() == Some("interactions_pending_callback") =>
        {
            // Undo the statement, not the transaction: only this write fails.
            sqlx::raw_sql("ROLLBACK TO SAVEPOINT request")
                .execute(&mut *conn)
                .await?;
            return Err(write::duplicate(next));
        }
        Err(e) => return Err(e.into()),
    };
    let Some(row) = row else {
        return Ok(None);
    };
    let ahead: Option<i64> = row.try_get(0)?;
    let position = position(next, ahead);
    Ok(Some((
        Written {
            interaction: change.interaction,
            version: version + 1,
            kind,
            feed: change.feed,
            from: current.status,
        },
        position,
    )))
}
