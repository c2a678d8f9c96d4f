//! The one writer: group commit of every queued write, from every call, in one transaction.
//!
//! The writer is a thread of its own with its own SQLite connection, driven directly (rusqlite),
//! not through sqlx: every sqlx statement is a round trip to that driver's worker thread (a
//! channel hop and two context switches each way), and those hops, not SQLite, were most of the
//! store's CPU. Here a whole batch runs on one thread without a hop. The writer takes whatever
//! writes are queued (up to [`MAX_BATCH`]) and applies them between one `BEGIN IMMEDIATE` and one
//! `COMMIT`, with as few statements per write as it can, each prepared once and cached:
//!
//! - no `SELECT` of the current row when the writer already holds it: it keeps the rows it wrote
//!   (a cache, forgotten on close). The version guard in the `UPDATE` keeps the cache honest: a
//!   row someone else changed fails the guard, and the write is retried once on a fresh read;
//! - the feed entries and event-log rows of the whole batch go in multi-row `INSERT`s at the
//!   end (event ids assigned here, in commit order: the writer is the only one appending);
//! - a position (`COUNT`) only for rows that are waiting (open or bot), where it means something.
//!
//! Each write gets its own answer: a lost update or a refused lifecycle event fails only that
//! write. A database error aborts the batch (rolled back); the writes are then retried one per
//! transaction so only the one at fault fails, unless the database takes no write at all now
//! (locked by another process, full, read-only): then they all fail at once, after one short
//! busy wait ([`WRITER_BUSY`]), and callers hear of it in well under a second. A write whose
//! waiter gave up before the writer took it is dropped, never done. Events are broadcast after
//! the commit, in id order.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use jiff::Timestamp;
use rusqlite::{Connection, OpenFlags, Statement, params};
use tokio::sync::{Mutex, broadcast, mpsc, oneshot};

use super::{CACHE_MAX, MAX_BATCH, ROWS_PER_INSERT};
use crate::interaction::{
    CloseReason, Event, FeedEntry, Interaction, InteractionId, Leg, LifecycleError, Status, apply,
};
use crate::store::row::{row_to_interaction, us};
use crate::store::write::{self, EventData, Guard, Load, Op, WriteJob, Written, Wrote};
use crate::store::{Booking, Error, NewCallback, StoredEvent};

// Stop is sent once; boxing the write would cost an allocation per write.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(super) enum Msg {
    Write(WriteJob),
    /// Upkeep, between batches.
    Maintain(Maintenance),
    /// Drop the connection and stop (answered when done).
    Stop(oneshot::Sender<()>),
}

/// Upkeep the writer does between batches, each in a short transaction of its own.
#[derive(Debug)]
pub(super) enum Maintenance {
    /// Delete the event-log rows with an id below `below`, never the newest one (event ids
    /// must never be handed out again: SSE clients resume by them). Answers how many.
    DeleteEvents {
        below: i64,
        reply: oneshot::Sender<Result<u64, Error>>,
    },
    /// Rewrite the heartbeat row (`/healthz`: the store takes writes).
    Heartbeat {
        at: i64,
        reply: oneshot::Sender<Result<(), Error>>,
    },
    /// Move a webhook's delivery cursor forward to `last` (never back).
    WebhookCursor {
        webhook: String,
        last: i64,
        at: i64,
        reply: oneshot::Sender<Result<(), Error>>,
    },
}

/// How long a sync to disk may take before the caller is told the store is unavailable.
const SYNC_WAIT: Duration = Duration::from_secs(5);

/// Syncing the WAL to disk, grouped: one `fdatasync` covers every commit made before it began.
#[derive(Debug)]
pub(super) struct Durability {
    /// The `-wal` file (`None` in memory: nothing to sync).
    pub(super) wal: Option<PathBuf>,
    /// Commits done (the writer counts them before it answers).
    pub(super) committed: AtomicU64,
    /// Commits known to be on disk.
    pub(super) synced: AtomicU64,
    pub(super) lock: Mutex<()>,
}

