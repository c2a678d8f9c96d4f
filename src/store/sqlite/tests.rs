//! The SQLite backend's own cases: its file, its upgrades, its query plan, and another process
//! holding its lock. The cases every backend passes are in `store/tests.rs`.

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::store::write::WRITE_WAIT;

fn t(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn at(min: i64) -> Timestamp {
    t("2026-03-01T10:00:00Z") + jiff::SignedDuration::from_mins(min)
}

async fn file_store(dir: &tempfile::TempDir) -> SqliteStore {
    let url = format!("sqlite://{}/data/hammond.db", dir.path().display());
    SqliteStore::open(&url).await.unwrap()
}

async fn inbound(s: &SqliteStore, queue: &str, number: &str, min: i64) -> Interaction {
    s.create(Interaction::inbound(queue, number, at(min)))
        .await
        .unwrap()
}

/// A caller in the workflow of `queue`, ready to book.
async fn in_workflow(s: &SqliteStore, queue: &str, min: i64) -> Interaction {
    let i = inbound(s, queue, "1000", min).await;
    s.apply(i.id, Event::EnteredWorkflow, at(min))
        .await
        .unwrap()
}

fn booking(number: &str, max_per_day: u32) -> Booking {
    Booking {
        number: number.into(),
        not_before: None,
        max_per_day,
        since: at(-24 * 60),
    }
}

#[tokio::test]
async fn creates_the_file_and_its_directory() {
    let dir = tempfile::tempdir().unwrap();
    let s = file_store(&dir).await;
    assert!(dir.path().join("data/hammond.db").exists());
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&s.pool)
        .await
        .unwrap();
    assert_eq!(mode, "wal");
    let sync: i64 = sqlx::query_scalar("PRAGMA synchronous")
        .fetch_one(&s.pool)
        .await
        .unwrap();
    assert_eq!(sync, 1, "NORMAL: promises are synced explicitly (sync_wal)");
    let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
        .fetch_one(&s.pool)
        .await
        .unwrap();
    assert_eq!(fk, 1);
}

/// A database from before the rule, with two pending callbacks for one number in one queue:
/// the upgrade keeps the older, closes the later (saying so on its feed), and builds the index.
#[tokio::test]
async fn the_upgrade_closes_duplicate_pending_callbacks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    {
        let opts = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true);
        let pool = SqlitePool::connect_with(opts).await.unwrap();
        let mut first = migrator();
        first.migrations = Cow::Owned(first.migrations[..1].to_vec());
        first.run(&pool).await.unwrap();
        for (id, queue, status, created) in [
            (1, "support", "open", 10),
            (2, "support", "connected", 20),
            (3, "sales", "open", 30),
            (4, "support", "closed", 5),
        ] {
            sqlx::query(
                "INSERT INTO interactions (id, queue, status, communication_type, sub_type, \
                 customer_number, created_at, updated_at, callback_number) \
                 VALUES (?, ?, ?, 'call', 'callback', '1', ?, ?, '15551234567')",
            )
            .bind(id)
            .bind(queue)
            .bind(status)
            .bind(created)
            .bind(created)
            .execute(&pool)
            .await
            .unwrap();
        }
        pool.close().await;
    }
    let s = SqliteStore::open(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let status = |id| {
        let s = &s;
        async move { s.get(id).await.unwrap() }
    };
    assert_eq!(status(1).await.listed.interaction.status, Status::Open);
    let d = status(2).await;
    assert_eq!(d.listed.interaction.status, Status::Closed);
    assert_eq!(
        d.listed.interaction.disposition.as_deref(),
        Some("duplicate")
    );
    assert_eq!(d.feed.last().unwrap().kind, "closed");
    assert_eq!(status(3).await.listed.interaction.status, Status::Open);
    let fresh = in_workflow(&s, "support", 40).await;
    assert!(matches!(
        s.book_callback(fresh.id, booking("15551234567", 0), at(40))
            .await,
        Err(Error::DuplicateCallback { .. })
    ));
}

#[test]
fn the_default_url_names_a_relative_file() {
    let opts = SqliteConnectOptions::from_str("sqlite://data/hammond.db").unwrap();
    assert_eq!(opts.get_filename(), std::path::Path::new("data/hammond.db"));
}

