//! The embedded SQLite backend: one file (WAL, `synchronous=NORMAL`, `foreign_keys=ON`), created
//! with its parent directory if missing; `sqlite::memory:` (tests) is a private temporary file,
//! removed when the store is dropped. Reads go through an sqlx pool; every write goes to the one
//! writer thread (see `writer`), which group-commits them and broadcasts events in id order.
//!
//! Durability is paid for where a promise was made. Every commit survives a crash of Hammond
//! (WAL, NORMAL). A callback request the caller is about to hear confirmed, and an accept that is
//! about to dial, must also survive a power cut: after those commits the WAL is synced to disk
//! (a passive checkpoint syncs the WAL first) before the call returns. Fsyncing every feed entry
//! would cap call setup at a few hundred per second for no promise kept.

use std::borrow::Cow;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use jiff::Timestamp;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, Row, SqlStr, SqlitePool};
use tokio::sync::{Mutex, broadcast, mpsc, oneshot};
use writer::{Durability, Maintenance, Msg, Writer};

use super::local::Local;
use super::report::{self, ReportQuery, ReportRow};
use super::row::{Columns, parse, row_to_interaction, ts, us};
use super::write::{self, Op, Wrote};
use super::{
    Booking, Closed, CreatedCallback, Cursor, Detail, Error, InteractionStore, ListQuery, Listed,
    MAX_PAGE, NewCallback, OfferClaim, Page, RetryRules, StoreFuture, StoredEvent, Synced,
};
use crate::interaction::{
    CloseReason, Event, FeedEntry, Interaction, InteractionId, Status, SubType,
};
use crate::queue::agent::Presence;

/// The migrations in `src/store/migrations/`, embedded in the binary.
fn migrator() -> Migrator {
    let m = |version, description: &'static str, sql: &'static str| {
        Migration::new(
            version,
            Cow::Borrowed(description),
            MigrationType::Simple,
            SqlStr::from_static(sql),
            false,
        )
    };
    Migrator {
        migrations: Cow::Owned(vec![
            m(
                1,
                "interactions",
                include_str!("migrations/0001_interactions.sql"),
            ),
            m(
                2,
                "one pending callback",
                include_str!("migrations/0002_one_pending_callback.sql"),
            ),
            m(
                3,
                "heartbeat",
                include_str!("migrations/0003_heartbeat.sql"),
            ),
            m(4, "webhooks", include_str!("migrations/0004_webhooks.sql")),
            m(
                5,
                "idempotency key",
                include_str!("migrations/0005_idempotency_key.sql"),
            ),
            m(
                6,
                "voicemail path",
                include_str!("migrations/0006_voicemail_path.sql"),
            ),
        ]),
        ..Migrator::DEFAULT
    }
}

/// The waiting line's rule, once for every reader (the Home List, the event log, the caller's
/// announcement): a waiting interaction (open or bot) is preceded by the waiting interactions of
/// its queue that arrived before it (original arrival, then id). The `(queue, status,
/// created_at, id)` index keys the waiting rows apart from the closed ones, so the count is two
/// seeks (open, bot) and a walk of the line ahead, never of the queue's history. `?` binds:
/// queue, created_at, id.
macro_rules! line_up_to {
    () => {
        "SELECT COUNT(*) FROM interactions o WHERE o.queue = ? AND o.status IN ('open', 'bot') \
         AND (o.created_at, o.id) <= (?, ?)"
    };
}

/// [`line_up_to`]'s rule for row `i` (single-row reads): its position, NULL when it is not
/// waiting.
macro_rules! position_of_i {
    () => {
        "CASE WHEN i.status IN ('open', 'bot') THEN (SELECT COUNT(*) FROM interactions o \
         WHERE o.queue = i.queue AND o.status IN ('open', 'bot') \
         AND (o.created_at, o.id) <= (i.created_at, i.id)) END"
    };
}

/// The interaction columns with the position computed for this one row.
macro_rules! cols {
    () => {
        concat!(base_cols!(), position_of_i!(), " AS position")
    };
}

mod writer;

const BROADCAST_CAPACITY: usize = 1024;

