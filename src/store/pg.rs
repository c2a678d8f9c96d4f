//! The PostgreSQL backend: several Hammond instances sharing one database (`[store] url =
//! "postgres://user@host/db"`, or `?host=/socket/dir` for a unix socket).
//!
//! - **Tables** are created at start in an existing empty database (`migrations/pg/`), by one
//!   instance under `pg_advisory_lock` while any others starting at the same moment wait.
//! - **Writes** go to this instance's writer task (`writer`), which group-commits whatever
//!   writes are queued in one transaction, on a connection of its own, as the SQLite writer
//!   does. Atomicity is the database's: an accept is a conditional `UPDATE … AND status =
//!   'open'` (of concurrent accepts on any instances exactly one wins), a close a compare-and-set
//!   on the status it decided on, a booking counts its cap under an advisory lock on its queue
//!   and number and meets the pending-callback unique index.
//! - **Durability** is paid where a promise is made: the writer's connection commits with
//!   `synchronous_commit = off` (a crash of PostgreSQL may lose the last few hundred
//!   milliseconds of feed entries, as SQLite's `synchronous=NORMAL` may on a power cut), and a
//!   transaction holding an accept or a callback booking sets it `on`: the caller hears
//!   "confirmed" only once the booking is on disk.
//! - **Events** have global ids, handed out under one transaction-level advisory lock held to
//!   commit, so ids are committed in id order across instances. Each commit `NOTIFY`s the newest
//!   id only; every instance's pump (`notify`) reads the events from the table and broadcasts
//!   them in id order, catching up from the table after a lost connection. This instance's own
//!   events reach its pump straight from the writer (no read).
//! - **Presence and push-offer claims** are tables too, so every instance sees one presence
//!   per agent and an interaction is offered by one instance at a time.

mod notify;
mod writer;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{AssertSqlSafe, Connection, PgConnection, PgPool, Row};
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::{CancellationToken, DropGuard};

use super::report::{self, ReportQuery, ReportRow};
use super::row::{Columns, parse, row_to_interaction, ts, us};
use super::write::{self, Op, Wrote};
use super::{
    Booking, Closed, CreatedCallback, Cursor, Detail, Error, InteractionStore, ListQuery, Listed,
    MAX_PAGE, NewCallback, OfferClaim, Page, RetryRules, StoreFuture, StoredEvent,
};
use crate::interaction::{
    CloseReason, Event, FeedEntry, Interaction, InteractionId, Status, SubType,
};
use crate::queue::agent::Presence;

/// The migrations in `src/store/migrations/pg/`, embedded in the binary.
fn migrator() -> sqlx::migrate::Migrator {
    use std::borrow::Cow;

    use sqlx::SqlStr;
    use sqlx::migrate::{Migration, MigrationType, Migrator};
    Migrator {
        migrations: Cow::Owned(vec![
            Migration::new(
                1,
                Cow::Borrowed("schema"),
                MigrationType::Simple,
                SqlStr::from_static(include_str!("migrations/pg/0001_schema.sql")),
                false,
            ),
            Migration::new(
                2,
                Cow::Borrowed("leases"),
                MigrationType::Simple,
                SqlStr::from_static(include_str!("migrations/pg/0002_leases.sql")),
                false,
            ),
            Migration::new(
                3,
                Cow::Borrowed("webhooks"),
                MigrationType::Simple,
                SqlStr::from_static(include_str!("migrations/pg/0003_webhooks.sql")),
                false,
            ),
            Migration::new(
                4,
                Cow::Borrowed("idempotency key"),
                MigrationType::Simple,
                SqlStr::from_static(include_str!("migrations/pg/0004_idempotency_key.sql")),
                false,
            ),
            Migration::new(
                5,
                Cow::Borrowed("voicemail path"),
                MigrationType::Simple,
                SqlStr::from_static(include_str!("migrations/pg/0005_voicemail_path.sql")),
                false,
            ),
        ]),
        // `pg_advisory_lock` around the whole run: instances starting at once on an empty
        // database wait for the first one's migration instead of racing it.
        locking: true,
        ..Migrator::DEFAULT
    }
}

