//! Reports over a real SQLite store, through the router: the figures agree with the
//! interactions in the store, the CSV has a line per interaction, and each agent sees only
//! its own queues.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use jiff::{SignedDuration, Timestamp};
use serde_json::Value;
use tower::ServiceExt;

use crate::api::{AppState, router};
use crate::interaction::{CloseReason, Event, HangupBy, Interaction, Status, SubType};
use crate::queue::agent::{Agent, Role};
use crate::store::{InteractionStore, ListQuery, SqliteStore};

fn agent(id: &str, queues: &[&str], role: Role) -> Agent {
    Agent {
        id: id.into(),
        endpoint: format!("sip:{id}@127.0.0.1"),
        queues: queues.iter().map(|q| (*q).to_owned()).collect(),
        token: format!("{id}-secret"),
        role,
    }
}

async fn get(state: &AppState, who: &str, uri: &str) -> (StatusCode, String) {
    let req = Request::get(uri)
        .header("authorization", format!("Bearer {who}-secret"))
        .body(Body::empty())
        .unwrap();
    let resp = router(state.clone()).oneshot(req).await.unwrap();
    let status = resp.status();
    let body = axum::body::to_bytes(resp.into_body(), 1 << 22)
        .await
        .unwrap();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

fn t0() -> Timestamp {
    "2026-03-02T09:00:00Z".parse().unwrap()
}

fn at(secs: i64) -> Timestamp {
    t0() + SignedDuration::from_secs(secs)
}

/// A day's mix on two queues: answered quickly and slowly, abandoned, a callback booked and
/// one called back, one still waiting.
async fn history(s: &Arc<dyn InteractionStore>) {
    let end = |by| Event::CallEnded {
        by,
        had_callback: false,
        voicemail: false,
        during: None,
    };
    for (k, (queue, wait)) in [("support", 10), ("support", 200), ("sales", 30)]
        .into_iter()
        .enumerate()
    {
        let start = 60 * k as i64;
        let i = s
            .create(Interaction::inbound(queue, "+15550001", at(start)))
            .await
            .unwrap();
        s.apply(i.id, Event::EnteredWorkflow, at(start))
            .await
            .unwrap();
        let offered = Event::OfferedLive {
            agent: "alice".into(),
        };
        s.apply(i.id, offered, at(start + wait - 1)).await.unwrap();
        s.apply(i.id, Event::Bridged, at(start + wait))
            .await
            .unwrap();
        s.apply(
            i.id,
            Event::HungUp {
                by: HangupBy::Caller,
            },
            at(start + wait + 90),
        )
        .await
        .unwrap();
    }
    let gone = s
        .create(Interaction::inbound("support", "+15550002", at(1000)))
        .await
        .unwrap();
    s.apply(gone.id, Event::EnteredWorkflow, at(1000))
        .await
        .unwrap();
    s.apply(gone.id, end(HangupBy::Caller), at(1030))
        .await
        .unwrap();
    for (k, number) in ["15551230001", "15551230002"].into_iter().enumerate() {
        let start = 1100 + k as i64;
        let i = s
            .create(Interaction::inbound("support", number, at(start)))
            .await
            .unwrap();
        s.apply(i.id, Event::EnteredWorkflow, at(start))
            .await
            .unwrap();
        let req = Event::CallbackRequested {
            number: number.into(),
            not_before: None,
        };
        s.apply(i.id, req, at(start + 5)).await.unwrap();
        let hang = Event::CallEnded {
            by: HangupBy::Hammond,
            had_callback: true,
            voicemail: false,
            during: None,
        };
        s.apply(i.id, hang, at(start + 10)).await.unwrap();
        if k == 1 {
            s.accept(i.id, "alice", at(2000)).await.unwrap();
            for e in [
                Event::Dialling,
                Event::Ringing,
                Event::Answered,
                Event::Bridged,
            ] {
                s.apply(i.id, e, at(2010)).await.unwrap();
            }
        }
    }
    s.create(Interaction::inbound("support", "+15550003", at(3000)))
        .await
        .unwrap();
    // Outside the window asked for below.
    s.create(Interaction::inbound("support", "+15550004", at(-10)))
        .await
        .unwrap();
}

async fn state() -> (AppState, Arc<dyn InteractionStore>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn InteractionStore> = Arc::new(
        SqliteStore::open(&format!("sqlite://{}/h.db", dir.path().display()))
            .await
            .unwrap(),
    );
    let state = AppState::new(
        store.clone(),
        vec![
            agent("alice", &["support"], Role::Agent),
            agent("sam", &[], Role::Supervisor),
            agent("sally", &["sales"], Role::Agent),
        ],
        crate::metrics::install(),
    );
    (state, store, dir)
}

/// Issue 17: `/api/v1/stats` figures agree with the interactions in the store, counted here
/// straight from the Home List query (every status, every queue).
#[tokio::test]
async fn stats_agree_with_the_interactions_in_the_store() {
    let (state, store, _dir) = state().await;
    history(&store).await;
    let (from, to) = (at(0), at(3600));
    let uri = format!("/api/v1/stats?from={from}&to={to}&bucket=15m");
    let (status, body) = get(&state, "sam", &uri).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["bucket_secs"], 900);

    let all = store
        .list(ListQuery {
            limit: 1000,
            ..ListQuery::default()
        })
        .await
        .unwrap()
        .items;
    for q in v["queues"].as_array().unwrap() {
        let name = q["queue"].as_str().unwrap();
        let mine: Vec<&Interaction> = all
            .iter()
            .map(|l| &l.interaction)
            .filter(|i| i.queue == name && i.created_at >= from && i.created_at < to)
            .collect();
        let count = |f: &dyn Fn(&Interaction) -> bool| mine.iter().filter(|i| f(i)).count() as u64;
        let totals = &q["totals"];
        assert_eq!(totals["offered"], count(&|_| true), "{name}: {totals}");
        assert_eq!(
            totals["abandoned"],
            count(&|i| i.close_reason == Some(CloseReason::Abandoned)),
            "{name}"
        );
        assert_eq!(
            totals["callbacks_booked"],
            count(&|i| i.sub_type == SubType::Callback),
            "{name}"
        );
        assert_eq!(
            totals["callbacks_open"],
            count(&|i| i.sub_type == SubType::Callback && i.status == Status::Open),
            "{name}"
        );
        let buckets = q["buckets"].as_array().unwrap();
        assert_eq!(buckets.len(), 4);
        let offered: u64 = buckets.iter().map(|b| b["offered"].as_u64().unwrap()).sum();
        assert_eq!(
            offered,
            count(&|_| true),
            "the buckets add up to the totals"
        );
    }
    let support = v["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["queue"] == "support")
        .unwrap();
    let totals = &support["totals"];
    // Answered after 10 s and 200 s; the callback bridged 2010 - 1101 s after arrival.
    assert_eq!(totals["bridged"], 3);
    assert_eq!(totals["callbacks_completed"], 1);
    assert_eq!(totals["within_target"], 1);
    assert_eq!(totals["longest_wait_secs"], 909);
    // Settled: three bridged and one abandoned; one within 60 s.
    assert_eq!(totals["service_level"], 0.25);
    assert_eq!(v["totals"]["offered"], 7);
}

#[tokio::test]
async fn agents_report_on_their_own_queues_only() {
    let (state, store, _dir) = state().await;
    history(&store).await;
    let (from, to) = (at(0), at(3600));
    let (status, body) = get(
        &state,
        "alice",
        &format!("/api/v1/stats?from={from}&to={to}"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let v: Value = serde_json::from_str(&body).unwrap();
    let names: Vec<&str> = v["queues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["queue"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["support"]);
    let (status, _) = get(&state, "alice", "/api/v1/stats?queue=sales").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = get(&state, "alice", "/api/v1/stats?bucket=10s").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = get(
        &state,
        "alice",
        &format!("/api/v1/stats?from={to}&to={from}"),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = get(&state, "nobody", "/api/v1/stats").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

/// Issue 17: the CSV export has a header and one line per interaction of the window, with its
/// outcome; a formula-looking disposition is defused, a phone number is left alone.
#[tokio::test]
async fn csv_export_lists_each_interaction_with_its_outcome() {
    let (state, store, _dir) = state().await;
    history(&store).await;
    let open = store
        .create(Interaction::inbound("sales", "+15550009", at(3100)))
        .await
        .unwrap();
    store
        .apply(open.id, Event::EnteredWorkflow, at(3100))
        .await
        .unwrap();
    let left_message = Event::CallEnded {
        by: HangupBy::Caller,
        had_callback: false,
        voicemail: true,
        during: None,
    };
    store.apply(open.id, left_message, at(3150)).await.unwrap();
    store
        .close_by(
            open.id,
            "sally",
            None,
            Some("=HYPERLINK(\"x\")".into()),
            at(3200),
        )
        .await
        .unwrap();
    let (from, to) = (at(0), at(3600));
    let (status, body) = get(
        &state,
        "sam",
        &format!("/api/v1/reports/interactions.csv?from={from}&to={to}"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let lines: Vec<&str> = body.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(lines[0].split(',').count(), 15);
    assert!(lines[0].starts_with("id,queue,sub_type,status,outcome,"));
    assert_eq!(lines.len(), 1 + 8, "{body}");
    let outcomes: Vec<&str> = lines[1..]
        .iter()
        .map(|l| l.split(',').nth(4).unwrap())
        .collect();
    assert_eq!(
        outcomes,
        [
            "answered",
            "answered",
            "answered",
            "abandoned",
            "callback_pending",
            "called_back",
            "waiting",
            "voicemail_done"
        ]
    );
    let last = lines.last().unwrap();
    assert!(last.contains(",+15550009,"), "{last}");
    assert!(last.ends_with(",\"'=HYPERLINK(\"\"x\"\")\""), "{last}");
    // alice sees support only.
    let (_, body) = get(
        &state,
        "alice",
        &format!("/api/v1/reports/interactions.csv?from={from}&to={to}"),
    )
    .await;
    assert!(
        body.lines()
            .skip(1)
            .all(|l| l.split(',').nth(1) == Some("support")),
        "{body}"
    );
}
