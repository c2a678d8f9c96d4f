//! The one writer: group commit of every queued write, from every call, in one transaction.
//!
//! Each statement through sqlx is a round trip to its SQLite worker thread (a channel hop and
//! two context switches), and that, not SQLite, was most of the store's CPU. So the writer takes
//! whatever writes are queued (up to [`MAX_BATCH`]) and applies them between one `BEGIN
//! IMMEDIATE` and one `COMMIT`, with as few statements per write as it can:
//!
//! - no `SELECT` of the current row when the writer already holds it: it keeps the rows it wrote
//!   (a cache, forgotten on close). The version guard in the `UPDATE` keeps the cache honest: a
//!   row someone else changed fails the guard, and the write is retried once on a fresh read;
//! - the feed entries and event-log rows of the whole batch go in two multi-row `INSERT`s at the
//!   end (event ids assigned here, in commit order: the writer is the only one appending);
//! - a position (`COUNT`) only for rows that are open, where it means something.
//!
//! Each write gets its own answer: a lost update or a refused lifecycle event fails only that
//! write. A database error aborts the batch (rolled back); the writes are then retried one per
//! transaction so only the one at fault fails. Events are broadcast after the commit, in id order.

use std::collections::HashMap;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use jiff::Timestamp;
use sqlx::pool::PoolConnection;
use sqlx::{AssertSqlSafe, Sqlite, SqliteConnection, SqlitePool};
use tokio::sync::{Mutex, broadcast, mpsc, oneshot};

use super::{CACHE_MAX, MAX_BATCH, ROWS_PER_INSERT, position_of, row_to_interaction, us};
use crate::interaction::{
    CloseReason, Event, FeedEntry, Interaction, InteractionId, Leg, LifecycleError, Status, apply,
};
use crate::store::{Error, StoredEvent};

/// A write the store wants done.
#[derive(Debug)]
pub(super) enum Op {
    Create(Interaction),
    Apply {
        id: InteractionId,
        event: Event,
        now: Timestamp,
        /// The accept guard (`status = 'open'` in the `UPDATE`).
        accept: bool,
    },
}

#[derive(Debug)]
pub(super) struct WriteJob {
    pub(super) op: Op,
    pub(super) reply: oneshot::Sender<Result<Interaction, Error>>,
}

// Stop is sent once; boxing the write would cost an allocation per write.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(super) enum Msg {
    Write(WriteJob),
    /// Drop the connection and stop (answered when done).
    Stop(oneshot::Sender<()>),
}

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
        let done = tokio::task::spawn_blocking(move || match std::fs::File::open(&path) {
            Ok(f) => f.sync_data(),
            // No WAL: SQLite checkpointed and removed it (and synced the database file).
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        })
        .await
        .unwrap_or_else(|e| Err(io::Error::other(e)));
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
    version: i64,
    event: StoredEvent,
}

pub(super) struct Writer {
    pub(super) pool: SqlitePool,
    /// The writer's own connection (file databases); `None`: borrow the pool's one per batch
    /// (`:memory:`, where that one connection is the database).
    pub(super) held: Option<PoolConnection<Sqlite>>,
    pub(super) events: broadcast::Sender<StoredEvent>,
    pub(super) durability: Arc<Durability>,
    /// Rows as last committed by this writer, with their versions.
    pub(super) cache: HashMap<InteractionId, (Interaction, i64)>,
    /// The next event-log id; `None`: read it from the table.
    pub(super) next_event: Option<i64>,
}

