//! The SSE replay's bounds, over `router(state).oneshot(request)` and a real SQLite store: the
//! body is read frame by frame, as slowly as a test likes.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, BodyDataStream};
use axum::http::{Request, StatusCode};
use serde_json::Value;
use tokio::sync::Semaphore;
use tokio_stream::StreamExt;
use tower::ServiceExt;

use super::{REPLAY_MAX, REPLAY_PAGE, Resume};
use crate::api::{AppState, router};
use crate::interaction::Interaction;
use crate::metrics;
use crate::queue::agent::Agent;
use crate::store::testing::{Hooked, Hooks};
use crate::store::{InteractionStore, SqliteStore};

fn state(store: Arc<dyn InteractionStore>) -> AppState {
    let alice = Agent {
        id: "alice".into(),
        endpoint: "sip:alice@127.0.0.1:5070".into(),
        queues: vec!["support".into()],
        token: "alice-secret".into(),
        role: crate::queue::agent::Role::Agent,
    };
    let sam = Agent {
        id: "sam".into(),
        endpoint: "sip:sam@127.0.0.1:5079".into(),
        queues: vec![],
        token: "sam-secret".into(),
        role: crate::queue::agent::Role::Supervisor,
    };
    AppState::new(store, vec![alice, sam], metrics::install())
}

/// `n` new interactions of `queue` (one `created` event each), written at once.
async fn created(store: &Arc<SqliteStore>, queue: &str, n: usize) {
    for chunk in (0..n).collect::<Vec<_>>().chunks(200) {
        created_at_once(store, queue, chunk.len()).await;
    }
}

