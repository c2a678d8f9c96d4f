//! The PostgreSQL backend's own cases: its URLs, its migrations under a lock, several
//! instances on one database (events, presence, claims), a lost notification connection, and
//! durable promises. The cases every backend passes are in `store/tests.rs`.

use super::*;

#[test]
fn urls_with_a_user_and_a_socket_directory_are_understood() {
    let o = connect_options("postgres://hammond@/calls?host=/run/postgresql").unwrap();
    assert_eq!(o.get_username(), "hammond");
    assert_eq!(o.get_database(), Some("calls"));
    assert_eq!(
        o.get_socket().map(|p| p.display().to_string()),
        Some("/run/postgresql".into())
    );
    let o = connect_options("postgres://h%40m:s%3Acret@/calls?host=/tmp/x").unwrap();
    assert_eq!(o.get_username(), "h@m");
    let o = connect_options("postgresql://u:p@db.example:6543/calls").unwrap();
    assert_eq!((o.get_host(), o.get_port()), ("db.example", 6543));
    assert_eq!(o.get_database(), Some("calls"));
    assert!(connect_options("postgres://u@/d?host=/x&port=nope").is_err());
}

use std::time::Duration;

use crate::interaction::HangupBy;
use crate::store::tests::{Pg, at, callback, in_workflow, inbound};

/// A store on `pg` as instance `name`, as the trait object the app holds.
async fn instance(pg: &Pg, name: &str) -> Arc<dyn InteractionStore> {
    pg.open_as(name).await
}

/// Runs the case against a fresh database, or says it was skipped.
macro_rules! with_pg {
    ($case:literal, |$pg:ident| $body:expr) => {{
        let Some($pg) = Pg::new(concat!("store::pg::tests::", $case)).await else {
            return;
        };
        $body
    }};
}

/// Admin SQL on the case's database.
async fn sql(pg: &Pg, q: &str) -> Vec<sqlx::postgres::PgRow> {
    let mut c = PgConnection::connect_with(&connect_options(&pg.url()).unwrap())
        .await
        .unwrap();
    let rows = sqlx::raw_sql(AssertSqlSafe(q.to_owned()))
        .fetch_all(&mut c)
        .await
        .unwrap();
    let _ = c.close().await;
    rows
}

/// Instances starting at the same moment on an empty database: one migrates under the lock,
/// the others wait for it and find the tables made; every one of them works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_starting_at_once_on_an_empty_database_do_not_race() {
    with_pg!(
        "instances_starting_at_once_on_an_empty_database_do_not_race",
        |pg| {
            let url = pg.url();
            let opening: Vec<_> = (0..6)
                .map(|n| {
                    let url = url.clone();
                    tokio::spawn(async move { PgStore::open(&url, &format!("i{n}")).await })
                })
                .collect();
            let mut stores = Vec::new();
            for o in opening {
                stores.push(o.await.unwrap().expect("every instance starts"));
            }
            let applied = sql(&pg, "SELECT version FROM _sqlx_migrations").await;
            assert_eq!(applied.len(), super::migrator().migrations.len());
            for s in &stores {
                s.create(Interaction::inbound("support", "1", at(0)))
                    .await
                    .unwrap();
            }
            assert_eq!(stores[0].event_bounds().await.unwrap(), Some((1, 6)));
        }
    )
}

/// Every event reaches every instance's subscribers, once, in one global id order, whichever
/// instance wrote it; live and replayed agree.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_instance_hears_every_event_in_one_id_order() {
    with_pg!("every_instance_hears_every_event_in_one_id_order", |pg| {
        let a = instance(&pg, "a").await;
        let b = instance(&pg, "b").await;
        let (mut ra, mut rb) = (a.subscribe(), b.subscribe());
        let mut tasks = Vec::new();
        for n in 0..20 {
            for s in [&a, &b] {
                let s = s.clone();
                tasks.push(tokio::spawn(async move {
                    let i = inbound(&s, "support", "1", n).await;
                    s.apply(i.id, Event::EnteredWorkflow, at(n)).await.unwrap();
                }));
            }
        }
        for t in tasks {
            t.await.unwrap();
        }
        let stored = a.events_since(0, 1000).await.unwrap();
        assert_eq!(stored.len(), 80);
        let ids: Vec<i64> = stored.iter().map(|e| e.id).collect();
        assert_eq!(ids, (1..=80).collect::<Vec<_>>());
        for rx in [&mut ra, &mut rb] {
            for e in &stored {
                let got = tokio::time::timeout(Duration::from_secs(5), rx.recv())
                    .await
                    .expect("every event arrives")
                    .unwrap();
                assert_eq!(&*got, e);
            }
        }
    })
}