impl Durability {
    /// Returns once every commit answered before this call is on disk. Concurrent callers share
    /// one sync: whoever waited for the lock finds its commit covered by the one just done.
    ///
    /// The WAL file is synced directly (a passive checkpoint skips its sync when a reader's
    /// snapshot leaves nothing to copy). Every commit is either still in the WAL, which this
    /// syncs, or was copied into the database file by a checkpoint that synced that file before
    /// the WAL could be restarted (`synchronous=NORMAL` syncs on checkpoint).
    pub(super) async fn sync(&self) -> Result<(), Error> {
        let Some(wal) = &self.wal else {
            return Ok(());
        };
        let want = self.committed.load(Ordering::Acquire);
        let _one_at_a_time = self.lock.lock().await;
        if self.synced.load(Ordering::Acquire) >= want {
            return Ok(());
        }
        let upto = self.committed.load(Ordering::Acquire);
        let path = wal.clone();
        let sync = tokio::task::spawn_blocking(move || match std::fs::File::open(&path) {
            Ok(f) => f.sync_data(),
            // No WAL: SQLite checkpointed and removed it (and synced the database file).
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        });
        // A disk that does not answer must not hold the caller: the promise is not kept, and
        // the caller is told so (the sync may still finish, unwatched).
        let done = match tokio::time::timeout(SYNC_WAIT, sync).await {
            Ok(r) => r.unwrap_or_else(|e| Err(io::Error::other(e))),
            Err(_) => {
                return Err(Error::Unavailable(format!(
                    "{} was not synced to disk within {SYNC_WAIT:?}",
                    wal.display()
                )));
            }
        };
        done.map_err(|source| Error::Io {
            path: wal.display().to_string(),
            source,
        })?;
        self.synced.fetch_max(upto, Ordering::AcqRel);
        Ok(())
    }
}

/// One write's result inside a batch, before the batch commits.
struct Done {
    interaction: Interaction,
    from: Status,
    version: i64,
    event: Arc<StoredEvent>,
}

impl Done {
    fn wrote(self) -> Wrote {
        Wrote {
            interaction: self.interaction,
            from: self.from,
        }
    }
}

/// The writer thread's state.
pub(super) struct Writer {
    conn: Connection,
    events: broadcast::Sender<Arc<StoredEvent>>,
    durability: Arc<Durability>,
    /// Rows as last committed by this writer, with their versions.
    cache: HashMap<InteractionId, (Interaction, i64)>,
    /// The next event-log id; `None`: read it from the table.
    next_event: Option<i64>,
    inserts: Inserts,
}

/// Prepared statements kept: the fixed ones plus the multi-row `INSERT`s of every row count
/// into the feed and the event log.
const STATEMENT_CACHE: usize = 2 * ROWS_PER_INSERT + 32;

/// A multi-row `INSERT` for every row count up to [`ROWS_PER_INSERT`], its text written once
/// (formatting it for each batch showed in the profile).
struct MultiInsert {
    /// Values per row.
    width: usize,
    /// `sql[n - 1]` inserts `n` rows.
    sql: Vec<String>,
}

impl MultiInsert {
    /// `insert` is `INSERT INTO t (cols) VALUES `; the tuple's width is the number of columns
    /// it names.
    fn new(insert: &str) -> Self {
        let width = insert.matches(',').count() + 1;
        let tuple = format!("({})", vec!["?"; width].join(", "));
        let sql = (1..=ROWS_PER_INSERT)
            .map(|n| format!("{insert}{}", vec![tuple.as_str(); n].join(", ")))
            .collect();
        Self { width, sql }
    }
}

/// The writer's multi-row `INSERT`s.
struct Inserts {
    feed: MultiInsert,
    events: MultiInsert,
}

impl Inserts {
    fn new() -> Self {
        Self {
            feed: MultiInsert::new(
                "INSERT INTO feed (interaction_id, at, kind, text, data) VALUES ",
            ),
            events: MultiInsert::new(
                "INSERT INTO events (id, interaction_id, queue, at, kind, data) VALUES ",
            ),
        }
    }
}

