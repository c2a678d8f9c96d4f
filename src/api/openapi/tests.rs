//! The OpenAPI document against the real API: every route the router serves is documented,
//! and every documented operation, called for real (as a supervisor, then without a token,
//! then on an id that does not exist), answers with a documented status whose body validates
//! against the documented schema. Generic: a new handler is checked as soon as it is listed
//! in `ApiDoc`, with no change here (give its request body an `example`).

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};
use tower::ServiceExt;
use utoipa::OpenApi;

use super::ApiDoc;
use crate::api::{AppState, router};
use crate::interaction::{Event, HangupBy, Interaction};
use crate::queue::agent::{Agent, Role};
use crate::store::{InteractionStore, SqliteStore};

fn agent(id: &str, queues: &[&str], role: Role) -> Agent {
    Agent {
        id: id.into(),
        endpoint: format!("sip:{id}@127.0.0.1"),
        queues: queues.iter().map(|q| (*q).to_owned()).collect(),
        token: format!("{id}-secret"),
        role,
    }
}

fn doc() -> Value {
    serde_json::to_value(ApiDoc::openapi()).unwrap()
}

/// A store with an open callback (id 1, with a voicemail recording), a caller in the workflow
/// (2) and a callback connected to alice (3).
async fn fixture() -> (AppState, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn InteractionStore> = Arc::new(
        SqliteStore::open(&format!("sqlite://{}/h.db", dir.path().display()))
            .await
            .unwrap(),
    );
    let now = crate::clock::wall();
    for number in ["15551230001", "15551230002", "15551230003"] {
        let i = store
            .create(Interaction::inbound("support", number, now))
            .await
            .unwrap();
        store
            .apply(i.id, Event::EnteredWorkflow, now)
            .await
            .unwrap();
        if number.ends_with('2') {
            continue;
        }
        let req = Event::CallbackRequested {
            number: number.into(),
            not_before: None,
        };
        store.apply(i.id, req, now).await.unwrap();
        let end = Event::CallEnded {
            by: HangupBy::Hammond,
            had_callback: true,
            voicemail: false,
            during: None,
        };
        store.apply(i.id, end, now).await.unwrap();
        if number.ends_with('3') {
            store.accept(i.id, "alice", now).await.unwrap();
        }
    }
    // Interaction 1 has a voicemail recording too (the audio route's fixture).
    let wav = dir.path().join("1.wav");
    std::fs::write(&wav, b"RIFF\x24\0\0\0WAVEfmt ").unwrap();
    let recorded = crate::interaction::Note::VoicemailRecorded { secs: 0, path: wav };
    store.apply(1, Event::Note(recorded), now).await.unwrap();
    let state = AppState::new(
        store,
        vec![
            agent("alice", &["support"], Role::Agent),
            agent("sam", &[], Role::Supervisor),
        ],
        crate::metrics::install(),
    )
    .with_flows(Arc::new(crate::rt::queue_watch::QueueRegistry::new(
        crate::workflow::QueueSet::new([crate::workflow::test_support::support_flow()]),
        Vec::new(),
    )))
    .with_api_clients(vec![crate::api::ApiClient {
        id: "website".into(),
        token: "website-secret".into(),
        queues: vec!["support".into()],
        rights: vec![crate::config::ApiRight::CreateCallbacks],
    }]);
    (state, dir)
}

/// The routes `api::router` serves, read from its source (`.route("…"`).
fn served_routes() -> Vec<String> {
    let src = include_str!("../mod.rs");
    let mut out = Vec::new();
    let mut rest = src;
    while let Some(k) = rest.find(".route(") {
        rest = &rest[k + 7..];
        let Some(open) = rest.find('"') else { break };
        let after = &rest[open + 1..];
        let Some(close) = after.find('"') else { break };
        out.push(after[..close].to_owned());
        rest = &after[close..];
    }
    out
}

#[test]
fn the_document_is_openapi_3_1_and_covers_every_api_route() {
    let d = doc();
    assert!(
        d["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        d["openapi"]
    );
    let served = served_routes();
    assert!(
        served.iter().any(|r| r == "/api/v1/interactions"),
        "{served:?}"
    );
    for r in served {
        if r.starts_with("/api/") || r == "/healthz" || r == "/metrics" {
            assert!(
                d["paths"].get(&r).is_some(),
                "{r} is served but not in the OpenAPI document (add #[utoipa::path] and list it in ApiDoc)"
            );
        }
    }
}

/// A JSON Schema validator for `schema` (which may `$ref` the document's components).
fn validator(schema: &Value, d: &Value) -> jsonschema::Validator {
    let mut root = schema.clone();
    if let Some(obj) = root.as_object_mut() {
        obj.insert("components".into(), d["components"].clone());
    } else {
        panic!("schema is not an object: {schema}");
    }
    jsonschema::draft202012::new(&root).unwrap_or_else(|e| panic!("bad schema {schema}: {e}"))
}

struct Call {
    method: String,
    path: String,
    op: Value,
}

fn operations(d: &Value) -> Vec<Call> {
    let mut out = Vec::new();
    for (path, item) in d["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if ["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                out.push(Call {
                    method: method.to_uppercase(),
                    path: path.clone(),
                    op: op.clone(),
                });
            }
        }
    }
    out
}

/// The URI with path parameters filled: an agent id under `/agents/`, else `id`.
fn uri(c: &Call, id: &str) -> String {
    let mut uri = c.path.clone();
    while let Some(k) = uri.find('{') {
        let end = uri[k..].find('}').unwrap() + k;
        let value = if c.path.contains("/agents/") {
            "alice"
        } else {
            id
        };
        uri.replace_range(k..=end, value);
    }
    uri
}