/// The position of row `i` (single-row reads), NULL when it is not waiting: the waiting
/// interactions (open or bot) of its queue that arrived before it (original arrival, then id),
/// plus one. The `(queue, status, created_at, id)` index keys the waiting rows apart from the
/// closed ones, so the count walks the line ahead, never the queue's history. It counts a
/// column the index lacks (`version`): a plain index scan, unlike an index-only one, marks the
/// entries of dead row versions it passes (every update of a waiting row leaves one until a
/// vacuum), so the next count skips them instead of visiting them all again.
macro_rules! position_of_i {
    () => {
        "CASE WHEN i.status IN ('open', 'bot') THEN (SELECT COUNT(o.version) FROM interactions o \
         WHERE o.queue = i.queue AND o.status IN ('open', 'bot') \
         AND (o.created_at, o.id) <= (i.created_at, i.id)) END"
    };
}

/// An interaction a call holds (bot, connected, or an inbound call still ringing): what a
/// restart or a survivor settles. The `interactions_instance` index has this predicate.
macro_rules! engaged {
    () => {
        "(status IN ('bot', 'connected') OR (status = 'open' AND sub_type = 'inbound'))"
    };
}

/// The server's clock, microseconds since the Unix epoch (leases compare on one clock).
macro_rules! server_now_us {
    () => {
        "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000000)::BIGINT"
    };
}

/// The interaction columns with the position computed for this one row.
macro_rules! cols {
    () => {
        concat!(base_cols!(), position_of_i!(), " AS position")
    };
}

const BROADCAST_CAPACITY: usize = 1024;

/// Read connections. The writer and the pump's listener have one each of their own.
const POOL_SIZE: u32 = 8;

/// How long a reader waits for a pooled connection.
const READ_WAIT: Duration = Duration::from_secs(3);

/// Any one statement's limit on the server (`statement_timeout`), so a lock another instance
/// holds, or a stalled server, fails a caller rather than holding it.
const STATEMENT_TIMEOUT: &str = "5s";

/// How long a session may sit in an open transaction before the server ends it. A writer
/// holds the event-log lock from its append to its commit, sent back to back: an instance cut
/// off from the database in between would otherwise stop every instance's writes until the
/// server noticed the dead connection (TCP keepalive: hours). Shorter than a statement's
/// limit, so a writer waiting for that lock outlasts a stuck holder.
const IDLE_IN_TRANSACTION: &str = "2s";

/// How long each half of `/healthz`'s check (a read, a write) may take.
const HEALTH_WAIT: Duration = Duration::from_secs(2);

/// Event-log rows one pruning statement deletes at most (short transactions, so writers'
/// event appends are not held up).
const PRUNE_CHUNK: i64 = 5_000;

/// The PostgreSQL store. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct PgStore {
    pool: PgPool,
    jobs: mpsc::UnboundedSender<write::WriteJob>,
    events: broadcast::Sender<Arc<StoredEvent>>,
    presence: broadcast::Sender<(String, Presence)>,
    /// This Hammond's name among those sharing the database.
    instance: String,
    /// Stops the writer and the pump when the store is dropped.
    _stop: DropGuard,
}