impl Writer {
    /// Opens the writer's connection to the (migrated) database at `path`.
    pub(super) fn open(
        path: &Path,
        events: broadcast::Sender<Arc<StoredEvent>>,
        durability: Arc<Durability>,
    ) -> Result<Self, Error> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        // Another process holding the write lock (a backup, the sqlite3 shell) makes a batch
        // wait this long, then fail: never seconds per caller.
        conn.busy_timeout(WRITER_BUSY)?;
        conn.execute_batch("PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;")?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        Ok(Self {
            conn,
            events,
            durability,
            cache: HashMap::new(),
            next_event: None,
            inserts: Inserts::new(),
        })
    }

    /// Runs the writer on its own thread until [`Msg::Stop`] or until every sender is gone.
    pub(super) fn spawn(self, rx: mpsc::UnboundedReceiver<Msg>) -> io::Result<()> {
        std::thread::Builder::new()
            .name("hammond-store".into())
            .spawn(move || self.run(rx))
            .map(drop)
    }

    fn run(mut self, mut rx: mpsc::UnboundedReceiver<Msg>) {
        let mut load = Load::new(crate::clock::now(), BUSY_WRITES);
        // A message that is not a write, met while gathering a batch: handled after it.
        let mut held: Option<Msg> = None;
        loop {
            let Some(first) = held.take().or_else(|| rx.blocking_recv()) else {
                return;
            };
            let job = match first {
                Msg::Write(j) => j,
                Msg::Maintain(m) => {
                    self.maintain(m);
                    continue;
                }
                Msg::Stop(s) => {
                    // The connection is closed before the answer: a reopen finds the file free.
                    drop(self);
                    let _ = s.send(());
                    return;
                }
            };
            let mut batch = vec![job];
            held = take_queued(&mut rx, &mut batch);
            let urgent = batch.iter().any(|j| j.op.is_urgent());
            if load.busy(crate::clock::now()) && held.is_none() && !urgent {
                // The writer's own thread, not the runtime's.
                #[allow(clippy::disallowed_methods)]
                std::thread::sleep(GATHER);
                held = take_queued(&mut rx, &mut batch);
            }
            // A write whose waiter gave up is not done (it was told so).
            batch.retain(WriteJob::take);
            load.count(batch.len());
            if !batch.is_empty() {
                self.write_batch(batch);
            }
        }
    }

    fn maintain(&mut self, m: Maintenance) {
        match m {
            Maintenance::DeleteEvents { below, reply } => {
                let r = self
                    .conn
                    .prepare_cached(
                        "DELETE FROM events WHERE id < ? AND id < (SELECT MAX(id) FROM events)",
                    )
                    .and_then(|mut s| s.execute([below]))
                    .map(|n| n as u64)
                    .map_err(Error::from);
                let _ = reply.send(r.map_err(unavailable));
            }
            Maintenance::Heartbeat { at, reply } => {
                let r = self
                    .conn
                    .prepare_cached(
                        "INSERT INTO heartbeat (id, at) VALUES (1, ?) \
                         ON CONFLICT (id) DO UPDATE SET at = excluded.at",
                    )
                    .and_then(|mut s| s.execute([at]))
                    .map(drop)
                    .map_err(|e| unavailable(Error::from(e)));
                let _ = reply.send(r);
            }
            Maintenance::WebhookCursor {
                webhook,
                last,
                at,
                reply,
            } => {
                let r = self
                    .conn
                    .prepare_cached(
                        "INSERT INTO webhook_cursors (webhook, last_event, updated_at) \
                         VALUES (?1, ?2, ?3) ON CONFLICT (webhook) DO UPDATE \
                         SET last_event = MAX(last_event, excluded.last_event), \
                         updated_at = excluded.updated_at",
                    )
                    .and_then(|mut s| s.execute(rusqlite::params![webhook, last, at]))
                    .map(drop)
                    .map_err(|e| unavailable(Error::from(e)));
                let _ = reply.send(r);
            }
        }
    }

    fn write_batch(&mut self, batch: Vec<WriteJob>) {
        let ops: Vec<&Op> = batch.iter().map(|j| &j.op).collect();
        match transaction(
            &self.conn,
            &self.inserts,
            &self.cache,
            &mut self.next_event,
            &ops,
        ) {
            Ok(results) => {
                self.committed(results.iter().filter_map(|r| r.as_ref().ok()));
                for (job, r) in batch.into_iter().zip(results) {
                    let _ = job.reply.send(r.map(Done::wrote));
                }
            }
            Err(e) if is_unavailable(&e) => {
                // The database takes no write now (locked by another process, disk full,
                // read-only): every write of the batch fails at once. Redoing them one by one
                // would hold each caller a busy timeout more, a stall of minutes for a batch.
                self.forget();
                let why = e.to_string();
                for job in batch {
                    let _ = job.reply.send(Err(Error::Unavailable(why.clone())));
                }
            }
            Err(_) => {
                // One write broke the batch, or what the writer remembered is stale (another
                // process wrote): forget it and redo each write alone, so only a faulty one
                // fails.
                self.forget();
                for job in batch {
                    let r = match transaction(
                        &self.conn,
                        &self.inserts,
                        &self.cache,
                        &mut self.next_event,
                        &[&job.op],
                    ) {
                        Ok(mut r) => r.pop().unwrap_or(Err(Error::NotWritten)),
                        Err(e) => {
                            self.forget();
                            Err(unavailable(e))
                        }
                    };
                    if let Ok(d) = &r {
                        self.committed(std::iter::once(d));
                    }
                    let _ = job.reply.send(r.map(Done::wrote));
                }
            }
        }
    }

    /// After a commit: count it, remember the rows, publish the events in id order.
    fn committed<'a>(&mut self, done: impl Iterator<Item = &'a Done>) {
        self.durability.committed.fetch_add(1, Ordering::AcqRel);
        if self.cache.len() > CACHE_MAX {
            self.cache.clear();
        }
        for d in done {
            let i = &d.interaction;
            if i.status == Status::Closed {
                self.cache.remove(&i.id);
            } else {
                self.cache.insert(i.id, (i.clone(), d.version));
            }
            let _ = self.events.send(d.event.clone());
        }
    }

    /// After a rollback: nothing remembered can be trusted to match the file.
    fn forget(&mut self) {
        self.cache.clear();
        self.next_event = None;
    }
}