impl Writer {
    pub(super) async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Msg>) {
        while let Some(first) = rx.recv().await {
            let mut batch = Vec::new();
            let mut stop = None;
            match first {
                Msg::Write(j) => batch.push(j),
                Msg::Stop(s) => stop = Some(s),
            }
            while stop.is_none() && batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(Msg::Write(j)) => batch.push(j),
                    Ok(Msg::Stop(s)) => stop = Some(s),
                    Err(_) => break,
                }
            }
            if !batch.is_empty() {
                self.write_batch(batch).await;
            }
            if let Some(s) = stop {
                self.held = None;
                let _ = s.send(());
                return;
            }
        }
    }

    async fn write_batch(&mut self, batch: Vec<WriteJob>) {
        if let Some(mut held) = self.held.take() {
            self.batch_on(&mut held, batch).await;
            self.held = Some(held);
            return;
        }
        match self.pool.acquire().await {
            Ok(mut pooled) => self.batch_on(&mut pooled, batch).await,
            Err(e) => {
                let e = e.to_string();
                for j in batch {
                    let _ = j
                        .reply
                        .send(Err(Error::Db(sqlx::Error::Protocol(e.clone()))));
                }
            }
        }
    }

    async fn batch_on(&mut self, conn: &mut SqliteConnection, batch: Vec<WriteJob>) {
        let ops: Vec<&Op> = batch.iter().map(|j| &j.op).collect();
        match transaction(conn, &self.cache, &mut self.next_event, &ops).await {
            Ok(results) => {
                self.committed(results.iter().filter_map(|r| r.as_ref().ok()));
                for (job, r) in batch.into_iter().zip(results) {
                    let _ = job.reply.send(r.map(|d| d.interaction));
                }
            }
            Err(_) => {
                // One write broke the batch, or what the writer remembered is stale (another
                // process wrote): forget it and redo each write alone, so only a faulty one
                // fails.
                self.forget();
                for job in batch {
                    let r = match transaction(conn, &self.cache, &mut self.next_event, &[&job.op])
                        .await
                    {
                        Ok(mut r) => r.pop().unwrap_or(Err(Error::Db(sqlx::Error::RowNotFound))),
                        Err(e) => {
                            self.forget();
                            Err(e)
                        }
                    };
                    if let Ok(d) = &r {
                        self.committed(std::iter::once(d));
                    }
                    let _ = job.reply.send(r.map(|d| d.interaction));
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

/// One transaction over `ops`. `Err` only for a database error (rolled back); per-write
/// refusals are in the vector.
async fn transaction(
    conn: &mut SqliteConnection,
    cache: &HashMap<InteractionId, (Interaction, i64)>,
    next_event: &mut Option<i64>,
    ops: &[&Op],
) -> Result<Vec<Result<Done, Error>>, Error> {
    sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await?;
    let r = match body(conn, cache, next_event, ops).await {
        Ok((done, next)) => match sqlx::query("COMMIT").execute(&mut *conn).await {
            Ok(_) => {
                *next_event = Some(next);
                return Ok(done);
            }
            Err(e) => Err(e.into()),
        },
        Err(e) => Err(e),
    };
    let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
    r
}

async fn body(
    conn: &mut SqliteConnection,
    cache: &HashMap<InteractionId, (Interaction, i64)>,
    next_event: &Option<i64>,
    ops: &[&Op],
) -> Result<(Vec<Result<Done, Error>>, i64), Error> {
    let mut next = match *next_event {
        Some(n) => n,
        None => {
            sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) + 1 FROM events")
                .fetch_one(&mut *conn)
                .await?
        }
    };
    // Rows written earlier in this transaction (newer than the cache).
    let mut fresh: HashMap<InteractionId, (Interaction, i64)> = HashMap::new();
    let mut feed: Vec<(InteractionId, &FeedEntry)> = Vec::new();
    let mut out = Vec::with_capacity(ops.len());
    let mut feeds: Vec<Vec<FeedEntry>> = Vec::with_capacity(ops.len());
    for op in ops {
        let r = match op {
            Op::Create(new) => create(conn, new).await,
            Op::Apply {
                id,
                event,
                now,
                accept,
            } => {
                let known = fresh.get(id).or_else(|| cache.get(id));
                update(conn, known, *id, event, *now, *accept).await
            }
        };
        match r {
            Ok((i, version, kind, entries)) => {
                let position = position_of(conn, &i).await?;
                let data =
                    serde_json::json!({ "interaction": i.to_json(position), "feed": entries });
                let event = StoredEvent {
                    id: next,
                    interaction_id: i.id,
                    queue: i.queue.clone(),
                    at: i.updated_at,
                    kind: kind.to_owned(),
                    data,
                };
                next += 1;
                fresh.insert(i.id, (i.clone(), version));
                feeds.push(entries);
                out.push(Ok(Done {
                    interaction: i,
                    version,
                    event,
                }));
            }
            Err(Error::Db(e)) => return Err(Error::Db(e)),
            Err(e) => {
                feeds.push(Vec::new());
                out.push(Err(e));
            }
        }
    }
    for (r, entries) in out.iter().zip(&feeds) {
        if let Ok(d) = r {
            feed.extend(entries.iter().map(|e| (d.interaction.id, e)));
        }
    }
    for chunk in feed.chunks(ROWS_PER_INSERT) {
        let sql = format!(
            "INSERT INTO feed (interaction_id, at, kind, text, data) VALUES {}",
            vec!["(?, ?, ?, ?, ?)"; chunk.len()].join(", ")
        );
        let mut q = sqlx::query(AssertSqlSafe(sql)).persistent(chunk.len() <= 16);
        for (id, e) in chunk {
            q = q
                .bind(*id)
                .bind(us(e.at))
                .bind(e.kind.as_str())
                .bind(e.text.as_str())
                .bind(serde_json::to_string(&e.data).unwrap_or_else(|_| "{}".into()));
        }
        q.execute(&mut *conn).await?;
    }
    let events: Vec<&StoredEvent> = out
        .iter()
        .filter_map(|r| r.as_ref().ok().map(|d| &d.event))
        .collect();
    for chunk in events.chunks(ROWS_PER_INSERT) {
        let sql = format!(
            "INSERT INTO events (id, interaction_id, queue, at, kind, data) VALUES {}",
            vec!["(?, ?, ?, ?, ?, ?)"; chunk.len()].join(", ")
        );
        let mut q = sqlx::query(AssertSqlSafe(sql)).persistent(chunk.len() <= 16);
        for e in chunk {
            q = q
                .bind(e.id)
                .bind(e.interaction_id)
                .bind(e.queue.as_str())
                .bind(us(e.at))
                .bind(e.kind.as_str())
                .bind(e.data.to_string());
        }
        q.execute(&mut *conn).await?;
    }
    Ok((out, next))
}

type Written = (Interaction, i64, &'static str, Vec<FeedEntry>);

async fn create(conn: &mut SqliteConnection, new: &Interaction) -> Result<Written, Error> {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO interactions (queue, status, communication_type, sub_type, customer_number, created_at, \
         updated_at, assigned_agent, callback_number, callback_attempts, callback_not_before, \
         callback_requested_at, leg, close_reason, disposition) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
    )
    .bind(&new.queue)
    .bind(new.status.as_str())
    .bind(new.communication_type.as_str())
    .bind(new.sub_type.as_str())
    .bind(&new.customer_number)
    .bind(us(new.created_at))
    .bind(us(new.updated_at))
    .bind(new.assigned_agent.as_deref())
    .bind(new.callback.as_ref().map(|c| c.number.as_str()))
    .bind(i64::from(new.callback.as_ref().map_or(0, |c| c.attempts)))
    .bind(new.callback.as_ref().and_then(|c| c.not_before).map(us))
    .bind(new.callback.as_ref().and_then(|c| c.requested_at).map(us))
    .bind(new.leg.map(Leg::as_str))
    .bind(new.close_reason.map(CloseReason::as_str))
    .bind(new.disposition.as_deref())
    .fetch_one(&mut *conn)
    .await?;
    let mut stored = new.clone();
    stored.id = id;
    let entry = FeedEntry::new(
        stored.created_at,
        "created",
        format!("call received from {}", stored.customer_number),
    )
    .with("queue", &stored.queue)
    .with("customer_number", &stored.customer_number);
    Ok((stored, 0, "created", vec![entry]))
}

async fn read(conn: &mut SqliteConnection, id: InteractionId) -> Result<(Interaction, i64), Error> {
    let row = sqlx::query(concat!(
        "SELECT ",
        base_cols!(),
        "NULL AS position FROM interactions i WHERE i.id = ?"
    ))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(Error::NotFound(id))?;
    row_to_interaction(&row)
}

/// Applies `event` to the row the writer knows (`known`) or reads it. A known row that turns
/// out stale (the version guard fails, or the lifecycle refuses it) is read again, once.
async fn update(
    conn: &mut SqliteConnection,
    known: Option<&(Interaction, i64)>,
    id: InteractionId,
    event: &Event,
    now: Timestamp,
    accept: bool,
) -> Result<Written, Error> {
    if let Some((current, version)) = known {
        match try_update(conn, current, *version, event, now, accept).await {
            Ok(Some(w)) => return Ok(w),
            Err(Error::Db(e)) => return Err(Error::Db(e)),
            // Stale or refused: decide on the row as stored.
            Ok(None) | Err(_) => {}
        }
    }
    let (current, version) = read(conn, id).await?;
    try_update(conn, &current, version, event, now, accept)
        .await?
        .ok_or(Error::Conflict {
            id,
            status: current.status,
        })
}

/// `Ok(None)`: the guard failed (someone changed the row since `version`).
async fn try_update(
    conn: &mut SqliteConnection,
    current: &Interaction,
    version: i64,
    event: &Event,
    now: Timestamp,
    accept: bool,
) -> Result<Option<Written>, Error> {
    let id = current.id;
    let kind = event.name();
    let change = apply(current, event.clone(), now).map_err(|source| match source {
        LifecycleError::NotAllowed { status, .. } => Error::Conflict { id, status },
        source => Error::Lifecycle { id, source },
    })?;
    let next = &change.interaction;
    let cb = next.callback.as_ref();
    // The status guard makes accept atomic on any backend (PostgreSQL included); the version
    // guard catches every other lost update.
    macro_rules! update {
        () => {
            "UPDATE interactions SET status = ?, sub_type = ?, updated_at = ?, assigned_agent = ?, \
             callback_number = ?, callback_attempts = ?, callback_not_before = ?, callback_requested_at = ?, \
             leg = ?, close_reason = ?, disposition = ?, version = version + 1 \
             WHERE id = ? AND version = ?"
        };
    }
    let sql = if accept {
        concat!(update!(), " AND status = 'open'")
    } else {
        update!()
    };
    let done = sqlx::query(sql)
        .bind(next.status.as_str())
        .bind(next.sub_type.as_str())
        .bind(us(next.updated_at))
        .bind(next.assigned_agent.as_deref())
        .bind(cb.map(|c| c.number.as_str()))
        .bind(i64::from(cb.map_or(0, |c| c.attempts)))
        .bind(cb.and_then(|c| c.not_before).map(us))
        .bind(cb.and_then(|c| c.requested_at).map(us))
        .bind(next.leg.map(Leg::as_str))
        .bind(next.close_reason.map(CloseReason::as_str))
        .bind(next.disposition.as_deref())
        .bind(id)
        .bind(version)
        .execute(&mut *conn)
        .await?;
    if done.rows_affected() == 0 {
        return Ok(None);
    }
    Ok(Some((change.interaction, version + 1, kind, change.feed)))
}