impl PgStore {
    /// Connects to the existing database at `url`, creates or updates its tables (one
    /// instance at a time), and starts this instance's writer and event pump, as `instance`.
    /// Call once at start, inside a tokio runtime.
    pub async fn open(url: &str, instance: &str) -> Result<Self, Error> {
        let opts = connect_options(url)?.application_name("hammond");
        migrate(&opts).await?;
        let reads = opts.clone().options([
            ("statement_timeout", STATEMENT_TIMEOUT),
            ("idle_in_transaction_session_timeout", IDLE_IN_TRANSACTION),
        ]);
        let pool = PgPoolOptions::new()
            .max_connections(POOL_SIZE)
            .acquire_timeout(READ_WAIT)
            .connect_with(reads.clone())
            .await?;
        let (events, _) = broadcast::channel(BROADCAST_CAPACITY);
        let (presence, _) = broadcast::channel(256);
        let stop = CancellationToken::new();
        let (to_pump, from_writer) = mpsc::unbounded_channel();
        let newest: Option<i64> = sqlx::query_scalar("SELECT MAX(id) FROM events")
            .fetch_one(&pool)
            .await?;
        notify::Pump::start(
            notify::Pump::new(
                pool.clone(),
                events.clone(),
                presence.clone(),
                newest.unwrap_or(0),
            ),
            reads.clone(),
            from_writer,
            stop.clone(),
        )
        .await?;
        let (jobs, rx) = mpsc::unbounded_channel();
        let writer = writer::Writer::connect(reads, instance.to_owned(), to_pump).await?;
        tokio::spawn(writer.run(rx, stop.clone()));
        Ok(Self {
            pool,
            jobs,
            events,
            presence,
            instance: instance.to_owned(),
            _stop: stop.drop_guard(),
        })
    }