/// How long the writer waits for a write lock another connection holds before the batch fails.
const WRITER_BUSY: Duration = Duration::from_millis(500);

/// SQLite's answer that the database takes no write now, whichever write it is: busy or locked
/// by another process, full, read-only, an I/O or permission error, a damaged file.
fn is_unavailable(e: &Error) -> bool {
    use rusqlite::ErrorCode as C;
    match e {
        Error::Unavailable(_) => true,
        Error::Sqlite(rusqlite::Error::SqliteFailure(f, _)) => matches!(
            f.code,
            C::DatabaseBusy
                | C::DatabaseLocked
                | C::DiskFull
                | C::ReadOnly
                | C::SystemIoFailure
                | C::PermissionDenied
                | C::CannotOpen
                | C::OutOfMemory
                | C::FileLockingProtocolFailed
                | C::DatabaseCorrupt
                | C::NotADatabase
        ),
        _ => false,
    }
}

/// `e`, as [`Error::Unavailable`] when it is one of those.
fn unavailable(e: Error) -> Error {
    if is_unavailable(&e) {
        Error::Unavailable(e.to_string())
    } else {
        e
    }
}

/// Moves the queued writes into `batch` (up to [`MAX_BATCH`]); returns the first message that
/// is not a write, if one was met (it waits for the batch).
fn take_queued(rx: &mut mpsc::UnboundedReceiver<Msg>, batch: &mut Vec<WriteJob>) -> Option<Msg> {
    while batch.len() < MAX_BATCH {
        match rx.try_recv() {
            Ok(Msg::Write(j)) => batch.push(j),
            Ok(other) => return Some(other),
            Err(_) => break,
        }
    }
    None
}

/// How long a busy writer waits for more writes before it commits. Most of a write's cost is
/// the commit (WAL frames, locks), shared by every write in it: at 700 calls/s a commit every
/// two writes cost 0.37 ms of CPU per call, one every ten 0.21 ms. Idle, nothing waits.
const GATHER: Duration = Duration::from_millis(2);