/// The notification connections die (a restart, a network cut): nothing is missed, the
/// pumps catch up from the table and go on in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_notification_connection_loses_no_event() {
    with_pg!("a_lost_notification_connection_loses_no_event", |pg| {
        let a = instance(&pg, "a").await;
        let b = instance(&pg, "b").await;
        let mut rb = b.subscribe();
        let first = inbound(&a, "support", "1", 0).await;
        let e = tokio::time::timeout(Duration::from_secs(5), rb.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(e.interaction_id, first.id);
        let killed = sql(
            &pg,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND query LIKE 'LISTEN%'",
        )
        .await;
        assert_eq!(killed.len(), 2, "both instances' listeners");
        for n in 1..=30 {
            inbound(&a, "support", "1", n).await;
        }
        for want in 2..=31 {
            let e = tokio::time::timeout(Duration::from_secs(5), rb.recv())
                .await
                .expect("caught up")
                .unwrap();
            assert_eq!(e.id, want);
        }
        // And the writer's own connection dies: the next write reconnects.
        sql(
            &pg,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        .await;
        inbound(&b, "support", "1", 40).await;
        let e = tokio::time::timeout(Duration::from_secs(5), rb.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(e.id, 32);
    })
}

/// Presence set on one instance is heard and read on the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_is_shared_between_instances() {
    with_pg!("presence_is_shared_between_instances", |pg| {
        let a = instance(&pg, "a").await;
        let b = instance(&pg, "b").await;
        let mut heard = b.subscribe_presence();
        a.set_presence("alice", Presence::Available, at(0))
            .await
            .unwrap();
        let h = tokio::time::timeout(Duration::from_secs(5), heard.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(h, ("alice".to_owned(), Presence::Available));
        assert_eq!(
            b.presences().await.unwrap(),
            [("alice".to_owned(), Presence::Available)]
        );
    })
}

/// An offer claimed by one instance is refused to the other until released; an instance
/// cannot release another's claim.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offer_is_claimed_by_one_instance_at_a_time() {
    with_pg!("an_offer_is_claimed_by_one_instance_at_a_time", |pg| {
        let a = instance(&pg, "a").await;
        let b = instance(&pg, "b").await;
        let claim = OfferClaim {
            interaction: 7,
            agent: "alice".into(),
            until: at(10),
        };
        // Both at once: exactly one.
        let (ra, rb) = tokio::join!(
            a.claim_offer(claim.clone(), at(0)),
            b.claim_offer(claim.clone(), at(0))
        );
        let (ra, rb) = (ra.unwrap(), rb.unwrap());
        assert!(ra ^ rb, "a {ra}, b {rb}");
        let (holder, other) = if ra { (&a, &b) } else { (&b, &a) };
        other.release_offer(claim.clone()).await.unwrap();
        assert!(
            !other.claim_offer(claim.clone(), at(1)).await.unwrap(),
            "still held"
        );
        holder.release_offer(claim.clone()).await.unwrap();
        assert!(other.claim_offer(claim, at(1)).await.unwrap());
    })
}

/// At start an instance settles only the calls it held itself (another's are live on it):
/// what instance `a` left is recovered by `a` restarting, not by `b` starting; a callback `b`
/// accepted (and dials) is `b`'s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_settles_only_this_instances_calls() {
    with_pg!("recovery_settles_only_this_instances_calls", |pg| {
        let retry = |_: &str| (3, Duration::from_secs(600));
        let a = instance(&pg, "a").await;
        let b = instance(&pg, "b").await;
        let on_a = in_workflow(&a, "support", 0).await;
        let on_b = in_workflow(&b, "support", 1).await;
        let cb = callback(&a, "support", "15551234567", 2).await;
        b.accept(cb.id, "bob", at(3)).await.unwrap();
        drop(a);
        let b_again = instance(&pg, "c").await;
        assert!(b_again.recover(at(10), &retry).await.unwrap().is_empty());
        let a = instance(&pg, "a").await;
        let settled: Vec<i64> = a
            .recover(at(10), &retry)
            .await
            .unwrap()
            .iter()
            .map(|i| i.id)
            .collect();
        assert_eq!(settled, [on_a.id]);
        let status = |id| {
            let b = b.clone();
            async move { b.get(id).await.unwrap().listed.interaction.status }
        };
        assert_eq!(status(on_b.id).await, Status::Bot);
        assert_eq!(status(cb.id).await, Status::Connected);
        let end = Event::CallEnded {
            by: HangupBy::Caller,
            had_callback: false,
            voicemail: false,
            during: None,
        };
        b.apply(on_b.id, end, at(11)).await.unwrap();
    })
}

