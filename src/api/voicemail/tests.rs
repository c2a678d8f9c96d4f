//! The voicemail route over `router(state).oneshot(request)` and a real SQLite store: who may
//! hear a recording, what is sent, and the byte ranges a player seeks with.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use tower::ServiceExt;

use crate::api::range::{Unsatisfiable, byte_range};
use crate::api::tests::answer;
use crate::api::{AppState, router};
use crate::interaction::{Event, HangupBy, Interaction, InteractionId, Note};
use crate::metrics;
use crate::queue::agent::{Agent, Role};
use crate::store::{InteractionStore, SqliteStore};

struct Api {
    state: AppState,
    store: Arc<SqliteStore>,
    dir: tempfile::TempDir,
}

fn agent(id: &str, queues: &[&str], role: Role) -> Agent {
    Agent {
        id: id.into(),
        endpoint: format!("sip:{id}@127.0.0.1:5070"),
        queues: queues.iter().map(|q| (*q).to_owned()).collect(),
        token: format!("{id}-secret"),
        role,
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
            agent("alice", &["support"], Role::Agent),
            agent("carl", &["sales"], Role::Agent),
            agent("sam", &[], Role::Supervisor),
        ],
        metrics::install(),
    );
    Api { state, store, dir }
}

impl Api {
    /// `GET …/voicemail` as `agent` (no token for `None`), with an optional `Range`.
    async fn get(
        &self,
        agent: Option<&str>,
        id: InteractionId,
        range: Option<&str>,
    ) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
        let mut req = Request::get(format!("/api/v1/interactions/{id}/voicemail"));
        if let Some(a) = agent {
            req = req.header("authorization", format!("Bearer {a}-secret"));
        }
        if let Some(r) = range {
            req = req.header("range", r);
        }
        let resp = router(self.state.clone())
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let (status, headers) = (resp.status(), resp.headers().clone());
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 24)
            .await
            .unwrap();
        (status, headers, bytes.to_vec())
    }

    /// A caller of `queue` who left a voicemail recorded in `path` (as the call's store
    /// worker writes it: the file first, then its note, then the call's end).
    async fn voicemail(&self, queue: &str, path: &Path) -> InteractionId {
        let now = crate::clock::wall();
        let i = self
            .store
            .create(Interaction::inbound(queue, "15551234567", now))
            .await
            .unwrap();
        self.store
            .apply(i.id, Event::EnteredWorkflow, now)
            .await
            .unwrap();
        let note = Note::VoicemailRecorded {
            secs: 1,
            path: path.to_owned(),
        };
        self.store
            .apply(i.id, Event::Note(note), now)
            .await
            .unwrap();
        let end = Event::CallEnded {
            by: HangupBy::Caller,
            had_callback: false,
            voicemail: true,
            during: None,
        };
        self.store.apply(i.id, end, now).await.unwrap();
        i.id
    }

    /// A one-second WAV as the store worker writes it, at `name` in the temp dir.
    fn wav(&self, name: &str) -> (PathBuf, Vec<u8>) {
        let path = self.dir.path().join(name);
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 8000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(&path, spec).unwrap();
        for n in 0..8000i32 {
            w.write_sample(i16::try_from((n * 37) % 20_000 - 10_000).unwrap())
                .unwrap();
        }
        w.finalize().unwrap();
        let bytes = std::fs::read(&path).unwrap();
        (path, bytes)
    }
}

