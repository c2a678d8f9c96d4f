use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::interaction::{DialFailure, HangupBy, Note};
use crate::store::Booking;

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

/// An open callback for `number`, requested at `min`.
async fn callback(s: &SqliteStore, queue: &str, number: &str, min: i64) -> Interaction {
    let i = inbound(s, queue, number, min).await;
    s.apply(i.id, Event::EnteredWorkflow, at(min))
        .await
        .unwrap();
    s.apply(
        i.id,
        Event::CallbackRequested {
            number: number.into(),
            not_before: None,
        },
        at(min),
    )
    .await
    .unwrap();
    let end = Event::CallEnded {
        by: HangupBy::Hammond,
        had_callback: true,
        voicemail: false,
        during: None,
    };
    s.apply(i.id, end, at(min)).await.unwrap()
}

fn all() -> ListQuery {
    ListQuery {
        limit: 100,
        ..ListQuery::default()
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

#[tokio::test]
async fn crud_round_trip_with_feed() {
    let s = SqliteStore::open("sqlite::memory:").await.unwrap();
    let i = inbound(&s, "support", "+15550001", 0).await;
    assert!(i.id > 0);
    let d = s.get(i.id).await.unwrap();
    assert_eq!(d.listed.interaction, i);
    assert_eq!(d.listed.position, Some(1));
    assert_eq!(d.feed.len(), 1);
    assert_eq!(d.feed[0].kind, "created");

    let i2 = callback(&s, "support", "15551234567", 0).await;
    let d = s.get(i2.id).await.unwrap();
    assert_eq!(d.listed.interaction.sub_type, SubType::Callback);
    assert_eq!(
        d.listed.interaction.callback.as_ref().unwrap().number,
        "15551234567"
    );
    assert_eq!(
        d.listed.interaction.callback.as_ref().unwrap().requested_at,
        Some(at(0))
    );
    let kinds: Vec<_> = d.feed.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "created",
            "status_changed",
            "callback_requested",
            "sub_type_changed",
            "call_ended",
            "status_changed"
        ]
    );
    assert!(matches!(s.get(999).await, Err(Error::NotFound(999))));
    assert!(matches!(
        s.apply(999, Event::EnteredWorkflow, at(1)).await,
        Err(Error::NotFound(999))
    ));
}

#[tokio::test]
async fn refused_events_are_conflicts_or_lifecycle_errors_and_write_nothing() {
    let s = SqliteStore::open("sqlite::memory:").await.unwrap();
    let i = inbound(&s, "support", "+15550001", 0).await;
    let e = s.apply(i.id, Event::Bridged, at(1)).await.unwrap_err();
    assert!(
        matches!(
            e,
            Error::Conflict {
                status: Status::Open,
                ..
            }
        ),
        "{e}"
    );
    s.apply(i.id, Event::EnteredWorkflow, at(1)).await.unwrap();
    let e = s
        .apply(
            i.id,
            Event::CallbackRequested {
                number: "abc".into(),
                not_before: None,
            },
            at(1),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Lifecycle { .. }), "{e}");
    assert_eq!(s.get(i.id).await.unwrap().feed.len(), 2);
}