    /// This Hammond's name among those sharing the database.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    async fn write(&self, op: Op) -> Result<Interaction, Error> {
        Ok(self.write_from(op).await?.interaction)
    }

    async fn write_from(&self, op: Op) -> Result<Wrote, Error> {
        write::submit(op, |job| self.jobs.send(job).is_ok()).await
    }

    async fn get_inner(&self, id: InteractionId) -> Result<Detail, Error> {
        let row = sqlx::query(concat!(
            "SELECT ",
            cols!(),
            " FROM interactions i WHERE i.id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(Error::NotFound(id))?;
        let listed = row_to_listed(&row)?;
        let rows = sqlx::query(
            "SELECT at, kind, text, data FROM feed WHERE interaction_id = $1 ORDER BY id",
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
        if q.queues.as_ref().is_some_and(Vec::is_empty) {
            return Ok(Page {
                items: Vec::new(),
                next_cursor: None,
            });
        }
        // Positions are filled in afterwards for the whole page from one ordered index scan
        // (see `page_positions`), not by a COUNT per row.
        let mut sql = String::from(concat!(
            "SELECT ",
            base_cols!(),
            "NULL::bigint AS position FROM interactions i WHERE TRUE"
        ));
        let mut n = 0;
        let mut param = || {
            n += 1;
            format!("${n}")
        };
        if let Some(status) = q.status {
            // A literal (one of the statuses' fixed names), so the planner may use the partial
            // index of rows not closed, which a parameter would hide from it.
            sql.push_str(&format!(" AND i.status = '{}'", status.as_str()));
        }
        if q.sub_type.is_some() {
            sql.push_str(&format!(" AND i.sub_type = {}", param()));
        }
        if q.queues.is_some() {
            sql.push_str(&format!(" AND i.queue = ANY({})", param()));
        }
        if q.cursor.is_some() {
            sql.push_str(&format!(
                " AND (i.created_at, i.id) > ({}, {})",
                param(),
                param()
            ));
        }
        sql.push_str(&format!(" ORDER BY i.created_at, i.id LIMIT {}", param()));
        let limit = q.limit.clamp(1, MAX_PAGE);
        let mut query = sqlx::query(AssertSqlSafe(sql));
        if let Some(s) = q.sub_type {
            query = query.bind(s.as_str());
        }
        if let Some(queues) = q.queues {
            query = query.bind(queues);
        }
        if let Some(c) = q.cursor {
            query = query.bind(c.created_us).bind(c.id);
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
        let more = items.len() > limit as usize;
        items.truncate(limit as usize);
        self.page_positions(&mut items).await?;
        let next_cursor = more
            .then(|| {
                items.last().map(|l| Cursor {
                    created_us: us(l.interaction.created_at),
                    id: l.interaction.id,
                })
            })
            .flatten();
        Ok(Page { items, next_cursor })
    }

    /// Fill in the waiting rows' places in their queues' lines: one scan of the waiting
    /// interactions of the page's queues (the `(queue, status, created_at, id)` index), counted
    /// here in line order.
    async fn page_positions(&self, items: &mut [Listed]) -> Result<(), Error> {
        let mut queues: Vec<String> = items
            .iter()
            .filter(|l| l.interaction.status.is_waiting())
            .map(|l| l.interaction.queue.clone())
            .collect();
        queues.sort_unstable();
        queues.dedup();
        if queues.is_empty() {
            return Ok(());
        }
        let rows: Vec<(i64, String)> = sqlx::query_as(
            "SELECT id, queue FROM interactions WHERE status IN ('open', 'bot') \
             AND queue = ANY($1) ORDER BY queue, created_at, id",
        )
        .bind(queues)
        .fetch_all(&self.pool)
        .await?;
        let mut place = std::collections::HashMap::new();
        let (mut current, mut n) = (String::new(), 0u32);
        for (id, queue) in rows {
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

    async fn recover_inner(
        &self,
        now: Timestamp,
        retry: &RetryRules,
    ) -> Result<Vec<Interaction>, Error> {
        // Only this instance's: another instance's calls are live on it (a dead instance's
        // are settled by a survivor once its lease lapses: `settle_lost_inner`).
        let engaged: Vec<(i64, String)> = sqlx::query_as(concat!(
            "SELECT id, queue FROM interactions WHERE instance = $1 AND ",
            engaged!(),
            " ORDER BY id"
        ))
        .bind(&self.instance)
        .fetch_all(&self.pool)
        .await?;
        let engaged = engaged.into_iter().map(|(id, q)| (id, q, None)).collect();
        let settled = self.settle(engaged, now, retry).await?;
        Ok(settled.into_iter().map(|(_, i)| i).collect())
    }

    async fn renew_lease_inner(&self, ttl: Duration) -> Result<bool, Error> {
        let ttl_us = i64::try_from(ttl.as_micros()).unwrap_or(i64::MAX);
        let held: Option<bool> = sqlx::query_scalar(concat!(
            "WITH prev AS (SELECT until_us FROM instance_leases WHERE name = $1) ",
            "INSERT INTO instance_leases (name, until_us) VALUES ($1, ",
            server_now_us!(),
            " + $2) ON CONFLICT (name) DO UPDATE SET until_us = excluded.until_us ",
            "RETURNING (SELECT until_us >= ",
            server_now_us!(),
            " FROM prev)"
        ))
        .bind(&self.instance)
        .bind(ttl_us)
        .fetch_one(&self.pool)
        .await?;
        Ok(held == Some(true))
    }

    async fn settle_lost_inner(
        &self,
        now: Timestamp,
        retry: &RetryRules,
    ) -> Result<Vec<(String, Interaction)>, Error> {
        let lapsed: Vec<String> = sqlx::query_scalar(concat!(
            "DELETE FROM instance_leases WHERE until_us < ",
            server_now_us!(),
            " RETURNING name"
        ))
        .fetch_all(&self.pool)
        .await?;
        for name in &lapsed {
            tracing::warn!(lost = %name, "an instance's lease lapsed: settling its interactions");
        }
        // Engaged on an instance that holds no lease: its lease lapsed (now or earlier, when a
        // survivor that forgot it died before it had settled them all).
        let orphans: Vec<(i64, String, String)> = sqlx::query_as(concat!(
            "SELECT id, queue, instance FROM interactions i WHERE instance <> $1 AND ",
            engaged!(),
            " AND NOT EXISTS (SELECT 1 FROM instance_leases l WHERE l.name = i.instance) ",
            "ORDER BY id"
        ))
        .bind(&self.instance)
        .fetch_all(&self.pool)
        .await?;
        let orphans = orphans
            .into_iter()
            .map(|(id, q, name)| (id, q, Some(name)))
            .collect();
        self.settle(orphans, now, retry).await
    }

    /// Settles each `(id, queue, lost instance)` as a crash's (`Event::Recovered`). One that
    /// cannot be settled must not keep the others engaged; one another instance settled first
    /// is no longer engaged and is refused, quietly.
    async fn settle(
        &self,
        engaged: Vec<(i64, String, Option<String>)>,
        now: Timestamp,
        retry: &RetryRules,
    ) -> Result<Vec<(String, Interaction)>, Error> {
        let mut settled = Vec::with_capacity(engaged.len());
        for (id, queue, lost_instance) in engaged {
            let (max_attempts, retry_after) = retry(&queue);
            let event = Event::Recovered {
                max_attempts,
                retry_after,
                lost_instance: lost_instance.clone(),
            };
            let op = Op::Apply {
                id,
                event,
                now,
                accept: false,
            };
            match self.write(op).await {
                Ok(i) => settled.push((lost_instance.unwrap_or_default(), i)),
                Err(e) if e.is_unavailable() || matches!(e, Error::Db(_)) => return Err(e),
                Err(e @ (Error::Lifecycle { .. } | Error::Conflict { .. })) => {
                    tracing::debug!(interaction.id = id, error = %e, "settled elsewhere")
                }
                Err(e) => tracing::warn!(interaction.id = id, error = %e, "not recovered"),
            }
        }
        Ok(settled)
    }

    async fn ping_inner(&self) -> Result<(), Error> {
        let within = |what: &'static str| {
            move |_| Error::Unavailable(format!("{what} took longer than {HEALTH_WAIT:?}"))
        };
        let read = sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM interactions WHERE id = 0")
            .fetch_one(&self.pool);
        tokio::time::timeout(HEALTH_WAIT, read)
            .await
            .map_err(within("a read"))??;
        let write = sqlx::query(
            "INSERT INTO heartbeat (id, at) VALUES (1, $1) \
             ON CONFLICT (id) DO UPDATE SET at = excluded.at",
        )
        .bind(us(crate::clock::wall()))
        .execute(&self.pool);
        tokio::time::timeout(HEALTH_WAIT, write)
            .await
            .map_err(within("a write"))??;
        Ok(())
    }

    async fn claim_inner(&self, claim: OfferClaim, now: Timestamp) -> Result<bool, Error> {
        let [a, b] = claim.keys();
        let mut tx = self.pool.begin().await?;
        // A key is taken when it is free, or its claim has lapsed; both or neither.
        let taken: Vec<String> = sqlx::query_scalar(
            "INSERT INTO offer_claims (key, owner, until_us) VALUES ($1, $3, $4), ($2, $3, $4) \
             ON CONFLICT (key) DO UPDATE SET owner = excluded.owner, until_us = excluded.until_us \
             WHERE offer_claims.until_us < $5 RETURNING key",
        )
        .bind(a)
        .bind(b)
        .bind(&self.instance)
        .bind(us(claim.until))
        .bind(us(now))
        .fetch_all(&mut *tx)
        .await?;
        if taken.len() == 2 {
            tx.commit().await?;
            Ok(true)
        } else {
            tx.rollback().await?;
            Ok(false)
        }
    }
}

/// The connection options `url` names. Besides sqlx's syntax this takes libpq's
/// `postgres://user[:password]@/db?host=/socket/dir` (a user and no host: the socket is in the
/// query), which the URL parser sqlx uses refuses ("empty host").
pub fn connect_options(url: &str) -> Result<PgConnectOptions, Error> {
    let unsupported = || Error::UnsupportedUrl(url.to_owned());
    let (scheme, rest) = url.split_once("://").ok_or_else(unsupported)?;
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let Some(userinfo) = authority.strip_suffix('@') else {
        return Ok(PgConnectOptions::from_str(url)?);
    };
    let mut opts = PgConnectOptions::from_str(&format!("{scheme}://{tail}"))?;
    let decode = |s: &str| percent_decode(s).ok_or_else(unsupported);
    let (user, password) = match userinfo.split_once(':') {
        Some((u, p)) => (u, Some(p)),
        None => (userinfo, None),
    };
    if !user.is_empty() {
        opts = opts.username(&decode(user)?);
    }
    if let Some(p) = password {
        opts = opts.password(&decode(p)?);
    }
    Ok(opts)
}

/// `%XX` escapes decoded (a URL's user and password); `None` if malformed or not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hex = [bytes.next()?, bytes.next()?];
            out.push(u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?);
        } else {
            out.push(b);
        }
    }
    String::from_utf8(out).ok()
}

/// Creates or updates the tables on a connection of its own, under the migrator's
/// `pg_advisory_lock` (held for the whole run, released with the connection whatever
/// happens): instances starting at the same moment wait for the first.
async fn migrate(opts: &PgConnectOptions) -> Result<(), Error> {
    let mut conn = PgConnection::connect_with(opts).await?;
    // `run_direct`: `run(&mut conn)` makes this future not `Send` for every lifetime (sqlx's
    // "`Acquire` is not general enough").
    let r = migrator().run_direct(None, &mut conn, false).await;
    let _ = conn.close().await;
    Ok(r?)
}

impl InteractionStore for PgStore {
    fn create(&self, new: Interaction) -> StoreFuture<'_, Interaction> {
        Box::pin(self.write(Op::Create(new)))
    }

    fn get(&self, id: InteractionId) -> StoreFuture<'_, Detail> {
        Box::pin(self.get_inner(id))
    }

    fn list(&self, q: ListQuery) -> StoreFuture<'_, Page> {
        Box::pin(self.list_inner(q))
    }

    fn position(&self, id: InteractionId) -> StoreFuture<'_, Option<u32>> {
        Box::pin(async move {
            let position: Option<Option<i64>> = sqlx::query_scalar(concat!(
                "SELECT ",
                position_of_i!(),
                " FROM interactions i WHERE i.id = $1"
            ))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
            let position = position.ok_or(Error::NotFound(id))?;
            Ok(position.and_then(|p| u32::try_from(p).ok()))
        })
    }

    fn apply(
        &self,
        id: InteractionId,
        event: Event,
        now: Timestamp,
    ) -> StoreFuture<'_, Interaction> {
        Box::pin(self.write(Op::Apply {
            id,
            event,
            now,
            accept: false,
        }))
    }

    /// Committed with `synchronous_commit = on`: durable when it returns (the trait's
    /// `accept_committed` default, which waits for this, is right for this backend).
    fn accept(
        &self,
        id: InteractionId,
        agent: &str,
        now: Timestamp,
    ) -> StoreFuture<'_, Interaction> {
        let event = Event::Accepted {
            agent: agent.to_owned(),
        };
        Box::pin(self.write(Op::Apply {
            id,
            event,
            now,
            accept: true,
        }))
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

    /// Committed with `synchronous_commit = on` before it returns.
    fn book_callback(
        &self,
        id: InteractionId,
        booking: Booking,
        now: Timestamp,
    ) -> StoreFuture<'_, Interaction> {
        Box::pin(self.write(Op::Book { id, booking, now }))
    }

    fn create_callback(&self, new: NewCallback) -> StoreFuture<'_, CreatedCallback> {
        Box::pin(async move {
            match self.write(Op::CreateCallback(new)).await {
                Ok(i) => Ok(CreatedCallback {
                    interaction: i,
                    replayed: false,
                }),
                Err(Error::Replayed { id }) => Ok(CreatedCallback {
                    interaction: self.get(id).await?.listed.interaction,
                    replayed: true,
                }),
                Err(e) => Err(e),
            }
        })
    }

    fn next_due(&self, queue: &str, now: Timestamp) -> StoreFuture<'_, Option<Interaction>> {
        let queue = queue.to_owned();
        Box::pin(async move {
            let row = sqlx::query(concat!(
                "SELECT ",
                cols!(),
                " FROM interactions i WHERE i.queue = $1 AND i.status = 'open' \
                 AND (i.callback_not_before IS NULL OR i.callback_not_before <= $2) \
                 ORDER BY i.created_at, i.id LIMIT 1"
            ))
            .bind(queue)
            .bind(us(now))
            .fetch_optional(&self.pool)
            .await?;
            row.as_ref()
                .map(|r| row_to_interaction(r).map(|(i, _)| i))
                .transpose()
        })
    }

    fn events_since(&self, after: i64, limit: u32) -> StoreFuture<'_, Vec<StoredEvent>> {
        Box::pin(events_since(&self.pool, after, limit))
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
            // The first row to keep: events are appended in time order, so what comes after
            // the first kept row stays, whatever its time.
            let keep: Option<i64> = sqlx::query_scalar("SELECT MIN(id) FROM events WHERE at >= $1")
                .bind(us(before))
                .fetch_one(&self.pool)
                .await?;
            let keep = keep.unwrap_or(newest).min(newest);
            let (mut from, mut gone) = (oldest, 0);
            while from < keep {
                let below = from.saturating_add(PRUNE_CHUNK).min(keep);
                // Never the newest row: event ids must never be handed out again.
                gone += sqlx::query(
                    "DELETE FROM events WHERE id < $1 AND id < (SELECT MAX(id) FROM events)",
                )
                .bind(below)
                .execute(&self.pool)
                .await?
                .rows_affected();
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

    fn renew_lease(&self, ttl: Duration) -> StoreFuture<'_, bool> {
        Box::pin(self.renew_lease_inner(ttl))
    }

    fn settle_lost_instances<'a>(
        &'a self,
        now: Timestamp,
        retry: &'a RetryRules,
    ) -> StoreFuture<'a, Vec<(String, Interaction)>> {
        Box::pin(self.settle_lost_inner(now, retry))
    }

    fn counts(&self) -> StoreFuture<'_, Vec<(Status, SubType, u64)>> {
        Box::pin(async move {
            let rows = sqlx::query(
                "SELECT status, sub_type, COUNT(*) AS n FROM interactions GROUP BY status, sub_type",
            )
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
        Box::pin(self.ping_inner())
    }

    fn claim_offer(&self, claim: OfferClaim, now: Timestamp) -> StoreFuture<'_, bool> {
        Box::pin(self.claim_inner(claim, now))
    }

    fn release_offer(&self, claim: OfferClaim) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            // Only this instance's hold of this claim (a lapsed one may be another's by now).
            sqlx::query(
                "DELETE FROM offer_claims WHERE key = ANY($1) AND owner = $2 AND until_us = $3",
            )
            .bind(claim.keys().to_vec())
            .bind(&self.instance)
            .bind(us(claim.until))
            .execute(&self.pool)
            .await?;
            Ok(())
        })
    }

    fn set_presence(&self, agent: &str, presence: Presence, now: Timestamp) -> StoreFuture<'_, ()> {
        let agent = agent.to_owned();
        Box::pin(async move {
            // The notification names the agent only; every pump reads the row (the newest
            // presence wins, whatever order notifications arrive in).
            sqlx::query(
                "WITH up AS (INSERT INTO agent_presence (agent, status, updated_at) \
                 VALUES ($1, $2, $3) ON CONFLICT (agent) DO UPDATE \
                 SET status = excluded.status, updated_at = excluded.updated_at) \
                 SELECT pg_notify($4, $1)::text",
            )
            .bind(&agent)
            .bind(presence_str(presence))
            .bind(us(now))
            .bind(notify::PRESENCE_CHANNEL)
            .execute(&self.pool)
            .await?;
            Ok(())
        })
    }

    fn presences(&self) -> StoreFuture<'_, Vec<(String, Presence)>> {
        Box::pin(presences(&self.pool))
    }

    fn report(&self, q: ReportQuery) -> StoreFuture<'_, Vec<ReportRow>> {
        Box::pin(async move {
            if q.queues.is_empty() {
                return Ok(Vec::new());
            }
            let mut n = 0;
            let sql = report::sql(q.queues.len(), q.after.is_some(), || {
                n += 1;
                format!("${n}")
            });
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
        webhook: &str,
        until: Timestamp,
        now: Timestamp,
    ) -> StoreFuture<'_, bool> {
        let key = format!("webhook:{webhook}");
        Box::pin(async move {
            // A hold is a claim row like a push offer's: taken when free or lapsed, renewed by
            // its owner, never taken from a live owner.
            let held: Option<String> = sqlx::query_scalar(
                "INSERT INTO offer_claims (key, owner, until_us) VALUES ($1, $2, $3) \
                 ON CONFLICT (key) DO UPDATE SET owner = excluded.owner, until_us = excluded.until_us \
                 WHERE offer_claims.owner = excluded.owner OR offer_claims.until_us <= $4 \
                 RETURNING owner",
            )
            .bind(key)
            .bind(&self.instance)
            .bind(us(until))
            .bind(us(now))
            .fetch_optional(&self.pool)
            .await?;
            Ok(held.is_some())
        })
    }

    fn webhook_cursor(&self, webhook: &str) -> StoreFuture<'_, Option<i64>> {
        let webhook = webhook.to_owned();
        Box::pin(async move {
            Ok(
                sqlx::query_scalar("SELECT last_event FROM webhook_cursors WHERE webhook = $1")
                    .bind(webhook)
                    .fetch_optional(&self.pool)
                    .await?,
            )
        })
    }

    fn set_webhook_cursor(&self, webhook: &str, last: i64) -> StoreFuture<'_, ()> {
        let webhook = webhook.to_owned();
        Box::pin(async move {
            sqlx::query(
                "INSERT INTO webhook_cursors (webhook, last_event, updated_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (webhook) DO UPDATE \
                 SET last_event = GREATEST(webhook_cursors.last_event, excluded.last_event), \
                 updated_at = excluded.updated_at",
            )
            .bind(webhook)
            .bind(last)
            .bind(us(crate::clock::wall()))
            .execute(&self.pool)
            .await?;
            Ok(())
        })
    }

    fn subscribe_presence(&self) -> broadcast::Receiver<(String, Presence)> {
        self.presence.subscribe()
    }
}