/// The agents of the queue and supervisors get the file the store names, byte for byte, as
/// `audio/wav`; another queue's agent 403, no token 401.
#[tokio::test]
async fn the_queues_agents_and_supervisors_hear_the_recording_others_do_not() {
    let api = api().await;
    let (path, wav) = api.wav("7.wav");
    let id = api.voicemail("support", &path).await;

    for who in ["alice", "sam"] {
        let (status, headers, body) = api.get(Some(who), id, None).await;
        assert_eq!(status, StatusCode::OK, "{who}");
        assert_eq!(headers["content-type"], "audio/wav");
        assert_eq!(headers["accept-ranges"], "bytes");
        assert_eq!(body, wav, "{who}: the bytes of the file");
    }
    let (status, _, body) = api.get(Some("carl"), id, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_ne!(body, wav);
    let (status, _, body) = api.get(None, id, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_ne!(body, wav);
}

/// 404 for no such interaction, for one without a voicemail, and for a recording whose file
/// was deleted since.
#[tokio::test]
async fn no_interaction_no_voicemail_or_no_file_is_404() {
    let api = api().await;
    let (status, _, _) = api.get(Some("alice"), 999, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let caller = api
        .store
        .create(Interaction::inbound(
            "support",
            "15551234567",
            crate::clock::wall(),
        ))
        .await
        .unwrap();
    let (status, _, _) = api.get(Some("alice"), caller.id, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (path, _) = api.wav("8.wav");
    let id = api.voicemail("support", &path).await;
    std::fs::remove_file(&path).unwrap();
    let (status, _, _) = api.get(Some("alice"), id, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// A player seeks with `Range`: 206 with the bytes asked for and `Content-Range`; a range
/// past the end is 416.
#[tokio::test]
async fn a_byte_range_is_served_as_206() {
    let api = api().await;
    let (path, wav) = api.wav("9.wav");
    let id = api.voicemail("support", &path).await;
    let len = wav.len();

    let (status, headers, body) = api.get(Some("alice"), id, Some("bytes=100-199")).await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(body, wav[100..200]);
    assert_eq!(
        headers["content-range"],
        format!("bytes 100-199/{len}").as_str()
    );
    let (status, _, body) = api.get(Some("alice"), id, Some("bytes=-44")).await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(body, wav[len - 44..]);
    let (status, headers, _) = api
        .get(Some("alice"), id, Some(&format!("bytes={len}-")))
        .await;
    assert_eq!(status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(headers["content-range"], format!("bytes */{len}").as_str());
}

#[test]
fn byte_ranges_follow_rfc_9110() {
    assert_eq!(byte_range("bytes=0-9", 100), Ok(Some((0, 9))));
    assert_eq!(byte_range("bytes=90-", 100), Ok(Some((90, 99))));
    assert_eq!(byte_range("bytes=90-500", 100), Ok(Some((90, 99))));
    assert_eq!(byte_range("bytes=-10", 100), Ok(Some((90, 99))));
    assert_eq!(byte_range("bytes=-500", 100), Ok(Some((0, 99))));
    assert_eq!(byte_range("bytes=100-", 100), Err(Unsatisfiable));
    assert_eq!(byte_range("bytes=-0", 100), Err(Unsatisfiable));
    // Ignored (the whole body): other units, several ranges, nonsense.
    assert_eq!(byte_range("items=0-9", 100), Ok(None));
    assert_eq!(byte_range("bytes=0-9,20-29", 100), Ok(None));
    assert_eq!(byte_range("bytes=9-0", 100), Ok(None));
    assert_eq!(byte_range("bytes=x-", 100), Ok(None));
}

/// A voicemail is called back under its queue's calling window, like a callback: accepting it
/// while the window is closed for the caller is 409 `not_yet_due` with when it opens, which
/// the Home List shows (`callback.callable_from`), and nothing is assigned.
#[tokio::test]
async fn a_voicemail_is_called_back_only_inside_the_calling_window() {
    let api = api().await;
    // A one-hour window two hours from now (UTC; the caller's number is not placed, so the
    // queue's zone applies): closed now, whenever the test runs.
    let now = crate::clock::wall();
    let hour = (now.to_zoned_datetime(jiff::tz::TimeZone::UTC).hour() + 2) % 24;
    let mut flow = crate::workflow::test_support::support_flow();
    flow.callback.calling_window = Some(crate::workflow::window::CallingWindow {
        daily: crate::workflow::hours::parse_range(&format!("{hour:02}:00-{hour:02}:59")).unwrap(),
    });
    flow.callback.time_zone = jiff::tz::TimeZone::UTC;
    let state = api
        .state
        .clone()
        .with_flows(Arc::new(crate::rt::queue_watch::QueueRegistry::new(
            crate::workflow::QueueSet::new([flow]),
            Vec::new(),
        )));
    let (path, _) = api.wav("5.wav");
    let id = api.voicemail("support", &path).await;

    let send = |req: Request<Body>| answer(&state, req);
    let (status, body) = send(
        Request::post(format!("/api/v1/interactions/{id}/accept"))
            .header("authorization", "Bearer alice-secret")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "not_yet_due", "{body}");
    let opens: jiff::Timestamp = body["error"]["not_before"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        opens.to_zoned_datetime(jiff::tz::TimeZone::UTC).hour(),
        hour
    );

    let (status, d) = send(
        Request::get(format!("/api/v1/interactions/{id}"))
            .header("authorization", "Bearer alice-secret")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(d["status"], "open", "{d}");
    assert_eq!(d["callback"]["number"], "15551234567", "{d}");
    assert_eq!(
        d["callback"]["callable_from"]
            .as_str()
            .and_then(|t| t.parse::<jiff::Timestamp>().ok()),
        Some(opens),
        "{d}"
    );
}