/// Most writes one transaction takes from the queue.
const MAX_BATCH: usize = 256;

/// How long a reader waits for a pooled connection, and for a lock another process holds.
const READ_WAIT: Duration = Duration::from_secs(3);
const READ_BUSY: Duration = Duration::from_secs(1);

/// How long each half of `/healthz`'s check (a read, a write) may take.
const HEALTH_WAIT: Duration = Duration::from_secs(2);

/// How long one pruning chunk may wait for the writer.
const PRUNE_WAIT: Duration = Duration::from_secs(30);

/// Event-log rows one pruning transaction deletes at most (a few milliseconds of the
/// writer's time, so calls' writes are not held up).
const PRUNE_CHUNK: i64 = 5_000;

/// Most interactions the writer remembers (closed ones are forgotten at once).
const CACHE_MAX: usize = 20_000;

/// Rows per multi-row INSERT at most (6 bound values each, far below SQLite's variable
/// limit). The writer keeps one prepared statement per row count, so none is parsed twice.
const ROWS_PER_INSERT: usize = 32;

/// The SQLite store. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
    jobs: mpsc::UnboundedSender<Msg>,
    events: broadcast::Sender<Arc<StoredEvent>>,
    durability: Arc<Durability>,
    /// Presence and offer claims: this process's alone.
    local: Local,
    /// The temporary file standing in for `sqlite::memory:`.
    _temporary: Option<TemporaryFile>,
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `url` (`sqlite://data/hammond.db`,
    /// `sqlite::memory:`), runs the embedded migrations and starts the writer thread. Call once
    /// at start, inside a tokio runtime (the pool's connections are tasks).
    pub async fn open(url: &str) -> Result<Self, Error> {
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        // The writer has a connection of its own, and a `:memory:` database is private to one
        // connection: tests get a temporary file instead, which nothing needs to sync.
        let temporary = in_memory.then(TemporaryFile::new);
        let mut opts = match &temporary {
            Some(t) => SqliteConnectOptions::new().filename(&t.0),
            None => SqliteConnectOptions::from_str(url)?,
        };
        opts = opts
            .foreign_keys(true)
            .synchronous(SqliteSynchronous::Normal)
            // Readers wait for a lock only while another process checkpoints or recovers.
            .busy_timeout(READ_BUSY)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal);
        let path = opts.get_filename().to_path_buf();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| Error::Io {
                path: dir.display().to_string(),
                source,
            })?;
        }
        let wal = temporary.is_none().then(|| {
            let mut w = path.clone().into_os_string();
            w.push("-wal");
            PathBuf::from(w)
        });
        // Readers only: the writer has its own connection.
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(READ_WAIT)
            .connect_with(opts)
            .await?;
        migrator().run(&pool).await?;
        let (events, _) = broadcast::channel(BROADCAST_CAPACITY);
        let durability = Arc::new(Durability {
            wal,
            committed: AtomicU64::new(0),
            synced: AtomicU64::new(0),
            lock: Mutex::new(()),
        });
        let (jobs, rx) = mpsc::unbounded_channel();
        Writer::open(&path, events.clone(), durability.clone())?
            .spawn(rx)
            .map_err(|source| Error::Io {
                path: path.display().to_string(),
                source,
            })?;
        Ok(Self {
            pool,
            jobs,
            events,
            durability,
            local: Local::default(),
            _temporary: temporary,
        })
    }

    /// Stops the writer and closes the pool (tests reopen the same file to check recovery).
    pub async fn close(&self) {
        let (tx, rx) = oneshot::channel();
        if self.jobs.send(Msg::Stop(tx)).is_ok() {
            let _ = rx.await;
        }
        self.pool.close().await;
    }

    /// Queues one write for the writer and waits for its commit (not for a disk sync).
    async fn write(&self, op: Op) -> Result<Interaction, Error> {
        Ok(self.write_from(op).await?.interaction)
    }

    /// [`Self::write`], with the status the row had before. A write the writer has not taken
    /// within its wait ([`wait_for`]) is abandoned (never done) and fails
    /// [`Error::Unavailable`]; one it has taken is waited for (its transaction is bounded by
    /// the writer's busy timeout).
    async fn write_from(&self, op: Op) -> Result<Wrote, Error> {
        write::submit(op, |job| self.jobs.send(Msg::Write(job)).is_ok()).await
    }

    /// Sends upkeep to the writer and waits for its answer, at most `wait`.
    async fn maintain<T>(
        &self,
        wait: Duration,
        job: impl FnOnce(oneshot::Sender<Result<T, Error>>) -> Maintenance,
    ) -> Result<T, Error> {
        let (reply, rx) = oneshot::channel();
        self.jobs
            .send(Msg::Maintain(job(reply)))
            .map_err(|_| Error::NotWritten)?;
        match tokio::time::timeout(wait, rx).await {
            Ok(r) => r.map_err(|_| Error::NotWritten)?,
            Err(_) => Err(Error::Unavailable(format!(
                "the store did not answer within {wait:?}"
            ))),
        }
    }

    async fn apply_inner(
        &self,
        id: InteractionId,
        event: Event,
        now: Timestamp,
        accept: bool,
    ) -> Result<Interaction, Error> {
        // Promises: a confirmed callback, an accept that dials. Synced before we return.
        let durable = accept || matches!(event, Event::CallbackRequested { .. });
        let i = self
            .write(Op::Apply {
                id,
                event,
                now,
                accept,
            })
            .await?;
        if durable {
            self.durability.sync().await?;
        }
        Ok(i)
    }

    async fn get_inner(&self, id: InteractionId) -> Result<Detail, Error> {
        let row = sqlx::query(concat!(
            "SELECT ",
            cols!(),
            " FROM interactions i WHERE i.id = ?"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(Error::NotFound(id))?;
        let listed = row_to_listed(&row)?;
        let rows = sqlx::query(
            "SELECT at, kind, text, data FROM feed WHERE interaction_id = ? ORDER BY id",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        let feed = rows
            .iter()
            .map(|r| {
                let data: String = r.try_get("data")?;
                let data = match serde_json::from_str(&data) {
                    Ok(serde_json::Value::Object(m)) => m,
                    _ => {
                        return Err(Error::Corrupt {
                            column: "feed.data",
                            value: data,
                        });
                    }
                };
                Ok(FeedEntry {
                    at: ts(r.try_get("at")?, "feed.at")?,
                    kind: r.try_get("kind")?,
                    text: r.try_get("text")?,
                    data,
                })
            })
            .collect::<Result<_, Error>>()?;
        Ok(Detail { listed, feed })
    }

    async fn list_inner(&self, q: ListQuery) -> Result<Page, Error> {
        // Positions are filled in afterwards for the whole page from one ordered index scan
        // (see `page_positions`), not by a COUNT per row.
        let mut sql = String::from(concat!(
            "SELECT ",
            base_cols!(),
            "NULL AS position FROM interactions i WHERE 1 = 1"
        ));
        if q.status.is_some() {
            sql.push_str(" AND i.status = ?");
        }
        if q.sub_type.is_some() {
            sql.push_str(" AND i.sub_type = ?");
        }
        if let Some(queues) = &q.queues {
            if queues.is_empty() {
                return Ok(Page {
                    items: Vec::new(),
                    next_cursor: None,
                });
            }
            sql.push_str(" AND i.queue IN (");
            sql.push_str(&vec!["?"; queues.len()].join(", "));
            sql.push(')');
        }
        if q.cursor.is_some() {
            sql.push_str(" AND (i.created_at > ? OR (i.created_at = ? AND i.id > ?))");
        }
        sql.push_str(" ORDER BY i.created_at, i.id LIMIT ?");
        let limit = q.limit.clamp(1, MAX_PAGE);
        let mut query = sqlx::query(AssertSqlSafe(sql));
        if let Some(s) = q.status {
            query = query.bind(s.as_str());
        }
        if let Some(s) = q.sub_type {
            query = query.bind(s.as_str());
        }
        for queue in q.queues.iter().flatten() {
            query = query.bind(queue.clone());
        }
        if let Some(c) = q.cursor {
            query = query.bind(c.created_us).bind(c.created_us).bind(c.id);
        }
        // One extra row tells whether another page exists.
        let rows = query
            .bind(i64::from(limit) + 1)
            .fetch_all(&self.pool)
            .await?;
        let mut items = rows
            .iter()
            .map(row_to_listed)
            .collect::<Result<Vec<_>, _>>()?;
        let next_cursor = if items.len() > limit as usize {
            items.truncate(limit as usize);
            self.page_positions(&mut items).await?;
            items.last().map(|l| Cursor {
                created_us: us(l.interaction.created_at),
                id: l.interaction.id,
            })
        } else {
            self.page_positions(&mut items).await?;
            None
        };
        Ok(Page { items, next_cursor })
    }

    /// Fill in the waiting rows' places in their queues' lines ([`line_up_to`]'s rule): one
    /// scan of the waiting interactions of the page's queues (the `(queue, status, created_at,
    /// id)` index), counted here in line order. Linear in the waiting interactions, whatever
    /// the page size or the history.
    async fn page_positions(&self, items: &mut [Listed]) -> Result<(), Error> {
        let mut queues: Vec<&str> = items
            .iter()
            .filter(|l| l.interaction.status.is_waiting())
            .map(|l| l.interaction.queue.as_str())
            .collect();
        queues.sort_unstable();
        queues.dedup();
        if queues.is_empty() {
            return Ok(());
        }
        let sql = format!(
            "SELECT id, queue FROM interactions WHERE status IN ('open', 'bot') AND queue IN ({}) \
             ORDER BY queue, created_at, id",
            vec!["?"; queues.len()].join(", ")
        );
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for q in &queues {
            query = query.bind((*q).to_owned());
        }
        let rows = query.fetch_all(&self.pool).await?;
        let mut place: std::collections::HashMap<i64, u32> = std::collections::HashMap::new();
        let (mut current, mut n) = (String::new(), 0u32);
        for r in &rows {
            let (id, queue): (i64, String) = (r.try_get("id")?, r.try_get("queue")?);
            if queue != current {
                current = queue;
                n = 0;
            }
            n += 1;
            place.insert(id, n);
        }
        for l in items.iter_mut() {
            l.position = place.get(&l.interaction.id).copied();
        }
        Ok(())
    }

    /// The first interaction `sql` selects, binding `text` then `int` (when given).
    async fn one(
        &self,
        sql: &'static str,
        text: &[&str],
        int: Option<i64>,
    ) -> Result<Option<Interaction>, Error> {
        let mut query = sqlx::query(sql);
        for t in text {
            query = query.bind((*t).to_owned());
        }
        if let Some(i) = int {
            query = query.bind(i);
        }
        let row = query.fetch_optional(&self.pool).await?;
        row.as_ref()
            .map(|r| row_to_interaction(r).map(|(i, _)| i))
            .transpose()
    }

    async fn recover_inner(
        &self,
        now: Timestamp,
        retry: &RetryRules,
    ) -> Result<Vec<Interaction>, Error> {
        let engaged: Vec<(i64, String)> = sqlx::query_as(
            "SELECT id, queue FROM interactions WHERE status IN ('bot', 'connected') \
             OR (status = 'open' AND sub_type = 'inbound') ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut settled = Vec::with_capacity(engaged.len());
        for (id, queue) in engaged {
            let (max_attempts, retry_after) = retry(&queue);
            let event = Event::Recovered {
                max_attempts,
                retry_after,
                lost_instance: None,
            };
            // One that cannot be settled must not keep the others engaged.
            match self.apply_inner(id, event, now, false).await {
                Ok(i) => settled.push(i),
                Err(
                    e @ (Error::Sqlite(_)
                    | Error::Db(_)
                    | Error::NotWritten
                    | Error::Unavailable(_)),
                ) => {
                    return Err(e);
                }
                Err(e) => tracing::warn!(interaction.id = id, error = %e, "not recovered"),
            }
        }
        Ok(settled)
    }
}

impl InteractionStore for SqliteStore {
    fn create(&self, new: Interaction) -> StoreFuture<'_, Interaction> {
        Box::pin(self.write(Op::Create(new)))
    }

    fn get(&self, id: InteractionId) -> StoreFuture<'_, Detail> {
        Box::pin(self.get_inner(id))
    }

    fn list(&self, q: ListQuery) -> StoreFuture<'_, Page> {
        Box::pin(self.list_inner(q))
    }

    fn apply(
        &self,
        id: InteractionId,
        event: Event,
        now: Timestamp,
    ) -> StoreFuture<'_, Interaction> {
        Box::pin(self.apply_inner(id, event, now, false))
    }

    fn position(&self, id: InteractionId) -> StoreFuture<'_, Option<u32>> {
        Box::pin(async move {
            let position: Option<Option<i64>> = sqlx::query_scalar(concat!(
                "SELECT ",
                position_of_i!(),
                " FROM interactions i WHERE i.id = ?"
            ))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
            let position = position.ok_or(Error::NotFound(id))?;
            Ok(position.and_then(|p| u32::try_from(p).ok()))
        })
    }

    fn accept(
        &self,
        id: InteractionId,
        agent: &str,
        now: Timestamp,
    ) -> StoreFuture<'_, Interaction> {
        let event = Event::Accepted {
            agent: agent.to_owned(),
        };
        Box::pin(self.apply_inner(id, event, now, true))
    }

    fn accept_committed(
        &self,
        id: InteractionId,
        agent: &str,
        now: Timestamp,
    ) -> StoreFuture<'_, (Interaction, Synced)> {
        let event = Event::Accepted {
            agent: agent.to_owned(),
        };
        Box::pin(async move {
            let i = self
                .write(Op::Apply {
                    id,
                    event,
                    now,
                    accept: true,
                })
                .await?;
            let d = self.durability.clone();
            let synced: Synced = Box::pin(async move { d.sync().await });
            Ok((i, synced))
        })
    }

    fn close_by(
        &self,
        id: InteractionId,
        agent: &str,
        reason: Option<CloseReason>,
        disposition: Option<String>,
        now: Timestamp,
    ) -> StoreFuture<'_, Closed> {
        let agent = agent.to_owned();
        Box::pin(async move {
            let w = self
                .write_from(Op::Close {
                    id,
                    agent,
                    reason,
                    disposition,
                    now,
                })
                .await?;
            Ok(Closed {
                interaction: w.interaction,
                from: w.from,
            })
        })
    }

    fn book_callback(
        &self,
        id: InteractionId,
        booking: Booking,
        now: Timestamp,
    ) -> StoreFuture<'_, Interaction> {
        Box::pin(async move {
            let i = self.write(Op::Book { id, booking, now }).await?;
            // A promise: the caller hears it confirmed next.
            self.durability.sync().await?;
            Ok(i)
        })
    }

    fn create_callback(&self, new: NewCallback) -> StoreFuture<'_, CreatedCallback> {
        Box::pin(async move {
            match self.write(Op::CreateCallback(new)).await {
                Ok(i) => {
                    // A promise: the requester is told it is booked.
                    self.durability.sync().await?;
                    Ok(CreatedCallback {
                        interaction: i,
                        replayed: false,
                    })
                }
                Err(Error::Replayed { id }) => Ok(CreatedCallback {
                    interaction: self.get_inner(id).await?.listed.interaction,
                    replayed: true,
                }),
                Err(e) => Err(e),
            }
        })
    }

    fn next_due(&self, queue: &str, now: Timestamp) -> StoreFuture<'_, Option<Interaction>> {
        let queue = queue.to_owned();
        Box::pin(async move {
            self.one(
                concat!(
                    "SELECT ",
                    cols!(),
                    " FROM interactions i WHERE i.queue = ? AND i.status = 'open' \
                     AND (i.callback_not_before IS NULL OR i.callback_not_before <= ?) \
                     ORDER BY i.created_at, i.id LIMIT 1"
                ),
                &[&queue],
                Some(us(now)),
            )
            .await
        })
    }

    fn events_since(&self, after: i64, limit: u32) -> StoreFuture<'_, Vec<StoredEvent>> {
        Box::pin(async move {
            let rows = sqlx::query(
                "SELECT id, interaction_id, queue, at, kind, data FROM events WHERE id > ? ORDER BY id LIMIT ?",
            )
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
            rows.iter()
                .map(|r| {
                    let data: String = r.try_get("data")?;
                    if serde_json::from_str::<serde::de::IgnoredAny>(&data).is_err() {
                        return Err(Error::Corrupt {
                            column: "events.data",
                            value: data,
                        });
                    }
                    Ok(StoredEvent {
                        id: r.try_get("id")?,
                        interaction_id: r.try_get("interaction_id")?,
                        queue: r.try_get("queue")?,
                        at: ts(r.try_get("at")?, "events.at")?,
                        kind: r.try_get("kind")?,
                        data,
                    })
                })
                .collect()
        })
    }

    fn event_bounds(&self) -> StoreFuture<'_, Option<(i64, i64)>> {
        Box::pin(async move {
            let (oldest, newest): (Option<i64>, Option<i64>) =
                sqlx::query_as("SELECT MIN(id), MAX(id) FROM events")
                    .fetch_one(&self.pool)
                    .await?;
            Ok(oldest.zip(newest))
        })
    }

    fn prune_events(&self, before: Timestamp) -> StoreFuture<'_, u64> {
        Box::pin(async move {
            let Some((oldest, newest)) = self.event_bounds().await? else {
                return Ok(0);
            };
            // The first row to keep: events are appended in time order, so one scan from the
            // oldest finds it (what comes after the first kept row stays, whatever its time).
            let keep: Option<i64> =
                sqlx::query_scalar("SELECT id FROM events WHERE at >= ? ORDER BY id LIMIT 1")
                    .bind(us(before))
                    .fetch_optional(&self.pool)
                    .await?;
            let keep = keep.unwrap_or(newest).min(newest);
            let (mut from, mut gone) = (oldest, 0);
            while from < keep {
                let below = from.saturating_add(PRUNE_CHUNK).min(keep);
                gone += self
                    .maintain(PRUNE_WAIT, |reply| Maintenance::DeleteEvents {
                        below,
                        reply,
                    })
                    .await?;
                from = below;
            }
            Ok(gone)
        })
    }

    fn subscribe(&self) -> broadcast::Receiver<Arc<StoredEvent>> {
        self.events.subscribe()
    }

    fn recover<'a>(
        &'a self,
        now: Timestamp,
        retry: &'a RetryRules,
    ) -> StoreFuture<'a, Vec<Interaction>> {
        Box::pin(self.recover_inner(now, retry))
    }

    fn renew_lease(&self, _ttl: std::time::Duration) -> StoreFuture<'_, bool> {
        Box::pin(async { Ok(true) })
    }

    fn settle_lost_instances<'a>(
        &'a self,
        _now: Timestamp,
        _retry: &'a RetryRules,
    ) -> StoreFuture<'a, Vec<(String, Interaction)>> {
        Box::pin(async { Ok(Vec::new()) })
    }

    fn counts(&self) -> StoreFuture<'_, Vec<(Status, SubType, u64)>> {
        Box::pin(async move {
            let rows = sqlx::query("SELECT status, sub_type, COUNT(*) AS n FROM interactions GROUP BY status, sub_type")
                .fetch_all(&self.pool)
                .await?;
            rows.iter()
                .map(|r| {
                    let n: i64 = r.try_get("n")?;
                    Ok((
                        parse(r, "status", Status::parse)?,
                        parse(r, "sub_type", SubType::parse)?,
                        u64::try_from(n).unwrap_or(0),
                    ))
                })
                .collect()
        })
    }

    fn ping(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let read =
                sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM interactions WHERE id = 0")
                    .fetch_one(&self.pool);
            match tokio::time::timeout(HEALTH_WAIT, read).await {
                Ok(r) => r?,
                Err(_) => {
                    return Err(Error::Unavailable(format!(
                        "a read took longer than {HEALTH_WAIT:?}"
                    )));
                }
            };
            let at = us(crate::clock::wall());
            self.maintain(HEALTH_WAIT, |reply| Maintenance::Heartbeat { at, reply })
                .await
        })
    }

    fn claim_offer(&self, claim: OfferClaim, now: Timestamp) -> StoreFuture<'_, bool> {
        Box::pin(async move { Ok(self.local.claim(&claim, now)) })
    }

    fn release_offer(&self, claim: OfferClaim) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            self.local.release(&claim);
            Ok(())
        })
    }

    fn set_presence(
        &self,
        agent: &str,
        presence: Presence,
        _now: Timestamp,
    ) -> StoreFuture<'_, ()> {
        self.local.set_presence(agent, presence);
        Box::pin(async { Ok(()) })
    }

    fn presences(&self) -> StoreFuture<'_, Vec<(String, Presence)>> {
        Box::pin(async move { Ok(self.local.presences()) })
    }

    fn report(&self, q: ReportQuery) -> StoreFuture<'_, Vec<ReportRow>> {
        Box::pin(async move {
            if q.queues.is_empty() {
                return Ok(Vec::new());
            }
            let sql = report::sql(q.queues.len(), q.after.is_some(), || "?".to_owned());
            let mut query = sqlx::query(AssertSqlSafe(sql));
            for queue in &q.queues {
                query = query.bind(queue.clone());
            }
            for v in report::binds(&q) {
                query = query.bind(v);
            }
            let rows = query.fetch_all(&self.pool).await?;
            rows.iter().map(report::row).collect()
        })
    }

    fn hold_webhook(
        &self,
        _webhook: &str,
        _until: Timestamp,
        _now: Timestamp,
    ) -> StoreFuture<'_, bool> {
        // One process: nobody else delivers.
        Box::pin(async { Ok(true) })
    }

    fn webhook_cursor(&self, webhook: &str) -> StoreFuture<'_, Option<i64>> {
        let webhook = webhook.to_owned();
        Box::pin(async move {
            Ok(
                sqlx::query_scalar("SELECT last_event FROM webhook_cursors WHERE webhook = ?")
                    .bind(webhook)
                    .fetch_optional(&self.pool)
                    .await?,
            )
        })
    }

    fn set_webhook_cursor(&self, webhook: &str, last: i64) -> StoreFuture<'_, ()> {
        let webhook = webhook.to_owned();
        Box::pin(async move {
            let at = us(crate::clock::wall());
            self.maintain(HEALTH_WAIT, |reply| Maintenance::WebhookCursor {
                webhook,
                last,
                at,
                reply,
            })
            .await
        })
    }

    fn subscribe_presence(&self) -> broadcast::Receiver<(String, Presence)> {
        self.local.subscribe()
    }
}