/// An instance dies (its lease lapses): a survivor settles what was engaged on it, naming it
/// on the feed; a confirmed callback waiting in the queue is untouched and still pickable;
/// an instance whose lease holds keeps its calls; two survivors at once settle each once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survivors_settle_a_dead_instances_calls_once() {
    with_pg!("survivors_settle_a_dead_instances_calls_once", |pg| {
        let retry = |_: &str| (3, Duration::from_secs(600));
        let dead = instance(&pg, "dead").await;
        let alive = instance(&pg, "alive").await;
        let (b, c) = (instance(&pg, "b").await, instance(&pg, "c").await);
        for s in [&dead, &alive, &b, &c] {
            assert!(!s.renew_lease(Duration::from_secs(60)).await.unwrap());
            assert!(s.renew_lease(Duration::from_secs(60)).await.unwrap());
        }
        let caller = in_workflow(&dead, "support", 0).await;
        let waiting = callback(&dead, "support", "15551234567", 1).await;
        let dialling = callback(&alive, "support", "15551234568", 2).await;
        dead.accept(dialling.id, "bob", at(3)).await.unwrap();
        dead.apply(dialling.id, Event::Dialling, at(3))
            .await
            .unwrap();
        let kept = in_workflow(&alive, "support", 4).await;

        assert!(
            b.settle_lost_instances(at(5), &retry)
                .await
                .unwrap()
                .is_empty()
        );
        // It dies: its lease is not renewed and lapses.
        dead.renew_lease(Duration::ZERO).await.unwrap();
        drop(dead);
        tokio::time::sleep(Duration::from_millis(5)).await;
        let (by_b, by_c) = tokio::join!(
            b.settle_lost_instances(at(10), &retry),
            c.settle_lost_instances(at(10), &retry)
        );
        let mut settled: Vec<(String, i64)> = by_b
            .unwrap()
            .into_iter()
            .chain(by_c.unwrap())
            .map(|(name, i)| (name, i.id))
            .collect();
        settled.sort();
        assert_eq!(
            settled,
            [
                ("dead".to_owned(), caller.id),
                ("dead".to_owned(), dialling.id)
            ]
        );
        let get = |id| {
            let b = b.clone();
            async move { b.get(id).await.unwrap() }
        };
        let lost = get(caller.id).await;
        assert_eq!(lost.listed.interaction.status, Status::Closed);
        let note = lost.feed.iter().find(|f| f.kind == "recovered").unwrap();
        assert!(
            note.text.contains("instance dead was lost"),
            "{}",
            note.text
        );
        let retried = get(dialling.id).await.listed.interaction;
        let attempts = retried.callback.as_ref().map(|c| c.attempts);
        assert_eq!((retried.status, attempts), (Status::Open, Some(1)));
        assert_eq!(
            get(waiting.id).await.listed.interaction.status,
            Status::Open
        );
        assert_eq!(get(kept.id).await.listed.interaction.status, Status::Bot);
        c.accept(waiting.id, "carol", at(11)).await.unwrap();
        assert!(
            c.settle_lost_instances(at(12), &retry)
                .await
                .unwrap()
                .is_empty()
        );
    })
}

