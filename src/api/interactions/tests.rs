//! The interaction routes' integrity rules, over `router(state).oneshot(request)` and a real
//! SQLite store: what an agent may accept or close, and what the answer says when not.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::Value;

use crate::api::AppState;
use crate::api::tests::answer;
use crate::interaction::{CloseReason, Event, HangupBy, Interaction, InteractionId, Status};
use crate::metrics;
use crate::queue::agent::Agent;
use crate::store::testing::{Hooked, Hooks};
use crate::store::{InteractionStore, SqliteStore};

struct Api {
    state: AppState,
    store: Arc<SqliteStore>,
    _dir: tempfile::TempDir,
}

fn agent(id: &str) -> Agent {
    Agent {
        id: id.into(),
        endpoint: format!("sip:{id}@127.0.0.1:5070"),
        queues: vec!["support".into()],
        token: format!("{id}-secret"),
        role: crate::queue::agent::Role::Agent,
    }
}

async fn api() -> Api {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        SqliteStore::open(&format!("sqlite://{}/h.db", dir.path().display()))
            .await
            .unwrap(),
    );
    let shared: Arc<dyn InteractionStore> = store.clone();
    let state = AppState::new(
        shared,
        vec![
            agent("alice"),
            agent("bob"),
            Agent {
                queues: vec![],
                role: crate::queue::agent::Role::Supervisor,
                ..agent("sam")
            },
            Agent {
                queues: vec!["sales".into()],
                ..agent("carl")
            },
        ],
        metrics::install(),
    );
    Api {
        state,
        store,
        _dir: dir,
    }
}

impl Api {
    /// `POST path` as `agent` with `body`; the status and the JSON answer.
    async fn post(&self, agent: &str, path: &str, body: &str) -> (StatusCode, Value) {
        self.send("POST", agent, path, body).await
    }

    async fn accept(&self, agent: &str, id: InteractionId) -> (StatusCode, Value) {
        self.post(agent, &format!("/api/v1/interactions/{id}/accept"), "{}")
            .await
    }

    async fn close(&self, agent: &str, id: InteractionId) -> (StatusCode, Value) {
        self.post(
            agent,
            &format!("/api/v1/interactions/{id}/close"),
            r#"{"disposition": "done"}"#,
        )
        .await
    }

    async fn status(&self, id: InteractionId) -> Status {
        self.store.get(id).await.unwrap().listed.interaction.status
    }
}

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or_default()
}

/// A caller whose INVITE is ringing (`ring_before_answer`) is open and inbound: the Home List
/// shows it, but an accept would connect nothing and a close would leave the call up. Both
/// are refused with 409 `live_call`, and the call's own end still settles it.
#[tokio::test]
async fn a_ringing_caller_cannot_be_accepted_or_closed() {
    let api = api().await;
    let ringing = api
        .store
        .create(Interaction::inbound(
            "support",
            "+15550001",
            crate::clock::wall(),
        ))
        .await
        .unwrap()
        .id;
    let (st, v) = api.accept("alice", ringing).await;
    assert_eq!((st, code(&v)), (StatusCode::CONFLICT, "live_call"), "{v}");
    let (st, v) = api.close("alice", ringing).await;
    assert_eq!((st, code(&v)), (StatusCode::CONFLICT, "live_call"), "{v}");
    assert_eq!(api.status(ringing).await, Status::Open);
    let d = api.store.get(ringing).await.unwrap();
    assert!(
        d.feed
            .iter()
            .all(|e| e.kind != "assigned" && e.kind != "closed"),
        "nothing written: {:?}",
        d.feed
    );
    // The caller answers and waits: the workflow carries on, untouched by the refusals.
    api.store
        .apply(ringing, Event::EnteredWorkflow, crate::clock::wall())
        .await
        .unwrap();
    let end = Event::CallEnded {
        by: HangupBy::Caller,
        had_callback: false,
        voicemail: false,
        during: None,
    };
    let closed = api
        .store
        .apply(ringing, end, crate::clock::wall())
        .await
        .unwrap();
    assert_eq!(closed.status, Status::Closed);
}