impl Columns for SqliteRow {
    fn int(&self, column: &'static str) -> Result<Option<i64>, Error> {
        Ok(self.try_get(column)?)
    }
    fn text(&self, column: &'static str) -> Result<Option<String>, Error> {
        Ok(self.try_get(column)?)
    }
}

impl Columns for rusqlite::Row<'_> {
    fn int(&self, column: &'static str) -> Result<Option<i64>, Error> {
        Ok(self.get(column)?)
    }
    fn text(&self, column: &'static str) -> Result<Option<String>, Error> {
        Ok(self.get(column)?)
    }
}

fn row_to_listed(r: &SqliteRow) -> Result<Listed, Error> {
    let (interaction, _) = row_to_interaction(r)?;
    let position = r.int("position")?;
    Ok(Listed {
        interaction,
        position: position.and_then(|p| u32::try_from(p).ok()),
    })
}

/// A private database file in the temporary directory, removed (with its WAL) on drop.
#[derive(Debug)]
struct TemporaryFile(PathBuf);

impl TemporaryFile {
    fn new() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Self(std::env::temp_dir().join(format!("hammond-memory-{}-{n}.db", std::process::id())))
    }
}

impl Drop for TemporaryFile {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let mut p = self.0.clone().into_os_string();
            p.push(suffix);
            let _ = std::fs::remove_file(p);
        }
    }
}

#[cfg(test)]
mod tests;
