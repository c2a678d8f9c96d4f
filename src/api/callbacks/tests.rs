//! `POST /api/v1/callbacks` over `router(state).oneshot(request)`, a real SQLite store and the
//! shipped `support` queue: who may call it, the number rules, the booking rules and the
//! idempotency key, and that the callback is then refused early with 409 `not_yet_due`.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};

use crate::api::tests::answer;
use crate::api::{ApiClient, AppState};
use crate::config::ApiRight;
use crate::metrics;
use crate::queue::agent::Agent;
use crate::rt::queue_watch::QueueRegistry;
use crate::store::{InteractionStore, SqliteStore};
use crate::workflow::QueueSet;
use crate::workflow::test_support::support_flow;

struct Api {
    state: AppState,
    store: Arc<SqliteStore>,
    _dir: tempfile::TempDir,
}

async fn api() -> Api {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        SqliteStore::open(&format!("sqlite://{}/h.db", dir.path().display()))
            .await
            .unwrap(),
    );
    let shared: Arc<dyn InteractionStore> = store.clone();
    let alice = Agent {
        id: "alice".into(),
        endpoint: "sip:alice@127.0.0.1:5070".into(),
        queues: vec!["support".into()],
        token: "alice-secret".into(),
        role: crate::queue::agent::Role::Agent,
    };
    let client = |id: &str, rights: Vec<ApiRight>| ApiClient {
        id: id.into(),
        token: format!("{id}-token"),
        queues: vec!["support".into()],
        rights,
    };
    let state = AppState::new(shared, vec![alice], metrics::install())
        .with_flows(Arc::new(QueueRegistry::new(
            QueueSet::new([support_flow()]),
            Vec::new(),
        )))
        .with_api_clients(vec![
            client("web", vec![ApiRight::CreateCallbacks]),
            client("reports", vec![]),
        ]);
    Api {
        state,
        store,
        _dir: dir,
    }
}

impl Api {
    async fn post_as(&self, token: &str, key: Option<&str>, body: Value) -> (StatusCode, Value) {
        let mut req = Request::post("/api/v1/callbacks")
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json");
        if let Some(k) = key {
            req = req.header("idempotency-key", k);
        }
        answer(&self.state, req.body(Body::from(body.to_string())).unwrap()).await
    }

    async fn post(&self, key: Option<&str>, body: Value) -> (StatusCode, Value) {
        self.post_as("web-token", key, body).await
    }
}

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or_default()
}