/// An open callback of `queue` for `number`, not to be dialled before `not_before`.
async fn booked(store: &SqliteStore, number: &str, not_before: Option<jiff::Timestamp>) -> i64 {
    let now = crate::clock::wall();
    let id = store
        .create(Interaction::inbound("support", number, now))
        .await
        .unwrap()
        .id;
    store.apply(id, Event::EnteredWorkflow, now).await.unwrap();
    let request = Event::CallbackRequested {
        number: number.into(),
        not_before,
    };
    store.apply(id, request, now).await.unwrap();
    let end = Event::CallEnded {
        by: HangupBy::Hammond,
        had_callback: true,
        voicemail: false,
        during: None,
    };
    store.apply(id, end, now).await.unwrap();
    id
}

/// A callback booked for later (opening time, or its retry interval) is not dialled early from
/// the Home List: 409 `not_yet_due`, with the time it is due in the error object.
#[tokio::test]
async fn accepting_a_callback_before_it_is_due_is_refused_with_the_due_time() {
    let api = api().await;
    let due = crate::clock::wall() + jiff::SignedDuration::from_hours(2);
    let id = booked(&api.store, "15551234567", Some(due)).await;
    let (st, v) = api.accept("alice", id).await;
    assert_eq!((st, code(&v)), (StatusCode::CONFLICT, "not_yet_due"), "{v}");
    // The store keeps microseconds.
    let at: jiff::Timestamp = v["error"]["not_before"].as_str().unwrap().parse().unwrap();
    assert_eq!(at.as_microsecond(), due.as_microsecond());
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&at.to_string()),
        "{v}"
    );
    assert_eq!(api.status(id).await, Status::Open);
    // One whose time has come is taken.
    let past = crate::clock::wall() - jiff::SignedDuration::from_mins(1);
    let id = booked(&api.store, "15557654321", Some(past)).await;
    let (st, v) = api.accept("alice", id).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "connected");
}

/// Alice closes an open callback while bob accepts it: bob's accept lands between the close's
/// read and its write. The close must not close bob's call under him (it did: 200, closed,
/// bob's call left up); it is his now, so alice is refused.
#[tokio::test]
async fn a_close_crossing_an_accept_does_not_close_the_other_agents_call() {
    let mut api = api().await;
    let id = booked(&api.store, "15551234567", None).await;
    // Every read is followed at once by bob's accept.
    let racy: Arc<dyn InteractionStore> = Arc::new(Hooked {
        inner: api.store.clone(),
        hooks: Hooks {
            after_get: Some(Box::new(|s, id| {
                Box::pin(async move {
                    s.accept(id, "bob", crate::clock::wall()).await.unwrap();
                })
            })),
            ..Hooks::default()
        },
    });
    api.state.store = racy;
    let (st, v) = api.close("alice", id).await;
    assert_eq!((st, code(&v)), (StatusCode::FORBIDDEN, "forbidden"), "{v}");
    let i = api.store.get(id).await.unwrap().listed.interaction;
    assert_eq!(i.status, Status::Connected);
    assert_eq!(i.assigned_agent.as_deref(), Some("bob"));
}