#[tokio::test]
async fn list_orders_by_arrival_with_positions_and_filters() {
    let s = SqliteStore::open("sqlite::memory:").await.unwrap();
    // Arrivals: a(0) support, b(1) sales, c(2) support, d(3) support.
    let a = inbound(&s, "support", "1001", 0).await;
    let b = inbound(&s, "sales", "1002", 1).await;
    let c = callback(&s, "support", "1003", 2).await;
    let d = inbound(&s, "support", "1004", 3).await;
    // a enters the workflow: still waiting in the line (bot), ahead of c and d.
    s.apply(a.id, Event::EnteredWorkflow, at(4)).await.unwrap();
    // A callback requested late keeps its original place: c (arrived 2) stays before d.
    let page = s.list(all()).await.unwrap();
    let got: Vec<_> = page
        .items
        .iter()
        .map(|l| (l.interaction.id, l.position))
        .collect();
    assert_eq!(
        got,
        [
            (a.id, Some(1)),
            (b.id, Some(1)),
            (c.id, Some(2)),
            (d.id, Some(3))
        ]
    );
    assert_eq!(page.next_cursor, None);

    let q = ListQuery {
        status: Some(Status::Open),
        queues: Some(vec!["support".into()]),
        ..all()
    };
    let got: Vec<_> = s
        .list(q)
        .await
        .unwrap()
        .items
        .iter()
        .map(|l| l.interaction.id)
        .collect();
    assert_eq!(got, [c.id, d.id]);
    let q = ListQuery {
        sub_type: Some(SubType::Callback),
        ..all()
    };
    let got: Vec<_> = s
        .list(q)
        .await
        .unwrap()
        .items
        .iter()
        .map(|l| l.interaction.id)
        .collect();
    assert_eq!(got, [c.id]);
    let q = ListQuery {
        queues: Some(vec![]),
        ..all()
    };
    assert!(s.list(q).await.unwrap().items.is_empty());
}

#[tokio::test]
async fn list_paginates_with_a_cursor() {
    let s = SqliteStore::open("sqlite::memory:").await.unwrap();
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(inbound(&s, "support", "1000", n).await.id);
    }
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = s
            .list(ListQuery {
                limit: 2,
                cursor,
                ..all()
            })
            .await
            .unwrap();
        seen.extend(page.items.iter().map(|l| l.interaction.id));
        match page.next_cursor {
            Some(c) => {
                assert_eq!(Cursor::decode(&c.encode()), Some(c));
                cursor = Some(c);
            }
            None => break,
        }
    }
    assert_eq!(seen, ids);
}