fn presence_str(p: Presence) -> &'static str {
    match p {
        Presence::Available => "available",
        Presence::Away => "away",
    }
}

fn parse_presence(s: &str) -> Option<Presence> {
    match s {
        "available" => Some(Presence::Available),
        "away" => Some(Presence::Away),
        _ => None,
    }
}

/// Every stored presence.
async fn presences(pool: &PgPool) -> Result<Vec<(String, Presence)>, Error> {
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT agent, status FROM agent_presence ORDER BY agent")
            .fetch_all(pool)
            .await?;
    rows.into_iter()
        .map(|(agent, status)| match parse_presence(&status) {
            Some(p) => Ok((agent, p)),
            None => Err(Error::Corrupt {
                column: "agent_presence.status",
                value: status,
            }),
        })
        .collect()
}

/// Event-log rows with id greater than `after`, oldest first, at most `limit`.
async fn events_since(pool: &PgPool, after: i64, limit: u32) -> Result<Vec<StoredEvent>, Error> {
    let rows = sqlx::query(
        "SELECT id, interaction_id, queue, at, kind, data FROM events WHERE id > $1 \
         ORDER BY id LIMIT $2",
    )
    .bind(after)
    .bind(i64::from(limit))
    .fetch_all(pool)
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
}

impl Columns for PgRow {
    fn int(&self, column: &'static str) -> Result<Option<i64>, Error> {
        Ok(self.try_get(column)?)
    }
    fn text(&self, column: &'static str) -> Result<Option<String>, Error> {
        Ok(self.try_get(column)?)
    }
}

fn row_to_listed(r: &PgRow) -> Result<Listed, Error> {
    let (interaction, _) = row_to_interaction(r)?;
    let position = r.int("position")?;
    Ok(Listed {
        interaction,
        position: position.and_then(|p| u32::try_from(p).ok()),
    })
}

#[cfg(test)]
mod tests;