/// The line count seeks the `(queue, status, created_at, id)` index, with a plain index scan
/// (which marks dead entries as it goes; the planner's choice on a table this small is a
/// sequential scan, so those are ruled out to see that the index serves).
#[tokio::test]
async fn the_position_count_uses_the_waiting_line_index() {
    with_pg!("the_position_count_uses_the_waiting_line_index", |pg| {
        let _s = instance(&pg, "a").await;
        let plan = sql(
            &pg,
            "SET enable_seqscan = off; SET enable_bitmapscan = off; EXPLAIN SELECT COUNT(o.version) \
             FROM interactions o WHERE o.queue = 'support' AND o.status IN ('open', 'bot') \
             AND (o.created_at, o.id) <= (0, 0)",
        )
        .await;
        let plan: Vec<String> = plan.iter().map(|r| r.get::<String, _>(0)).collect();
        let plan = plan.join("\n");
        assert!(
            plan.contains("Index Scan using interactions_queue_status"),
            "{plan}"
        );
    })
}

/// A callback booking (and an accept) is on disk before the caller hears of it: the WAL is
/// flushed past the booking's commit when `book_callback` returns, though the writer commits
/// everything else asynchronously (checked too, so the check can tell the two apart).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_booking_is_on_disk_before_it_returns() {
    with_pg!("a_booking_is_on_disk_before_it_returns", |pg| {
        let s = instance(&pg, "a").await;
        let lsn = |q: &'static str| {
            let pg = &pg;
            async move { sql(pg, q).await[0].get::<i64, _>(0) }
        };
        for n in 0..5 {
            let i = in_workflow(&s, "support", n).await;
            let before = lsn("SELECT (pg_current_wal_insert_lsn() - '0/0')::bigint").await;
            s.book_callback(
                i.id,
                crate::store::tests::booking(&format!("1555123450{n}"), 0),
                at(n),
            )
            .await
            .unwrap();
            let flushed = lsn("SELECT (pg_current_wal_flush_lsn() - '0/0')::bigint").await;
            assert!(
                flushed > before,
                "booking {n}: flushed {flushed} <= {before}"
            );
        }
        let accepted = callback(&s, "support", "15559876543", 9).await;
        let before = lsn("SELECT (pg_current_wal_insert_lsn() - '0/0')::bigint").await;
        s.accept(accepted.id, "alice", at(10)).await.unwrap();
        let flushed = lsn("SELECT (pg_current_wal_flush_lsn() - '0/0')::bigint").await;
        assert!(flushed > before, "accept: flushed {flushed} <= {before}");
    })
}

/// Issue 17: one instance delivers a webhook at a time: another is refused while the hold
/// lasts, takes it once it lapses, and then the first is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_instance_at_a_time_holds_a_webhook() {
    with_pg!("one_instance_at_a_time_holds_a_webhook", |pg| {
        let a = instance(&pg, "a").await;
        let b = instance(&pg, "b").await;
        assert!(a.hold_webhook("crm", at(1), at(0)).await.unwrap());
        assert!(!b.hold_webhook("crm", at(2), at(0)).await.unwrap());
        assert!(
            b.hold_webhook("other", at(2), at(0)).await.unwrap(),
            "per webhook"
        );
        assert!(
            a.hold_webhook("crm", at(3), at(1)).await.unwrap(),
            "renewed"
        );
        assert!(!b.hold_webhook("crm", at(4), at(2)).await.unwrap());
        assert!(
            b.hold_webhook("crm", at(5), at(3)).await.unwrap(),
            "lapsed: taken"
        );
        assert!(!a.hold_webhook("crm", at(6), at(4)).await.unwrap());
    });
}