#[tokio::test]
async fn next_due_waits_for_not_before() {
    let s = SqliteStore::open("sqlite::memory:").await.unwrap();
    let c = callback(&s, "support", "15551234567", 0).await;
    // The callback fails once: not due until its not-before.
    s.accept(c.id, "alice", at(1)).await.unwrap();
    s.apply(c.id, Event::Dialling, at(1)).await.unwrap();
    let fail = Event::DialFailed {
        code: Some(486),
        kind: DialFailure::Busy,
        cause: None,
        max_attempts: 3,
        retry_after: Duration::from_secs(600),
    };
    s.apply(c.id, fail, at(1)).await.unwrap();
    let later = inbound(&s, "support", "1009", 2).await;
    assert_eq!(
        s.next_due("support", at(5)).await.unwrap().map(|i| i.id),
        Some(later.id)
    );
    assert_eq!(
        s.next_due("support", at(11)).await.unwrap().map(|i| i.id),
        Some(c.id)
    );
    assert_eq!(s.next_due("sales", at(11)).await.unwrap(), None);
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

/// Bookings at once for one number in one queue: exactly one wins, whichever, and the others
/// are duplicates, written nowhere. The rule is per queue; booking again for the same
/// interaction is no duplicate; a closed callback is no longer pending.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_pending_callback_per_queue_and_number_whatever_the_timing() {
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(file_store(&dir).await);
    let mut callers = Vec::new();
    for n in 0..12 {
        callers.push(in_workflow(&s, "support", n).await.id);
    }
    let tasks: Vec<_> = callers
        .iter()
        .map(|&id| {
            let s = Arc::clone(&s);
            tokio::spawn(
                async move { s.book_callback(id, booking("15551234567", 0), at(20)).await },
            )
        })
        .collect();
    let (mut won, mut duplicates) = (Vec::new(), 0);
    for t in tasks {
        match t.await.unwrap() {
            Ok(i) => won.push(i),
            Err(Error::DuplicateCallback { number, .. }) => {
                assert_eq!(number, "15551234567");
                duplicates += 1;
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!((won.len(), duplicates), (1, 11));
    let winner = &won[0];
    assert_eq!(winner.sub_type, SubType::Callback);
    for &id in &callers {
        let d = s.get(id).await.unwrap();
        let booked = d.feed.iter().any(|e| e.kind == "callback_requested");
        assert_eq!(booked, id == winner.id, "{id}");
    }
    // Booking again for the winner (the caller confirmed once more) is fine.
    s.book_callback(winner.id, booking("15551234567", 0), at(21))
        .await
        .unwrap();
    // Another queue has its own line.
    let sales = in_workflow(&s, "sales", 22).await;
    s.book_callback(sales.id, booking("15551234567", 0), at(22))
        .await
        .unwrap();
    // Through the plain lifecycle write too: the index is the rule.
    let sneaky = callers
        .iter()
        .find(|&&id| id != winner.id)
        .copied()
        .unwrap();
    let request = Event::CallbackRequested {
        number: "15551234567".into(),
        not_before: None,
    };
    assert!(matches!(
        s.apply(sneaky, request, at(23)).await,
        Err(Error::DuplicateCallback { .. })
    ));
    // Once the pending one is closed, the number may book again.
    let end = Event::Closed {
        reason: CloseReason::Completed,
        disposition: None,
    };
    s.apply(winner.id, end, at(24)).await.unwrap();
    s.book_callback(sneaky, booking("15551234567", 0), at(25))
        .await
        .unwrap();
}

/// The daily cap counts this queue's bookings of the number, in the booking's transaction.
#[tokio::test]
async fn the_daily_cap_counts_this_queue_and_number() {
    let s = SqliteStore::open("sqlite::memory:").await.unwrap();
    for n in 0..3 {
        let i = in_workflow(&s, "support", n).await;
        s.book_callback(i.id, booking("15551234567", 3), at(n))
            .await
            .unwrap();
        let end = Event::Closed {
            reason: CloseReason::Completed,
            disposition: None,
        };
        s.apply(i.id, end, at(n)).await.unwrap();
    }
    let fourth = in_workflow(&s, "support", 4).await;
    assert!(matches!(
        s.book_callback(fourth.id, booking("15551234567", 3), at(4))
            .await,
        Err(Error::CallbackLimit { max_per_day: 3, .. })
    ));
    assert_eq!(
        s.get(fourth.id).await.unwrap().listed.interaction.sub_type,
        SubType::Inbound
    );
    // Another number, another queue, or a day that starts after them: not capped.
    s.book_callback(fourth.id, booking("15557654321", 3), at(4))
        .await
        .unwrap();
    let sales = in_workflow(&s, "sales", 5).await;
    s.book_callback(sales.id, booking("15551234567", 3), at(5))
        .await
        .unwrap();
    let later = in_workflow(&s, "support", 6).await;
    let tomorrow = Booking {
        since: at(3),
        ..booking("15551234567", 3)
    };
    s.book_callback(later.id, tomorrow, at(6)).await.unwrap();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_is_atomic_under_a_race() {
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(file_store(&dir).await);
    let i = callback(&s, "support", "15551234567", 0).await;
    let mut tasks = Vec::new();
    for n in 0..16 {
        let s = Arc::clone(&s);
        tasks.push(tokio::spawn(async move {
            s.accept(i.id, &format!("agent{n}"), at(1)).await
        }));
    }
    let mut winners = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            Ok(i) => winners.push(i),
            Err(Error::Conflict {
                status: Status::Connected,
                ..
            }) => {}
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!(winners.len(), 1);
    let d = s.get(i.id).await.unwrap();
    assert_eq!(d.listed.interaction.status, Status::Connected);
    assert_eq!(
        d.listed.interaction.assigned_agent,
        winners[0].assigned_agent
    );
    assert_eq!(d.feed.iter().filter(|e| e.kind == "assigned").count(), 1);
}

#[tokio::test]
async fn recovery_after_reopening_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (bot_cb, bot_plain, dialling, bridged, open) = {
        let s = file_store(&dir).await;
        let bot_cb = inbound(&s, "support", "1001", 0).await;
        s.apply(bot_cb.id, Event::EnteredWorkflow, at(0))
            .await
            .unwrap();
        s.apply(
            bot_cb.id,
            Event::CallbackRequested {
                number: "15551234567".into(),
                not_before: None,
            },
            at(0),
        )
        .await
        .unwrap();
        let bot_plain = inbound(&s, "support", "1002", 1).await;
        s.apply(bot_plain.id, Event::EnteredWorkflow, at(1))
            .await
            .unwrap();
        let dialling = callback(&s, "support", "1003", 2).await;
        s.accept(dialling.id, "alice", at(3)).await.unwrap();
        s.apply(dialling.id, Event::Dialling, at(3)).await.unwrap();
        let bridged = inbound(&s, "support", "1004", 3).await;
        s.apply(bridged.id, Event::EnteredWorkflow, at(3))
            .await
            .unwrap();
        s.apply(
            bridged.id,
            Event::OfferedLive {
                agent: "bob".into(),
            },
            at(4),
        )
        .await
        .unwrap();
        s.apply(bridged.id, Event::Bridged, at(4)).await.unwrap();
        let open = inbound(&s, "support", "1005", 4).await;
        s.close().await;
        (bot_cb.id, bot_plain.id, dialling.id, bridged.id, open.id)
    };
    let s = file_store(&dir).await;
    // Only the interactions' own queue allows a second attempt.
    let retry = |queue: &str| {
        (
            if queue == "support" { 3 } else { 1 },
            Duration::from_secs(600),
        )
    };
    let settled = s.recover(at(10), &retry).await.unwrap();
    assert_eq!(settled.len(), 5);
    let get = |id| {
        let s = &s;
        async move { s.get(id).await.unwrap() }
    };
    let d = get(bot_cb).await;
    assert_eq!(
        (d.listed.interaction.status, d.listed.interaction.sub_type),
        (Status::Open, SubType::Callback)
    );
    assert!(d.feed.iter().any(|e| e.kind == "recovered"));
    let d = get(bot_plain).await;
    assert_eq!(
        d.listed.interaction.close_reason,
        Some(CloseReason::Abandoned)
    );
    let d = get(dialling).await;
    assert_eq!(d.listed.interaction.status, Status::Open);
    assert_eq!(d.listed.interaction.callback.as_ref().unwrap().attempts, 1);
    let d = get(bridged).await;
    assert_eq!(
        d.listed.interaction.close_reason,
        Some(CloseReason::Interrupted)
    );
    // Ringing when Hammond stopped: that caller is gone (it would be open for ever, and an
    // agent may neither accept nor close a ringing call).
    let d = get(open).await;
    assert_eq!(
        d.listed.interaction.close_reason,
        Some(CloseReason::Abandoned)
    );
    // Nothing left to settle.
    assert!(s.recover(at(11), &retry).await.unwrap().is_empty());
}

#[tokio::test]
async fn events_since_and_live_events_agree() {
    let s = SqliteStore::open("sqlite::memory:").await.unwrap();
    let mut rx = s.subscribe();
    let i = inbound(&s, "support", "1001", 0).await;
    s.apply(i.id, Event::EnteredWorkflow, at(1)).await.unwrap();
    s.apply(
        i.id,
        Event::Dtmf {
            digit: '1',
            method: crate::media::dtmf::DtmfMethod::Info,
        },
        at(1),
    )
    .await
    .unwrap();
    let stored = s.events_since(0, 100).await.unwrap();
    let kinds: Vec<_> = stored.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["created", "entered_workflow", "dtmf"]);
    assert!(stored.windows(2).all(|w| w[0].id < w[1].id));
    for e in &stored {
        assert_eq!(&*rx.recv().await.unwrap(), e);
    }
    let data = |e: &StoredEvent| serde_json::from_str::<serde_json::Value>(&e.data).unwrap();
    assert_eq!(data(&stored[1])["interaction"]["status"], "bot");
    assert_eq!(data(&stored[2])["feed"][0]["digit"], "1");
    assert_eq!(
        s.events_since(stored[1].id, 100).await.unwrap(),
        stored[2..].to_vec()
    );
    assert_eq!(
        s.events_since(stored[0].id, 1).await.unwrap(),
        stored[1..2].to_vec()
    );
}

#[tokio::test]
async fn counts_and_ping() {
    let s = SqliteStore::open("sqlite::memory:").await.unwrap();
    s.ping().await.unwrap();
    inbound(&s, "support", "1", 0).await;
    inbound(&s, "support", "2", 1).await;
    callback(&s, "support", "155512345", 2).await;
    let mut c = s.counts().await.unwrap();
    c.sort_by_key(|(s, t, _)| (s.as_str(), t.as_str()));
    assert_eq!(
        c,
        [
            (Status::Open, SubType::Callback, 1),
            (Status::Open, SubType::Inbound, 2)
        ]
    );
}

#[tokio::test]
async fn unsupported_urls_are_refused() {
    assert!(matches!(
        crate::store::open("postgres://x/y").await,
        Err(Error::UnsupportedUrl(_))
    ));
}

#[test]
fn the_default_url_names_a_relative_file() {
    let opts = SqliteConnectOptions::from_str("sqlite://data/hammond.db").unwrap();
    assert_eq!(opts.get_filename(), std::path::Path::new("data/hammond.db"));
}

/// Many calls' writes land in shared transactions: each gets its own answer (a refused one
/// fails alone), and the event log is gap-free, in commit order, the same live and replayed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_share_commits_and_fail_alone() {
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(file_store(&dir).await);
    let mut rx = s.subscribe();
    let mut tasks = Vec::new();
    for n in 0..40 {
        let s = Arc::clone(&s);
        tasks.push(tokio::spawn(async move {
            let i = inbound(&s, "support", &format!("10{n:02}"), n).await;
            s.apply(i.id, Event::EnteredWorkflow, at(n)).await.unwrap();
            // Accepting a call in the workflow is refused: only this write fails.
            let refused = s.accept(i.id, "alice", at(n)).await;
            assert!(matches!(
                refused,
                Err(Error::Conflict {
                    status: Status::Bot,
                    ..
                })
            ));
            let note = Event::Note(Note::WorkflowStep {
                kind: "step",
                text: format!("step {n}"),
            });
            s.apply(i.id, note, at(n)).await.unwrap();
            let end = Event::CallEnded {
                by: HangupBy::Caller,
                had_callback: false,
                voicemail: false,
                during: None,
            };
            s.apply(i.id, end, at(n)).await.unwrap()
        }));
    }
    for t in tasks {
        let i = t.await.unwrap();
        assert_eq!(i.status, Status::Closed);
        let d = s.get(i.id).await.unwrap();
        let kinds: Vec<_> = d.feed.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(kinds.first(), Some(&"created"));
        assert_eq!(kinds.iter().filter(|k| **k == "step").count(), 1);
        assert!(!kinds.contains(&"assigned"));
    }
    let stored = s.events_since(0, 1000).await.unwrap();
    assert_eq!(stored.len(), 40 * 4);
    let ids: Vec<i64> = stored.iter().map(|e| e.id).collect();
    assert_eq!(ids, (1..=160).collect::<Vec<i64>>());
    for e in &stored {
        assert_eq!(&*rx.recv().await.unwrap(), e);
    }
}

/// Another writer on the same file (a second process) makes the writer's remembered row and
/// next event id stale: the version guard and the event-id key catch it, and the write is
/// redone on what is stored, losing nothing.
#[tokio::test]
async fn a_stale_cached_row_is_read_again() {
    let dir = tempfile::tempdir().unwrap();
    let a = file_store(&dir).await;
    let i = inbound(&a, "support", "1001", 0).await;
    a.apply(i.id, Event::EnteredWorkflow, at(1)).await.unwrap();
    let b = file_store(&dir).await;
    let note = Event::Note(Note::WorkflowStep {
        kind: "step",
        text: "from b".into(),
    });
    b.apply(i.id, note, at(2)).await.unwrap();
    b.close().await;
    let end = Event::CallEnded {
        by: HangupBy::Caller,
        had_callback: false,
        voicemail: false,
        during: None,
    };
    let closed = a.apply(i.id, end, at(3)).await.unwrap();
    assert_eq!(closed.status, Status::Closed);
    let d = a.get(i.id).await.unwrap();
    let kinds: Vec<_> = d.feed.iter().map(|e| e.kind.as_str()).collect();
    assert!(kinds.contains(&"step"), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&"closed"), "{kinds:?}");
    let ids: Vec<i64> = a
        .events_since(0, 100)
        .await
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(ids, [1, 2, 3, 4]);
}