/// Writes per [`write::LOAD_WINDOW`] from which the writer counts as busy (2,000 writes/s:
/// about 400 calls/s setting up and hanging up).
const BUSY_WRITES: usize = 200;

/// One transaction over `ops`. `Err` only for a database error (rolled back); per-write
/// refusals are in the vector.
fn transaction(
    conn: &Connection,
    inserts: &Inserts,
    cache: &HashMap<InteractionId, (Interaction, i64)>,
    next_event: &mut Option<i64>,
    ops: &[&Op],
) -> Result<Vec<Result<Done, Error>>, Error> {
    conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
    let r = body(conn, inserts, cache, *next_event, ops).and_then(|(done, next)| {
        conn.prepare_cached("COMMIT")?.execute([])?;
        *next_event = Some(next);
        Ok(done)
    });
    if r.is_err() {
        let _ = conn
            .prepare_cached("ROLLBACK")
            .and_then(|mut s| s.execute([]));
    }
    r
}

fn body(
    conn: &Connection,
    inserts: &Inserts,
    cache: &HashMap<InteractionId, (Interaction, i64)>,
    next_event: Option<i64>,
    ops: &[&Op],
) -> Result<(Vec<Result<Done, Error>>, i64), Error> {
    let mut next = match next_event {
        Some(n) => n,
        None => conn
            .prepare_cached("SELECT COALESCE(MAX(id), 0) + 1 FROM events")?
            .query_row([], |r| r.get(0))?,
    };
    // Rows written earlier in this transaction (newer than the cache).
    let mut fresh: HashMap<InteractionId, (Interaction, i64)> = HashMap::new();
    let mut out = Vec::with_capacity(ops.len());
    let mut feed: Vec<(InteractionId, FeedEntry)> = Vec::new();
    for op in ops {
        let r = match op {
            Op::Create(new) => create(conn, new),
            Op::CreateCallback(new) => create_callback(conn, new),
            Op::Apply {
                id,
                event,
                now,
                accept,
            } => {
                let known = fresh.get(id).or_else(|| cache.get(id));
                let guard = if *accept { Guard::Open } else { Guard::Version };
                update(conn, known, *id, *now, |_| Ok((event.clone(), guard)))
            }
            Op::Close {
                id,
                agent,
                reason,
                disposition,
                now,
            } => {
                let known = fresh.get(id).or_else(|| cache.get(id));
                update(conn, known, *id, *now, |current| {
                    write::close_by(current, agent, *reason, disposition.clone())
                })
            }
            Op::Book { id, booking, now } => {
                let known = fresh.get(id).or_else(|| cache.get(id));
                update(conn, known, *id, *now, |current| {
                    write::book(current, booking, booked(conn, current, booking)?)
                })
            }
        };
        match r {
            Ok(Written {
                interaction: i,
                version,
                kind,
                feed: entries,
                from,
            }) => {
                let position = position_of(conn, &i)?;
                let data = EventData::text(&i, position, &entries);
                let event = Arc::new(StoredEvent {
                    id: next,
                    interaction_id: i.id,
                    queue: i.queue.clone(),
                    at: i.updated_at,
                    kind: kind.to_owned(),
                    data,
                });
                next += 1;
                fresh.insert(i.id, (i.clone(), version));
                feed.extend(entries.into_iter().map(|e| (i.id, e)));
                out.push(Ok(Done {
                    interaction: i,
                    from,
                    version,
                    event,
                }));
            }
            Err(e @ Error::Sqlite(_)) => return Err(e),
            Err(e) => out.push(Err(e)),
        }
    }
    insert_rows(conn, &inserts.feed, &feed, |s, (id, e)| {
        s.raw_bind_parameter(1, id)?;
        s.raw_bind_parameter(2, us(e.at))?;
        s.raw_bind_parameter(3, e.kind.as_str())?;
        s.raw_bind_parameter(4, e.text.as_str())?;
        s.raw_bind_parameter(5, serde_json::to_string(&e.data).unwrap_or_default())
    })?;
    let events: Vec<&StoredEvent> = out
        .iter()
        .filter_map(|r| r.as_ref().ok().map(|d| &*d.event))
        .collect();
    insert_rows(conn, &inserts.events, &events, |s, e| {
        s.raw_bind_parameter(1, e.id)?;
        s.raw_bind_parameter(2, e.interaction_id)?;
        s.raw_bind_parameter(3, e.queue.as_str())?;
        s.raw_bind_parameter(4, us(e.at))?;
        s.raw_bind_parameter(5, e.kind.as_str())?;
        s.raw_bind_parameter(6, e.data.as_str())
    })?;
    Ok((out, next))
}