/// Issue 21 item 2: 201 with the interaction (open, callback, `not_before`), the feed saying
/// "requested via API" and the note; the number in one form; an agent's accept before
/// `not_before` is 409 `not_yet_due`.
#[tokio::test]
async fn a_client_with_the_right_creates_a_callback() {
    let api = api().await;
    let later = crate::clock::wall() + jiff::SignedDuration::from_hours(2);
    let later = jiff::Timestamp::from_second(later.as_second()).unwrap();
    let (st, v) = api
        .post(
            Some("form-1"),
            json!({"queue": "support", "number": "+1 (555) 123-4567",
                   "not_before": later.to_string(), "note": "about order 42"}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert_eq!(v["status"], "open");
    assert_eq!(v["sub_type"], "callback");
    assert_eq!(v["customer_number"], "+15551234567");
    assert_eq!(v["callback"]["number"], "+15551234567");
    assert_eq!(v["callback"]["not_before"], later.to_string());
    let id = v["id"].as_i64().unwrap();
    let d = api.store.get(id).await.unwrap();
    let texts: Vec<&str> = d.feed.iter().map(|e| e.text.as_str()).collect();
    assert!(
        texts.iter().any(|t| t.contains("requested via API")),
        "{texts:?}"
    );
    assert!(texts.contains(&"about order 42"), "{texts:?}");
    // Too early for an agent.
    let req = Request::post(format!("/api/v1/interactions/{id}/accept"))
        .header("authorization", "Bearer alice-secret")
        .body(Body::empty())
        .unwrap();
    let (status, v) = answer(&api.state, req).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(code(&v), "not_yet_due", "{v}");
    assert_eq!(v["error"]["not_before"], later.to_string());
}

/// The same Idempotency-Key again: the same interaction, nothing new; another key for the
/// same number: 422 `duplicate_callback`.
#[tokio::test]
async fn an_idempotency_key_replays_and_a_second_booking_is_refused() {
    let api = api().await;
    let body = json!({"queue": "support", "number": "15551234567"});
    let (st, first) = api.post(Some("k"), body.clone()).await;
    assert_eq!(st, StatusCode::CREATED, "{first}");
    let (st, again) = api.post(Some("k"), body.clone()).await;
    assert_eq!(st, StatusCode::CREATED, "{again}");
    assert_eq!(again["id"], first["id"]);
    let (st, v) = api.post(Some("other"), body.clone()).await;
    assert_eq!(
        (st, code(&v)),
        (StatusCode::UNPROCESSABLE_ENTITY, "duplicate_callback"),
        "{v}"
    );
    let (st, v) = api.post(None, body).await;
    assert_eq!(
        (st, code(&v)),
        (StatusCode::UNPROCESSABLE_ENTITY, "duplicate_callback"),
        "{v}"
    );
    let all = api
        .store
        .list(crate::store::ListQuery {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(all.items.len(), 1);
}

/// The queue's number rules, with the reason: premium, another country, not a number.
#[tokio::test]
async fn a_refused_number_is_422_with_the_reason() {
    let api = api().await;
    for (number, why) in [
        ("+19005550199", "blocked"),
        ("+18765550199", "international"),
        ("call me maybe", "digits"),
    ] {
        let (st, v) = api
            .post(None, json!({"queue": "support", "number": number}))
            .await;
        assert_eq!(
            (st, code(&v)),
            (StatusCode::UNPROCESSABLE_ENTITY, "number_refused"),
            "{v}"
        );
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(msg.to_lowercase().contains(why), "{number}: {msg}");
    }
    let (st, v) = api
        .post(
            None,
            json!({"queue": "support", "number": "15551234567", "not_before": "tomorrow"}),
        )
        .await;
    assert_eq!(
        (st, code(&v)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_request"),
        "{v}"
    );
    let (st, v) = api.post(None, json!({"queue": "support"})).await;
    assert_eq!(
        (st, code(&v)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_request"),
        "{v}"
    );
}

/// Only a client token with the right, on its queues: an agent's token and a client without
/// the right are 403, an unknown token 401.
#[tokio::test]
async fn only_a_token_with_the_right_may_create_callbacks() {
    let api = api().await;
    let body = json!({"queue": "support", "number": "15551234567"});
    let (st, v) = api.post_as("alice-secret", None, body.clone()).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
    let (st, v) = api.post_as("reports-token", None, body.clone()).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
    let (st, _) = api.post_as("nope", None, body).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let (st, v) = api
        .post(None, json!({"queue": "sales", "number": "15551234567"}))
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
    assert!(
        api.store
            .list(crate::store::ListQuery {
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

/// Issue 21 item 3: outside the queue's calling window (here in the queue's zone, UTC: the
/// fictional 1-555 numbers have none of their own), a callback is not due: the API moves its
/// `not_before` to the window's opening, the Home List says `callable_from`, and an accept is
/// 409 `not_yet_due` with that time.
#[tokio::test]
async fn outside_the_calling_window_nothing_is_due() {
    use crate::workflow::hours::parse_range;
    use crate::workflow::window::CallingWindow;
    let api = api().await;
    let now = crate::clock::wall();
    let hour = now.to_zoned_datetime(jiff::tz::TimeZone::UTC).hour();
    // A window that does not hold the current hour.
    let (range, opens_today) = if hour < 12 {
        ("12:00-24:00", true)
    } else {
        ("00:00-11:00", false)
    };
    let mut flow = support_flow();
    flow.callback.calling_window = Some(CallingWindow {
        daily: parse_range(range).unwrap(),
    });
    flow.callback.time_zone = jiff::tz::TimeZone::UTC;
    let mut state = api.state.clone();
    state.flows = Arc::new(QueueRegistry::new(QueueSet::new([flow]), Vec::new()));
    let api = Api { state, ..api };
    let day = now.to_zoned_datetime(jiff::tz::TimeZone::UTC).date();
    let opening = if opens_today {
        day.at(12, 0, 0, 0)
    } else {
        day.tomorrow().unwrap().at(0, 0, 0, 0)
    }
    .to_zoned_datetime(jiff::tz::TimeZone::UTC)
    .unwrap()
    .timestamp();
    let (st, v) = api
        .post(None, json!({"queue": "support", "number": "15551234567"}))
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert_eq!(v["callback"]["not_before"], opening.to_string(), "{v}");
    let id = v["id"].as_i64().unwrap();
    let get = |path: String| {
        Request::get(path)
            .header("authorization", "Bearer alice-secret")
            .body(Body::empty())
            .unwrap()
    };
    let (_, d) = answer(&api.state, get(format!("/api/v1/interactions/{id}"))).await;
    assert_eq!(d["callback"]["callable_from"], opening.to_string(), "{d}");
    let req = Request::post(format!("/api/v1/interactions/{id}/accept"))
        .header("authorization", "Bearer alice-secret")
        .body(Body::empty())
        .unwrap();
    let (status, v) = answer(&api.state, req).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(code(&v), "not_yet_due", "{v}");
    assert_eq!(v["error"]["not_before"], opening.to_string(), "{v}");
}

/// `POST path` as alice with `body`.
async fn as_alice(api: &Api, path: &str, body: &str) -> (StatusCode, Value) {
    let req = Request::post(path)
        .header("authorization", "Bearer alice-secret")
        .header("content-type", "application/json")
        .body(Body::from(body.to_owned()))
        .unwrap();
    answer(&api.state, req).await
}

/// Issue 21 item 7: in the workspace an agent reschedules a callback (a new `not_before`, on
/// the feed), adds a note, and "calls again now": due at once and accepted (connected).
#[tokio::test]
async fn an_agent_reschedules_notes_and_calls_again_now() {
    let api = api().await;
    let later = crate::clock::wall() + jiff::SignedDuration::from_hours(3);
    let later = jiff::Timestamp::from_second(later.as_second()).unwrap();
    let (_, v) = api
        .post(None, json!({"queue": "support", "number": "15551234567"}))
        .await;
    let id = v["id"].as_i64().unwrap();
    let (st, v) = as_alice(
        &api,
        &format!("/api/v1/interactions/{id}/reschedule"),
        &json!({ "not_before": later.to_string() }).to_string(),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["callback"]["not_before"], later.to_string());
    let (st, v) = as_alice(
        &api,
        &format!("/api/v1/interactions/{id}/notes"),
        r#"{"text": "customer prefers mornings"}"#,
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, v) = as_alice(&api, &format!("/api/v1/interactions/{id}/accept"), "{}").await;
    assert_eq!((st, code(&v)), (StatusCode::CONFLICT, "not_yet_due"), "{v}");
    let (st, v) = as_alice(&api, &format!("/api/v1/interactions/{id}/call_now"), "").await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "connected");
    assert_eq!(v["assigned_agent"], "alice");
    let d = api.store.get(id).await.unwrap();
    let kinds: Vec<&str> = d.feed.iter().map(|e| e.kind.as_str()).collect();
    for k in ["rescheduled", "agent_note", "assigned"] {
        assert!(kinds.contains(&k), "{kinds:?}");
    }
    assert!(
        d.feed
            .iter()
            .any(|e| e.text == "alice: customer prefers mornings"),
        "{:?}",
        d.feed
    );
    // Not a callback any more once connected: rescheduling it is a conflict.
    let (st, _) = as_alice(
        &api,
        &format!("/api/v1/interactions/{id}/reschedule"),
        &json!({ "not_before": later.to_string() }).to_string(),
    )
    .await;
    assert_eq!(st, StatusCode::CONFLICT);
}