/// `n` creates at once.
async fn created_at_once(store: &Arc<SqliteStore>, queue: &str, n: usize) {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let s = store.clone();
            let queue = queue.to_owned();
            tokio::spawn(async move {
                s.create(Interaction::inbound(&queue, "1", crate::clock::wall()))
                    .await
                    .unwrap()
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

/// `n` interactions of `queue` that came and went (two events each: created, call_ended).
async fn came_and_went(store: &Arc<SqliteStore>, queue: &str, n: usize) {
    for chunk in (0..n).collect::<Vec<_>>().chunks(200) {
        came_and_went_at_once(store, queue, chunk.len()).await;
    }
}

/// `n` at once.
async fn came_and_went_at_once(store: &Arc<SqliteStore>, queue: &str, n: usize) {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let s = store.clone();
            let queue = queue.to_owned();
            tokio::spawn(async move {
                let now = crate::clock::wall();
                let i = s
                    .create(Interaction::inbound(&queue, "1", now))
                    .await
                    .unwrap();
                let end = crate::interaction::Event::CallEnded {
                    by: crate::interaction::HangupBy::Caller,
                    had_callback: false,
                    voicemail: false,
                    during: None,
                };
                s.apply(i.id, end, now).await.unwrap();
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

/// Opens the stream as alice, resuming after `last`; `None` if no response came in 5 s.
async fn open(state: &AppState, last: Option<i64>) -> Option<Sse> {
    open_as(state, "alice", last).await
}

/// [`open`] as `who`.
async fn open_as(state: &AppState, who: &str, last: Option<i64>) -> Option<Sse> {
    let mut req =
        Request::get("/api/v1/events").header("authorization", format!("Bearer {who}-secret"));
    if let Some(l) = last {
        req = req.header("last-event-id", l.to_string());
    }
    let req = req.body(Body::empty()).unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(5), router(state.clone()).oneshot(req))
        .await
        .ok()?
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    Some(Sse {
        body: resp.into_body().into_data_stream(),
        buf: String::new(),
    })
}

/// A response body read as SSE frames.
struct Sse {
    body: BodyDataStream,
    buf: String,
}

/// One frame: id, event name, data.
type Frame = (Option<i64>, String, Value);

impl Sse {
    /// The next `n` frames with data; fewer if the stream ends or 5 s pass.
    async fn frames(&mut self, n: usize) -> Vec<Frame> {
        let mut out = Vec::new();
        while out.len() < n {
            if let Some(end) = self.buf.find("\n\n") {
                let frame: String = self.buf.drain(..end + 2).collect();
                let (mut id, mut event, mut data) = (None, String::new(), None);
                for line in frame.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        id = v.trim().parse().ok();
                    } else if let Some(v) = line.strip_prefix("event:") {
                        event = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data = serde_json::from_str(v.trim()).ok();
                    }
                }
                if let Some(data) = data {
                    out.push((id, event, data));
                }
                continue;
            }
            match tokio::time::timeout(Duration::from_secs(5), self.body.next()).await {
                Ok(Some(Ok(bytes))) => self.buf.push_str(std::str::from_utf8(&bytes).unwrap()),
                _ => break,
            }
        }
        out
    }

    /// Whether the stream ends (within 5 s) with nothing more to say.
    async fn ends(&mut self) -> bool {
        matches!(
            tokio::time::timeout(Duration::from_secs(5), self.body.next()).await,
            Ok(None)
        )
    }
}

async fn sqlite() -> (Arc<SqliteStore>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        SqliteStore::open(&format!("sqlite://{}/h.db", dir.path().display()))
            .await
            .unwrap(),
    );
    (store, dir)
}

/// A resume streams the log a page at a time as the client reads it: the first page is on the
/// wire while the second is still unread (the whole log used to be loaded into memory before
/// the response began, so `Last-Event-ID: 0` could take the process down).
#[tokio::test]
async fn the_replay_is_streamed_a_page_at_a_time() {
    let (store, _dir) = sqlite().await;
    let total = REPLAY_PAGE as usize * 2 + 100;
    created(&store, "support", total).await;
    created(&store, "sales", 10).await; // not alice's
    // Every page after the first waits for the test's permission.
    let gate = Arc::new(Semaphore::new(0));
    let g = gate.clone();
    let hooked = Hooked {
        inner: store.clone(),
        hooks: Hooks {
            before_events_since: Some(Box::new(move |_, after| {
                let g = g.clone();
                Box::pin(async move {
                    if after > 0 {
                        g.acquire().await.unwrap().forget();
                    }
                })
            })),
            ..Hooks::default()
        },
    };
    let st = state(Arc::new(hooked));
    let mut sse = open(&st, Some(0))
        .await
        .expect("the response starts before the log is read to its end");
    let first = sse.frames(REPLAY_PAGE as usize).await;
    assert_eq!(first.len(), REPLAY_PAGE as usize);
    gate.add_permits(10);
    let rest = sse.frames(total - first.len()).await;
    let ids: Vec<i64> = first.iter().chain(&rest).filter_map(|f| f.0).collect();
    assert_eq!(
        ids,
        (1..=total as i64).collect::<Vec<_>>(),
        "in order, once"
    );
    // Then live.
    created(&store, "support", 1).await;
    let live = sse.frames(1).await;
    assert_eq!(live[0].0, Some(total as i64 + 11));
    assert_eq!(live[0].1, "created");
}

/// A client further behind than the cap is not replayed the log: one `reset` event (reload
/// the Home List; its id is the newest event, where the next resume starts), then live events.
#[tokio::test]
async fn a_client_too_far_behind_gets_a_reset_then_live_events() {
    let (store, _dir) = sqlite().await;
    let newest = REPLAY_MAX + 20;
    came_and_went(&store, "support", newest as usize / 2).await;
    let st = state(store.clone());
    let mut sse = open(&st, Some(1)).await.unwrap();
    let first = sse.frames(1).await;
    assert_eq!(first[0].1, "reset", "{first:?}");
    assert_eq!(first[0].0, Some(newest));
    assert_eq!(first[0].2["reason"], "too_far_behind");
    assert_eq!(first[0].2["last_event_id"], newest);
    created(&store, "support", 1).await;
    let next = sse.frames(1).await;
    assert_eq!(
        (next[0].0, next[0].1.as_str()),
        (Some(newest + 1), "created")
    );
}

/// What retention pruned cannot be replayed: a client behind it gets a reset rather than a
/// replay with a hole in it.
#[tokio::test]
async fn a_client_behind_the_pruned_log_gets_a_reset() {
    let (store, _dir) = sqlite().await;
    created(&store, "support", 10).await;
    let later = crate::clock::wall() + jiff::SignedDuration::from_hours(1);
    assert_eq!(
        store.prune_events(later).await.unwrap(),
        9,
        "the newest stays"
    );
    let st = state(store.clone());
    let mut sse = open(&st, Some(3)).await.unwrap();
    let first = sse.frames(1).await;
    assert_eq!(
        (first[0].0, first[0].1.as_str(), &first[0].2["reason"]),
        (Some(10), "reset", &Value::from("pruned"))
    );
    // A client that saw the newest event resumes live, with no reset.
    let mut sse = open(&st, Some(10)).await.unwrap();
    created(&store, "support", 1).await;
    let next = sse.frames(1).await;
    assert_eq!((next[0].0, next[0].1.as_str()), (Some(11), "created"));
}

/// A client that cannot keep up with the live events (the channel's 1,024 overflow) is cut
/// off, so it resumes from the log; presence changes alone used to keep the stream open,
/// the missed changes never coming.
#[tokio::test]
async fn a_lagging_client_is_cut_off_to_resume() {
    let (store, _dir) = sqlite().await;
    let st = state(store.clone());
    let mut sse = open(&st, None).await.unwrap();
    created(&store, "support", 1_100).await;
    assert!(sse.ends().await, "the stream must end");
}

#[test]
fn resume_plans() {
    let plan = Resume::plan;
    assert_eq!(plan(0, None), Resume::Live { after: 0 });
    assert_eq!(
        plan(5, None),
        Resume::Reset {
            newest: 0,
            reason: "unknown"
        }
    );
    assert_eq!(plan(9, Some((1, 9))), Resume::Live { after: 9 });
    assert_eq!(plan(0, Some((1, 9))), Resume::Replay { after: 0, upto: 9 });
    assert_eq!(plan(4, Some((5, 9))), Resume::Replay { after: 4, upto: 9 });
    assert_eq!(
        plan(3, Some((5, 9))),
        Resume::Reset {
            newest: 9,
            reason: "pruned"
        }
    );
    assert_eq!(
        plan(12, Some((5, 9))),
        Resume::Reset {
            newest: 9,
            reason: "unknown"
        }
    );
    let newest = 100 + REPLAY_MAX;
    assert_eq!(
        plan(100, Some((1, newest))),
        Resume::Replay {
            after: 100,
            upto: newest
        }
    );
    assert_eq!(
        plan(99, Some((1, newest))),
        Resume::Reset {
            newest,
            reason: "too_far_behind"
        }
    );
}

/// Issue 17: a supervisor (in no queue) hears every queue's events, replayed and live; an
/// agent only its own queues'.
#[tokio::test]
async fn a_supervisor_hears_every_queue() {
    let (store, _dir) = sqlite().await;
    let st = state(store.clone());
    created(&store, "sales", 1).await;
    created(&store, "support", 1).await;
    let mut sam = open_as(&st, "sam", Some(0)).await.unwrap();
    let mut alice = open_as(&st, "alice", Some(0)).await.unwrap();
    created(&store, "billing", 1).await;
    let queues = |frames: Vec<Frame>| -> Vec<String> {
        frames
            .iter()
            .map(|(_, _, d)| {
                d["interaction"]["queue"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect()
    };
    assert_eq!(queues(sam.frames(3).await), ["sales", "support", "billing"]);
    assert_eq!(queues(alice.frames(2).await), ["support"]);
}