/// A statement whose parameters `bind` sets for one row, numbered from 1 as for a single
/// `VALUES` tuple: [`insert_rows`] shifts them to the row's place.
struct RowBinder<'s, 'c> {
    stmt: &'s mut Statement<'c>,
    base: usize,
}

impl RowBinder<'_, '_> {
    fn raw_bind_parameter(
        &mut self,
        i: usize,
        v: impl rusqlite::ToSql,
    ) -> Result<(), rusqlite::Error> {
        self.stmt.raw_bind_parameter(self.base + i, v)
    }
}

/// Inserts `rows` with `insert`, [`ROWS_PER_INSERT`] rows per statement at most.
fn insert_rows<T>(
    conn: &Connection,
    insert: &MultiInsert,
    rows: &[T],
    bind: impl Fn(&mut RowBinder<'_, '_>, &T) -> Result<(), rusqlite::Error>,
) -> Result<(), Error> {
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        let mut stmt = conn.prepare_cached(&insert.sql[chunk.len() - 1])?;
        for (n, row) in chunk.iter().enumerate() {
            bind(
                &mut RowBinder {
                    stmt: &mut stmt,
                    base: n * insert.width,
                },
                row,
            )?;
        }
        stmt.raw_execute()?;
    }
    Ok(())
}

fn create(conn: &Connection, new: &Interaction) -> Result<Written, Error> {
    let mut insert = conn.prepare_cached(
        "INSERT INTO interactions (queue, status, communication_type, sub_type, customer_number, created_at, \
         updated_at, assigned_agent, callback_number, callback_attempts, callback_not_before, \
         callback_requested_at, leg, close_reason, disposition, voicemail_path) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )?;
    insert.raw_bind_parameter(1, new.queue.as_str())?;
    insert.raw_bind_parameter(2, new.status.as_str())?;
    insert.raw_bind_parameter(3, new.communication_type.as_str())?;
    insert.raw_bind_parameter(4, new.sub_type.as_str())?;
    insert.raw_bind_parameter(5, new.customer_number.as_str())?;
    insert.raw_bind_parameter(6, us(new.created_at))?;
    insert.raw_bind_parameter(7, us(new.updated_at))?;
    bind_changeable(&mut insert, 8, new)?;
    insert.raw_execute()?;
    let mut stored = new.clone();
    stored.id = conn.last_insert_rowid();
    let entry = write::created_entry(&stored);
    Ok(Written {
        from: stored.status,
        interaction: stored,
        version: 0,
        kind: "created",
        feed: vec![entry],
    })
}

/// A callback from outside a call ([`write::api_callback`]'s rules): a repeated idempotency
/// key is [`Error::Replayed`] (nothing written), the daily cap is counted, and the pending
/// callback index refuses a second pending callback at the `INSERT` (only that statement is
/// undone). This writer is the only one, so the key's lookup cannot race its insert.
fn create_callback(conn: &Connection, new: &NewCallback) -> Result<Written, Error> {
    if let Some(key) = &new.idempotency_key {
        let mut find =
            conn.prepare_cached("SELECT id FROM interactions WHERE idempotency_key = ?")?;
        let mut rows = find.query([key])?;
        if let Some(row) = rows.next()? {
            return Err(Error::Replayed { id: row.get(0)? });
        }
    }
    let b = &new.booking;
    let booked: i64 = if b.max_per_day == 0 {
        0
    } else {
        conn.prepare_cached(
            "SELECT COUNT(*) FROM interactions WHERE queue = ? AND callback_number = ? \
             AND callback_requested_at >= ?",
        )?
        .query_row(params![new.interaction.queue, b.number, us(b.since)], |r| {
            r.get(0)
        })?
    };
    let extra = write::api_callback(new, booked)?;
    let mut w = match create(conn, &new.interaction) {
        Err(Error::Sqlite(rusqlite::Error::SqliteFailure(e, _)))
            if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE =>
        {
            return Err(write::duplicate(&new.interaction));
        }
        r => r?,
    };
    if let Some(key) = &new.idempotency_key {
        conn.prepare_cached("UPDATE interactions SET idempotency_key = ? WHERE id = ?")?
            .execute(params![key, w.interaction.id])?;
    }
    w.feed = vec![write::api_created_entry(&w.interaction)];
    w.feed.extend(extra);
    Ok(w)
}

fn read(conn: &Connection, id: InteractionId) -> Result<(Interaction, i64), Error> {
    let mut select = conn.prepare_cached(concat!(
        "SELECT ",
        base_cols!(),
        "NULL AS position FROM interactions i WHERE i.id = ?"
    ))?;
    let mut rows = select.query([id])?;
    let row = rows.next()?.ok_or(Error::NotFound(id))?;
    row_to_interaction(row)
}

/// Applies the event `decide` makes of the row the writer knows (`known`) or reads. A known
/// row that turns out stale (the guard fails, or the decision or the lifecycle refuses it) is
/// read again, once: the decision is always made on the row as stored.
fn update(
    conn: &Connection,
    known: Option<&(Interaction, i64)>,
    id: InteractionId,
    now: Timestamp,
    decide: impl Fn(&Interaction) -> Result<(Event, Guard), Error>,
) -> Result<Written, Error> {
    let attempt = |current: &Interaction, version: i64| {
        let (event, guard) = decide(current)?;
        try_update(conn, current, version, &event, now, guard)
    };
    if let Some((current, version)) = known {
        match attempt(current, *version) {
            Ok(Some(w)) => return Ok(w),
            Err(e @ Error::Sqlite(_)) => return Err(e),
            // Stale or refused: decide on the row as stored.
            Ok(None) | Err(_) => {}
        }
    }
    let (current, version) = read(conn, id)?;
    attempt(&current, version)?.ok_or(Error::Conflict {
        id,
        status: current.status,
    })
}

/// The bookings of `current`'s queue and `b`'s number since `b.since`, this interaction's own
/// earlier request aside (0 without a cap: nothing to count).
fn booked(conn: &Connection, current: &Interaction, b: &Booking) -> Result<i64, Error> {
    if b.max_per_day == 0 {
        return Ok(0);
    }
    Ok(conn
        .prepare_cached(
            "SELECT COUNT(*) FROM interactions WHERE queue = ? AND callback_number = ? \
             AND callback_requested_at >= ? AND id <> ?",
        )?
        .query_row(
            params![current.queue, b.number, us(b.since), current.id],
            |r| r.get(0),
        )?)
}

/// `Ok(None)`: the guard failed (someone changed the row since `version`).
fn try_update(
    conn: &Connection,
    current: &Interaction,
    version: i64,
    event: &Event,
    now: Timestamp,
    guard: Guard,
) -> Result<Option<Written>, Error> {
    let id = current.id;
    let kind = event.name();
    let change = apply(current, event.clone(), now).map_err(|source| match source {
        LifecycleError::NotAllowed { status, .. } => Error::Conflict { id, status },
        source => Error::Lifecycle { id, source },
    })?;
    let next = &change.interaction;
    // The status guard makes accept and close atomic on any backend (PostgreSQL included); the
    // version guard catches every other lost update.
    macro_rules! update {
        () => {
            "UPDATE interactions SET status = ?, sub_type = ?, updated_at = ?, assigned_agent = ?, \
             callback_number = ?, callback_attempts = ?, callback_not_before = ?, callback_requested_at = ?, \
             leg = ?, close_reason = ?, disposition = ?, voicemail_path = ?, version = version + 1 \
             WHERE id = ? AND version = ?"
        };
    }
    let sql = match guard {
        Guard::Version => update!(),
        Guard::Open => concat!(update!(), " AND status = 'open'"),
        Guard::Status(_) => concat!(update!(), " AND status = ?"),
    };
    let mut update = conn.prepare_cached(sql)?;
    update.raw_bind_parameter(1, next.status.as_str())?;
    update.raw_bind_parameter(2, next.sub_type.as_str())?;
    update.raw_bind_parameter(3, us(next.updated_at))?;
    bind_changeable(&mut update, 4, next)?;
    update.raw_bind_parameter(13, id)?;
    update.raw_bind_parameter(14, version)?;
    if let Guard::Status(status) = guard {
        update.raw_bind_parameter(15, status.as_str())?;
    }
    let changed = match update.raw_execute() {
        Ok(n) => n,
        // The statement is undone, the transaction goes on: only this write fails.
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE =>
        {
            return Err(write::duplicate(next));
        }
        Err(e) => return Err(e.into()),
    };
    if changed == 0 {
        return Ok(None);
    }
    Ok(Some(Written {
        interaction: change.interaction,
        version: version + 1,
        kind,
        feed: change.feed,
        from: current.status,
    }))
}

/// Binds the columns a lifecycle event can change, from parameter `first` on, in the order the
/// `INSERT` and the `UPDATE` both list them: `assigned_agent`, `callback_number`,
/// `callback_attempts`, `callback_not_before`, `callback_requested_at`, `leg`, `close_reason`,
/// `disposition`, `voicemail_path`.
fn bind_changeable(
    stmt: &mut Statement<'_>,
    first: usize,
    i: &Interaction,
) -> Result<(), rusqlite::Error> {
    let cb = i.callback.as_ref();
    stmt.raw_bind_parameter(first, i.assigned_agent.as_deref())?;
    stmt.raw_bind_parameter(first + 1, cb.map(|c| c.number.as_str()))?;
    stmt.raw_bind_parameter(first + 2, i64::from(cb.map_or(0, |c| c.attempts)))?;
    stmt.raw_bind_parameter(first + 3, cb.and_then(|c| c.not_before).map(us))?;
    stmt.raw_bind_parameter(first + 4, cb.and_then(|c| c.requested_at).map(us))?;
    stmt.raw_bind_parameter(first + 5, i.leg.map(Leg::as_str))?;
    stmt.raw_bind_parameter(first + 6, i.close_reason.map(CloseReason::as_str))?;
    stmt.raw_bind_parameter(first + 7, i.disposition.as_deref())?;
    let voicemail = i.voicemail_path.as_ref().map(|p| p.to_string_lossy());
    stmt.raw_bind_parameter(first + 8, voicemail.as_deref())
}

/// A waiting row's place in its queue's line (`line_up_to!`'s rule); `None` for the others.
fn position_of(conn: &Connection, i: &Interaction) -> Result<Option<u32>, Error> {
    if !i.status.is_waiting() {
        return Ok(None);
    }
    let n: i64 = conn
        .prepare_cached(line_up_to!())?
        .query_row(params![i.queue, us(i.created_at), i.id], |r| r.get(0))?;
    Ok(u32::try_from(n).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inserts_any_number_of_rows_with_the_cached_statements() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (a INTEGER, b TEXT)")
            .unwrap();
        let insert = MultiInsert::new("INSERT INTO t (a, b) VALUES ");
        // Two full statements of ROWS_PER_INSERT rows and a shorter one.
        let rows: Vec<(i64, String)> = (0..70).map(|i| (i, format!("r{i}"))).collect();
        insert_rows(&conn, &insert, &rows, |s, (a, b)| {
            s.raw_bind_parameter(1, a)?;
            s.raw_bind_parameter(2, b.as_str())
        })
        .unwrap();
        let (n, sum, last): (i64, i64, String) = conn
            .query_row(
                "SELECT COUNT(*), SUM(a), MAX(b) FROM t WHERE b = 'r' || a",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!((n, sum, last.as_str()), (70, (0..70).sum(), "r9"));
    }
}