/// The accept is visible at commit; the sync future then completes.
#[tokio::test]
async fn accept_committed_then_synced() {
    let dir = tempfile::tempdir().unwrap();
    let s = file_store(&dir).await;
    let i = callback(&s, "support", "15551234567", 0).await;
    let (won, synced) = s.accept_committed(i.id, "alice", at(1)).await.unwrap();
    assert_eq!(won.status, Status::Connected);
    assert_eq!(
        s.get(i.id).await.unwrap().listed.interaction.status,
        Status::Connected
    );
    synced.await.unwrap();
    assert!(matches!(
        s.accept_committed(i.id, "bob", at(2)).await,
        Err(Error::Conflict { .. })
    ));
}

/// `n` interactions of `queue` that came and went (abandoned while ringing), arriving from
/// `min` on: the history a busy queue builds up.
async fn history(s: &Arc<SqliteStore>, queue: &str, n: i64, min: i64) {
    let mut tasks = Vec::new();
    for k in 0..n {
        let s = Arc::clone(s);
        let queue = queue.to_owned();
        tasks.push(tokio::spawn(async move {
            let i = s
                .create(Interaction::inbound(
                    &queue,
                    "1000",
                    at(min) + jiff::SignedDuration::from_millis(k),
                ))
                .await
                .unwrap();
            let end = Event::CallEnded {
                by: HangupBy::Caller,
                had_callback: false,
                voicemail: false,
                during: None,
            };
            s.apply(i.id, end, at(min)).await.unwrap();
        }));
        // A busy queue's pace, not one burst: the writes a caller waits on give up after a
        // few seconds in the queue.
        if tasks.len() == 200 {
            for t in tasks.drain(..) {
                t.await.unwrap();
            }
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
}

/// The line counts waiting interactions (open and bot) by original arrival, past any history:
/// the position of a caller behind 1,100 finished interactions is its place among the waiting
/// ones, the same in `position`, in the Home List and in the event log.
#[tokio::test]
async fn position_counts_the_waiting_line_past_a_thousand_interactions() {
    let s = Arc::new(SqliteStore::open("sqlite::memory:").await.unwrap());
    history(&s, "support", 1_100, 0).await;
    // After the history: a waits in the workflow, b is a callback, c is with an agent, d waits
    // in the workflow, e rings; one of another queue in between.
    let a = inbound(&s, "support", "2001", 100).await;
    s.apply(a.id, Event::EnteredWorkflow, at(100))
        .await
        .unwrap();
    let b = callback(&s, "support", "15551234567", 101).await;
    let c = inbound(&s, "support", "2003", 102).await;
    s.apply(c.id, Event::EnteredWorkflow, at(102))
        .await
        .unwrap();
    s.apply(
        c.id,
        Event::OfferedLive {
            agent: "bob".into(),
        },
        at(102),
    )
    .await
    .unwrap();
    let _other = inbound(&s, "sales", "2004", 103).await;
    let d = inbound(&s, "support", "2005", 104).await;
    s.apply(d.id, Event::EnteredWorkflow, at(104))
        .await
        .unwrap();
    let e = inbound(&s, "support", "2006", 105).await;

    let want = [
        (a.id, Some(1)),
        (b.id, Some(2)),
        (c.id, None),
        (d.id, Some(3)),
        (e.id, Some(4)),
        (1, None),
    ];
    for (id, p) in want {
        assert_eq!(s.position(id).await.unwrap(), p, "position of {id}");
        assert_eq!(
            s.get(id).await.unwrap().listed.position,
            p,
            "detail of {id}"
        );
    }
    assert!(matches!(s.position(999_999).await, Err(Error::NotFound(_))));
    // The Home List agrees, whichever page the row is on.
    let mut listed = std::collections::HashMap::new();
    let mut cursor = None;
    loop {
        let page = s
            .list(ListQuery {
                queues: Some(vec!["support".into()]),
                limit: 500,
                cursor,
                ..all()
            })
            .await
            .unwrap();
        listed.extend(page.items.iter().map(|l| (l.interaction.id, l.position)));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(listed.len(), 1_105);
    for (id, p) in want {
        assert_eq!(listed[&id], p, "Home List position of {id}");
    }
    // So does the event log: d's last write carried its place.
    let note = Event::Note(Note::WorkflowStep {
        kind: "step",
        text: "menu offered".into(),
    });
    s.apply(d.id, note, at(106)).await.unwrap();
    let last = s.events_since(0, 100_000).await.unwrap().pop().unwrap();
    let data: serde_json::Value = serde_json::from_str(&last.data).unwrap();
    assert_eq!(data["interaction"]["position"], 3);
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

/// A ringing caller (open inbound) is refused to an accept and a close by the store itself,
/// whoever asks, and nothing is written.
#[tokio::test]
async fn a_ringing_caller_is_refused_to_accept_and_close() {
    let s = SqliteStore::open("sqlite::memory:").await.unwrap();
    let i = inbound(&s, "support", "1001", 0).await;
    let live = |r: Result<Interaction, Error>| {
        matches!(
            r,
            Err(Error::Lifecycle {
                source: crate::interaction::LifecycleError::LiveCall { .. },
                ..
            })
        )
    };
    assert!(live(s.accept(i.id, "alice", at(1)).await));
    let close = Event::Closed {
        reason: CloseReason::Completed,
        disposition: None,
    };
    assert!(live(s.apply(i.id, close, at(1)).await));
    let d = s.get(i.id).await.unwrap();
    assert_eq!(d.listed.interaction, i);
    assert_eq!(d.feed.len(), 1);
}

/// Pruning deletes the events older than the cut-off in chunks (more than one here), keeps the
/// newer ones and always the newest, so ids are never handed out again, even by a writer that
/// starts afresh on the file.
#[tokio::test]
async fn pruning_keeps_the_newest_event_and_ids_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(file_store(&dir).await);
    // 2 events each, at minute 0: more than one chunk.
    history(&s, "support", PRUNE_CHUNK / 2 + 500, 0).await;
    let old = PRUNE_CHUNK + 1_000;
    assert_eq!(s.event_bounds().await.unwrap(), Some((1, old)));
    inbound(&s, "support", "2", 60).await;
    inbound(&s, "support", "3", 61).await;
    assert_eq!(s.prune_events(at(30)).await.unwrap(), old as u64);
    assert_eq!(s.event_bounds().await.unwrap(), Some((old + 1, old + 2)));
    // Everything is old now: all but the newest go.
    assert_eq!(s.prune_events(at(120)).await.unwrap(), 1);
    assert_eq!(s.event_bounds().await.unwrap(), Some((old + 2, old + 2)));
    assert_eq!(s.prune_events(at(120)).await.unwrap(), 0);
    s.close().await;
    drop(s);
    let s = file_store(&dir).await;
    inbound(&s, "support", "4", 130).await;
    assert_eq!(s.event_bounds().await.unwrap(), Some((old + 2, old + 3)));
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