fn request(c: &Call, uri: &str, token: Option<&str>) -> Request<Body> {
    let mut req = Request::builder().method(c.method.as_str()).uri(uri);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    for p in c.op["parameters"].as_array().into_iter().flatten() {
        if p["in"] == "header" && p["required"] == true {
            let v = p["example"]
                .as_str()
                .map_or_else(|| "openapi-test-1".to_owned(), str::to_owned);
            req = req.header(p["name"].as_str().unwrap(), v);
        }
    }
    let body = &c.op["requestBody"]["content"]["application/json"];
    let body = if body.is_null() {
        Body::empty()
    } else {
        req = req.header("content-type", "application/json");
        let example = body.get("example").cloned().unwrap_or_else(|| json!({}));
        Body::from(example.to_string())
    };
    req.body(body).unwrap()
}

/// Sends `req` and checks the answer against the operation's documented responses; the status.
async fn check(state: &AppState, c: &Call, req: Request<Body>, d: &Value) -> StatusCode {
    let what = format!("{} {}", c.method, req.uri());
    let resp = router(state.clone()).oneshot(req).await.unwrap();
    let status = resp.status();
    let documented = &c.op["responses"][status.as_str()];
    assert!(
        !documented.is_null(),
        "{what} answered {status}, which its OpenAPI operation does not document"
    );
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let content = documented["content"].as_object();
    let Some(content) = content else {
        return status;
    };
    let (media, spec) = content
        .iter()
        .find(|(m, _)| content_type.starts_with(m.as_str()))
        .unwrap_or_else(|| {
            panic!(
                "{what}: content type {content_type:?} is not among {:?}",
                content.keys()
            )
        });
    if media != "application/json" {
        // An event stream never ends: its head is all there is to check.
        return status;
    }
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 22)
        .await
        .unwrap();
    let body: Value = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
        panic!(
            "{what}: not JSON ({e}): {}",
            String::from_utf8_lossy(&bytes)
        )
    });
    let schema = &spec["schema"];
    if !schema.is_null() {
        let v = validator(schema, d);
        let errors: Vec<String> = v
            .iter_errors(&body)
            .map(|e| format!("{e} at {}", e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{what} {status}: the body does not match its documented schema:\n{}\nbody: {body}\nschema: {schema}",
            errors.join("\n")
        );
    }
    status
}

/// Issue 17: real responses validate against the document, for every documented operation.
#[tokio::test]
async fn every_documented_route_answers_as_documented() {
    let d = doc();
    let ops = operations(&d);
    assert!(ops.len() >= 14, "{} operations", ops.len());
    for c in &ops {
        let secured = c.op["security"].is_array() || d["security"].is_array();
        // A fresh store per operation: one operation's writes never decide another's answer.
        let (state, _dir) = fixture().await;
        // Booking a callback from outside a call is an API client's right, not an agent's.
        let token = if c.path == "/api/v1/callbacks" {
            "website-secret"
        } else {
            "sam-secret"
        };
        let status = check(&state, c, request(c, &uri(c, "1"), Some(token)), &d).await;
        // A browser phone's call actions need a call ringing on a page (tests/it/webrtc.rs
        // drives them in Chromium); the fixture has none: their documented 404.
        if c.path.starts_with("/api/v1/phone/calls/") {
            assert_eq!(status, StatusCode::NOT_FOUND, "{} {}", c.method, c.path);
        } else {
            assert!(
                status.is_success(),
                "{} {} as a supervisor on the fixture answered {status}: give it an example that succeeds",
                c.method,
                c.path
            );
        }
        if secured {
            let status = check(&state, c, request(c, &uri(c, "1"), None), &d).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{} {}", c.method, c.path);
        }
        if c.path.contains("{id}") && !c.path.contains("/agents/") {
            let status = check(
                &state,
                c,
                request(c, &uri(c, "999"), Some("sam-secret")),
                &d,
            )
            .await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{} {}", c.method, c.path);
        }
    }
}

/// Agents see less than supervisors, and their refusals are documented too.
#[tokio::test]
async fn an_agents_refusals_are_documented() {
    let d = doc();
    let (state, _dir) = fixture().await;
    for c in operations(&d) {
        if c.path == "/api/v1/wallboard" || c.path.ends_with("/assign") {
            let status = check(
                &state,
                &c,
                request(&c, &uri(&c, "1"), Some("alice-secret")),
                &d,
            )
            .await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{}", c.path);
        }
    }
}

/// The validation can fail: a body that breaks the documented shape is caught.
#[test]
fn a_body_off_the_schema_is_refused() {
    let d = doc();
    let schema = &d["paths"]["/api/v1/interactions/{id}/accept"]["post"]["responses"]["200"]["content"]
        ["application/json"]["schema"];
    let v = validator(schema, &d);
    let mut good = Interaction::inbound("support", "+15550001", crate::clock::wall());
    good.id = 7;
    let good = good.to_json(Some(1));
    assert!(v.is_valid(&good), "{good}");
    let mut bad = good.clone();
    bad["status"] = json!("lost");
    assert!(!v.is_valid(&bad));
    let mut missing = good;
    missing.as_object_mut().unwrap().remove("queue");
    assert!(!v.is_valid(&missing));
    let stats = &d["components"]["schemas"]["Stats"];
    assert!(
        stats["required"]
            .as_array()
            .unwrap()
            .contains(&json!("queues")),
        "{stats}"
    );
}