/// The count seeks the waiting rows in the `(queue, status, created_at, id)` index: it never
/// walks the queue's history.
#[tokio::test]
async fn the_position_count_uses_the_waiting_line_index() {
    let s = SqliteStore::open("sqlite::memory:").await.unwrap();
    let rows = sqlx::query(concat!("EXPLAIN QUERY PLAN ", line_up_to!()))
        .bind("support")
        .bind(0i64)
        .bind(0i64)
        .fetch_all(&s.pool)
        .await
        .unwrap();
    let plan: Vec<String> = rows
        .iter()
        .map(|r| r.try_get::<String, _>("detail").unwrap())
        .collect();
    let plan = plan.join("\n");
    assert!(
        plan.contains("COVERING INDEX interactions_queue_status (queue=? AND status=?"),
        "{plan}"
    );
}

/// Another connection holding the database's write lock (a backup, the sqlite3 shell) until
/// dropped: the store takes no write meanwhile, as with a full or read-only disk.
struct WriteLock {
    _held: rusqlite::Connection,
}

impl WriteLock {
    fn take(dir: &tempfile::TempDir) -> Self {
        let c = rusqlite::Connection::open(dir.path().join("data/hammond.db")).unwrap();
        c.execute_batch("BEGIN IMMEDIATE").unwrap();
        Self { _held: c }
    }
}

/// A store that refuses writes fails them fast: a batch of many writes answers within about
/// the writer's busy timeout (each write used to be retried alone after the batch failed, a
/// busy timeout of 5 s apiece: minutes), the errors say it is unavailable, `ping` (healthz)
/// fails, and once the lock goes the store works again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_refuses_writes_fails_them_fast() {
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(file_store(&dir).await);
    s.ping().await.unwrap();
    let lock = WriteLock::take(&dir);
    let t0 = crate::clock::now();
    let tasks: Vec<_> = (0..40)
        .map(|n| {
            let s = Arc::clone(&s);
            tokio::spawn(async move { s.create(Interaction::inbound("support", "1", at(n))).await })
        })
        .collect();
    for t in tasks {
        let e = t.await.unwrap().unwrap_err();
        assert!(e.is_unavailable(), "{e}");
    }
    let took = t0.elapsed();
    assert!(took < Duration::from_secs(3), "took {took:?}");
    let e = s.ping().await.unwrap_err();
    assert!(e.is_unavailable(), "{e}");
    drop(lock);
    s.ping().await.unwrap();
    inbound(&s, "support", "1", 1).await;
}

/// A write the store cannot take in time is reported failed and is then never done: a burst
/// of writes at a locked store, more than it fails before `WRITE_WAIT` passes, so the last ones
/// are given up while still queued; then the lock goes and more writes succeed. Exactly the
/// writes reported done are in the database, and every caller had its answer within the bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_reported_failed_is_never_done_later() {
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(file_store(&dir).await);
    let lock = std::thread::spawn({
        let lock = WriteLock::take(&dir);
        // A thread of its own standing for the other process, on the real clock.
        #[allow(clippy::disallowed_methods)]
        move || {
            std::thread::sleep(WRITE_WAIT + Duration::from_millis(300));
            drop(lock);
        }
    });
    let write = |n: i64| {
        let s = Arc::clone(&s);
        tokio::spawn(async move {
            let t0 = crate::clock::now();
            let r = s.create(Interaction::inbound("support", "1", at(n))).await;
            (r, t0.elapsed())
        })
    };
    let mut tasks: Vec<_> = (0..3_000).map(write).collect();
    lock.join().unwrap();
    tasks.extend((0..300).map(write));
    let (mut done, mut given_up) = (0, 0);
    for t in tasks {
        let (r, took) = t.await.unwrap();
        assert!(took < WRITE_WAIT + Duration::from_secs(1), "took {took:?}");
        match r {
            Ok(_) => done += 1,
            Err(Error::Unavailable(why)) if why.contains("not written") => given_up += 1,
            Err(e) => assert!(e.is_unavailable(), "{e}"),
        }
    }
    let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM interactions")
        .fetch_one(&s.pool)
        .await
        .unwrap();
    assert_eq!(stored, done, "given up: {given_up}");
    assert!(
        given_up > 0 && done >= 300,
        "done {done}, given up {given_up}"
    );
}