/// The store's close decides on the row as stored, and says what it closed from.
#[tokio::test]
async fn close_is_decided_by_the_store_on_the_row_as_stored() {
    let api = api().await;
    let s = &api.store;
    let now = crate::clock::wall();
    let open = booked(s, "15551230001", None).await;
    let c = s.close_by(open, "alice", None, None, now).await.unwrap();
    assert_eq!(
        (c.from, c.interaction.status),
        (Status::Open, Status::Closed)
    );
    assert_eq!(c.interaction.close_reason, Some(CloseReason::Completed));
    let mine = booked(s, "15551230002", None).await;
    s.accept(mine, "bob", now).await.unwrap();
    assert!(matches!(
        s.close_by(mine, "alice", None, None, now).await,
        Err(crate::store::Error::AssignedElsewhere { .. })
    ));
    let c = s
        .close_by(
            mine,
            "bob",
            Some(CloseReason::Expired),
            Some("x".into()),
            now,
        )
        .await
        .unwrap();
    assert_eq!(c.from, Status::Connected);
    assert_eq!(c.interaction.close_reason, Some(CloseReason::Expired));
    assert!(matches!(
        s.close_by(mine, "bob", None, None, now).await,
        Err(crate::store::Error::Conflict {
            status: Status::Closed,
            ..
        })
    ));
    let bot = s
        .create(Interaction::inbound("support", "1", now))
        .await
        .unwrap()
        .id;
    s.apply(bot, Event::EnteredWorkflow, now).await.unwrap();
    assert!(matches!(
        s.close_by(bot, "alice", None, None, now).await,
        Err(crate::store::Error::Conflict {
            status: Status::Bot,
            ..
        })
    ));
}

impl Api {
    async fn send(&self, method: &str, agent: &str, path: &str, body: &str) -> (StatusCode, Value) {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {agent}-secret"))
            .header("content-type", "application/json")
            .body(Body::from(body.to_owned()))
            .unwrap();
        answer(&self.state, req).await
    }
}

/// Issue 17: a supervisor (in no queue) sees every queue, closes a call another agent holds,
/// reassigns an open one to an agent, and sets another agent's presence; an agent can do none
/// of that.
#[tokio::test]
async fn a_supervisor_sees_every_queue_and_acts_on_anything() {
    let api = api().await;
    let s = &api.store;
    let now = crate::clock::wall();
    let sales = s
        .create(Interaction::inbound("sales", "+15550009", now))
        .await
        .unwrap()
        .id;
    let support = booked(s, "15551230009", None).await;

    // The Home List: all queues for the supervisor, the agent's own for alice.
    let (st, v) = api.send("GET", "sam", "/api/v1/interactions", "").await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let ids: Vec<i64> = v["interactions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![sales, support]);
    let (_, v) = api.send("GET", "alice", "/api/v1/interactions", "").await;
    assert_eq!(v["interactions"].as_array().unwrap().len(), 1);
    let (st, _) = api
        .send("GET", "sam", &format!("/api/v1/interactions/{sales}"), "")
        .await;
    assert_eq!(st, StatusCode::OK);
    let (st, _) = api
        .send("GET", "alice", &format!("/api/v1/interactions/{sales}"), "")
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);

    // Reassign: only a supervisor, to a known agent; the interaction is bob's, connected.
    let path = format!("/api/v1/interactions/{support}/assign");
    let (st, _) = api.post("alice", &path, r#"{"agent": "bob"}"#).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, _) = api.post("sam", &path, r#"{"agent": "nobody"}"#).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    let (st, v) = api.post("sam", &path, r#"{"agent": "carl"}"#).await;
    assert_eq!(
        st,
        StatusCode::UNPROCESSABLE_ENTITY,
        "carl serves sales only: {v}"
    );
    let (st, v) = api.post("sam", &path, r#"{"agent": "bob"}"#).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["assigned_agent"], "bob");
    assert_eq!(v["status"], "connected");

    // Close what bob holds: alice may not, the supervisor may.
    let (st, _) = api.close("alice", support).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, v) = api.close("sam", support).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(api.status(support).await, Status::Closed);

    // Presence: alice cannot set bob's; the supervisor can.
    let body = r#"{"status": "available"}"#;
    let (st, _) = api
        .send("PUT", "alice", "/api/v1/agents/bob/status", body)
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, v) = api
        .send("PUT", "sam", "/api/v1/agents/bob/status", body)
        .await;
    assert_eq!(
        (st, v["status"].as_str()),
        (StatusCode::OK, Some("available"))
    );
    let (_, me) = api.send("GET", "sam", "/api/v1/me", "").await;
    assert_eq!(me["role"], "supervisor");
}
