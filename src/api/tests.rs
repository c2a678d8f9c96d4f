//! API tests over a real socket and a real SQLite store.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;
use crate::interaction::{Event, HangupBy, Interaction};
use crate::metrics;
use crate::store::{InteractionStore, SqliteStore};

struct Server {
    addr: SocketAddr,
    store: Arc<SqliteStore>,
    accepted: mpsc::Receiver<Accepted>,
    _dir: tempfile::TempDir,
}

fn agent(id: &str, queues: &[&str]) -> Agent {
    Agent {
        id: id.into(),
        endpoint: format!("sip:{id}@127.0.0.1:5070"),
        queues: queues.iter().map(|q| (*q).to_owned()).collect(),
        token: format!("{id}-secret"),
        role: crate::queue::agent::Role::Agent,
    }
}

async fn server_with(extra: HealthExtra) -> Server {
    server_full(extra, |s| s).await
}

async fn server_full(
    extra: HealthExtra,
    wrap: impl FnOnce(Arc<SqliteStore>) -> Arc<dyn InteractionStore>,
) -> Server {
    server_inner(extra, wrap, false).await
}

/// Served as `app.rs` serves it: with the client address, so the lock-out applies.
async fn server_with_client_ips() -> Server {
    server_inner(Arc::new(Vec::new), |s| s, true).await
}

async fn server_inner(
    extra: HealthExtra,
    wrap: impl FnOnce(Arc<SqliteStore>) -> Arc<dyn InteractionStore>,
    client_ips: bool,
) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        SqliteStore::open(&format!("sqlite://{}/h.db", dir.path().display()))
            .await
            .unwrap(),
    );
    let (tx, accepted) = mpsc::channel(16);
    let agents = vec![
        agent("alice", &["support"]),
        agent("bob", &["support", "sales"]),
        agent("carol", &["sales"]),
    ];
    let state = AppState::new(wrap(store.clone()), agents, metrics::install())
        .with_accepted(tx)
        .with_health_extra(extra);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    if client_ips {
        let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
        tokio::spawn(async move { axum::serve(listener, app).await });
    } else {
        tokio::spawn(async move { axum::serve(listener, router(state)).await });
    }
    Server {
        addr,
        store,
        accepted,
        _dir: dir,
    }
}

async fn server() -> Server {
    server_with(Arc::new(Vec::new)).await
}

/// One HTTP/1.1 request with `Connection: close`; returns status and the body (JSON when it parses).
async fn req(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, Value) {
    let (status, text) = raw(addr, method, path, token, body).await;
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn raw(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
    if let Some(t) = token {
        head.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    let body = body.unwrap_or("");
    head.push_str(&format!(
        "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    ));
    s.write_all(head.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8(out).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    assert!(
        !head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "client cannot dechunk"
    );
    (status, body.to_owned())
}

const ALICE: Option<&str> = Some("alice-secret");
const BOB: Option<&str> = Some("bob-secret");
const CAROL: Option<&str> = Some("carol-secret");

fn now() -> jiff::Timestamp {
    crate::clock::wall()
}

async fn inbound(s: &SqliteStore, queue: &str) -> i64 {
    s.create(Interaction::inbound(queue, "+15550001", now()))
        .await
        .unwrap()
        .id
}

async fn open_callback(s: &SqliteStore, queue: &str) -> i64 {
    let id = inbound(s, queue).await;
    s.apply(id, Event::EnteredWorkflow, now()).await.unwrap();
    s.apply(
        id,
        Event::CallbackRequested {
            number: "15551234567".into(),
            not_before: None,
        },
        now(),
    )
    .await
    .unwrap();
    let end = Event::CallEnded {
        by: HangupBy::Hammond,
        had_callback: true,
        voicemail: false,
        during: None,
    };
    s.apply(id, end, now()).await.unwrap();
    id
}

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("<none>")
}

#[tokio::test]
async fn auth_matrix() {
    let srv = server().await;
    let a = srv.addr;
    let support = inbound(&srv.store, "support").await;
    let sales = inbound(&srv.store, "sales").await;
    for (method, path) in [
        ("GET", "/api/v1/interactions".to_owned()),
        ("GET", format!("/api/v1/interactions/{support}")),
        ("POST", format!("/api/v1/interactions/{support}/accept")),
        ("POST", format!("/api/v1/interactions/{support}/close")),
        ("GET", "/api/v1/agents".to_owned()),
        ("PUT", "/api/v1/agents/alice/status".to_owned()),
        ("GET", "/api/v1/events".to_owned()),
    ] {
        let (st, v) = req(a, method, &path, None, None).await;
        assert_eq!(
            (st, code(&v)),
            (401, "unauthorized"),
            "{method} {path} without token"
        );
        let (st, _) = req(a, method, &path, Some("alice-secreT"), None).await;
        assert_eq!(st, 401, "{method} {path} bad token");
    }
    // Wrong scheme.
    let mut s = TcpStream::connect(a).await.unwrap();
    s.write_all(b"GET /api/v1/agents HTTP/1.1\r\nHost: t\r\nConnection: close\r\nAuthorization: Basic YWxpY2U6eA==\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    assert!(out.starts_with("HTTP/1.1 401"), "{out}");

    // 403: another queue's interaction, queue filter, accept, close.
    let (st, v) = req(
        a,
        "GET",
        &format!("/api/v1/interactions/{sales}"),
        ALICE,
        None,
    )
    .await;
    assert_eq!((st, code(&v)), (403, "forbidden"));
    let (st, _) = req(a, "GET", "/api/v1/interactions?queue=sales", ALICE, None).await;
    assert_eq!(st, 403);
    let (st, _) = req(
        a,
        "POST",
        &format!("/api/v1/interactions/{sales}/accept"),
        ALICE,
        None,
    )
    .await;
    assert_eq!(st, 403);
    let (st, _) = req(
        a,
        "POST",
        &format!("/api/v1/interactions/{sales}/close"),
        ALICE,
        Some(r#"{"disposition":"x"}"#),
    )
    .await;
    assert_eq!(st, 403);
    // 404s.
    let (st, v) = req(a, "GET", "/api/v1/interactions/9999", ALICE, None).await;
    assert_eq!((st, code(&v)), (404, "not_found"));
    let (st, _) = req(a, "POST", "/api/v1/interactions/abc/accept", ALICE, None).await;
    assert_eq!(st, 404);
    let (st, _) = req(a, "GET", "/api/v1/nope", ALICE, None).await;
    assert_eq!(st, 404);
    // 422s: unknown fields, bad values, bad JSON.
    for (path, body) in [
        (
            format!("/api/v1/interactions/{support}/accept"),
            r#"{"agent":"bob"}"#,
        ),
        (format!("/api/v1/interactions/{support}/accept"), "not json"),
        (
            format!("/api/v1/interactions/{support}/close"),
            r#"{"disposition":"x","extra":1}"#,
        ),
        (
            format!("/api/v1/interactions/{support}/close"),
            r#"{"disposition":"x","reason":"bogus"}"#,
        ),
        (format!("/api/v1/interactions/{support}/close"), ""),
    ] {
        let (st, v) = req(a, "POST", &path, ALICE, Some(body)).await;
        assert_eq!((st, code(&v)), (422, "invalid_request"), "{path} {body}");
    }
    for q in [
        "status=nope",
        "sub_type=x",
        "colour=red",
        "limit=0",
        "cursor=zz",
    ] {
        let (st, _) = req(a, "GET", &format!("/api/v1/interactions?{q}"), ALICE, None).await;
        assert_eq!(st, 422, "{q}");
    }
    // Body size limit.
    let big = format!(r#"{{"disposition":"{}"}}"#, "x".repeat(BODY_LIMIT + 10));
    let (st, v) = req(
        a,
        "POST",
        &format!("/api/v1/interactions/{support}/close"),
        ALICE,
        Some(&big),
    )
    .await;
    assert_eq!((st, code(&v)), (413, "payload_too_large"));
    // Nothing above changed the interaction.
    assert_eq!(
        srv.store
            .get(support)
            .await
            .unwrap()
            .listed
            .interaction
            .status,
        crate::interaction::Status::Open
    );
}

#[tokio::test]
async fn accept_then_conflict_and_the_dialer_hears_it() {
    let mut srv = server().await;
    let id = open_callback(&srv.store, "support").await;
    let (st, v) = req(
        srv.addr,
        "POST",
        &format!("/api/v1/interactions/{id}/accept"),
        ALICE,
        Some("{}"),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["status"], "connected");
    assert_eq!(v["assigned_agent"], "alice");
    assert_eq!(v["id"], id);
    assert_eq!(v["callback"]["number"], "15551234567");
    let acc = srv.accepted.try_recv().unwrap();
    assert_eq!((acc.interaction.id, acc.agent.id.as_str()), (id, "alice"));
    assert_eq!(acc.agent.endpoint, "sip:alice@127.0.0.1:5070");

    let (st, v) = req(
        srv.addr,
        "POST",
        &format!("/api/v1/interactions/{id}/accept"),
        BOB,
        None,
    )
    .await;
    assert_eq!((st, code(&v)), (409, "conflict"));
    // A caller in the workflow (bot) cannot be picked either.
    let bot = inbound(&srv.store, "support").await;
    srv.store
        .apply(bot, Event::EnteredWorkflow, now())
        .await
        .unwrap();
    let (st, _) = req(
        srv.addr,
        "POST",
        &format!("/api/v1/interactions/{bot}/accept"),
        ALICE,
        None,
    )
    .await;
    assert_eq!(st, 409);
    assert!(srv.accepted.try_recv().is_err());
}

#[tokio::test]
async fn close_rules() {
    let srv = server().await;
    let a = srv.addr;
    let id = open_callback(&srv.store, "support").await;
    req(
        a,
        "POST",
        &format!("/api/v1/interactions/{id}/accept"),
        ALICE,
        None,
    )
    .await;
    // Bob shares the queue but is not assigned.
    let (st, _) = req(
        a,
        "POST",
        &format!("/api/v1/interactions/{id}/close"),
        BOB,
        Some(r#"{"disposition":"x"}"#),
    )
    .await;
    assert_eq!(st, 403);
    let (st, v) = req(
        a,
        "POST",
        &format!("/api/v1/interactions/{id}/close"),
        ALICE,
        Some(r#"{"disposition":"resolved"}"#),
    )
    .await;
    assert_eq!((st, v["status"].as_str()), (200, Some("closed")));
    let (_, d) = req(a, "GET", &format!("/api/v1/interactions/{id}"), ALICE, None).await;
    let closed = d["feed"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (closed["kind"].as_str(), closed["reason"].as_str()),
        (Some("closed"), Some("completed"))
    );
    assert_eq!(closed["disposition"], "resolved");
    let (st, _) = req(
        a,
        "POST",
        &format!("/api/v1/interactions/{id}/close"),
        ALICE,
        Some(r#"{"disposition":"x"}"#),
    )
    .await;
    assert_eq!(st, 409);
    // An open one may be closed by any agent of its queue, with a reason.
    let open = open_callback(&srv.store, "support").await;
    let (st, _) = req(
        a,
        "POST",
        &format!("/api/v1/interactions/{open}/close"),
        BOB,
        Some(r#"{"disposition":"dup","reason":"expired"}"#),
    )
    .await;
    assert_eq!(st, 200);
    let i = srv.store.get(open).await.unwrap().listed.interaction;
    assert_eq!(
        i.close_reason,
        Some(crate::interaction::CloseReason::Expired)
    );
}

#[tokio::test]
async fn list_filters_positions_and_pages() {
    let srv = server().await;
    let a = srv.addr;
    let i1 = inbound(&srv.store, "support").await;
    let i2 = open_callback(&srv.store, "support").await;
    let _s = inbound(&srv.store, "sales").await;
    let i3 = inbound(&srv.store, "support").await;
    srv.store
        .apply(i3, Event::EnteredWorkflow, now())
        .await
        .unwrap();

    let ids = |v: &Value| -> Vec<i64> {
        v["interactions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_i64().unwrap())
            .collect()
    };
    let (st, v) = req(a, "GET", "/api/v1/interactions", ALICE, None).await;
    assert_eq!(st, 200);
    assert_eq!(
        ids(&v),
        [i1, i2, i3],
        "alice sees support only, oldest first"
    );
    let list = v["interactions"].as_array().unwrap();
    // The line: open, open callback, then the caller in the workflow (bot), by arrival.
    assert_eq!(list[0]["position"], 1);
    assert_eq!(list[1]["position"], 2);
    assert_eq!(list[2]["position"], 3);
    assert!(list[0]["callback"].is_null());
    assert_eq!(
        list[1]["callback"],
        json!({"number": "15551234567", "attempts": 0, "not_before": null})
    );
    assert!(v.get("next_cursor").is_none());

    let (_, v) = req(
        a,
        "GET",
        "/api/v1/interactions?status=open&sub_type=callback",
        ALICE,
        None,
    )
    .await;
    assert_eq!(ids(&v), [i2]);
    let (_, v) = req(
        a,
        "GET",
        "/api/v1/interactions?status=bot&queue=support",
        ALICE,
        None,
    )
    .await;
    assert_eq!(ids(&v), [i3]);
    let (_, v) = req(a, "GET", "/api/v1/interactions", BOB, None).await;
    assert_eq!(ids(&v).len(), 4);
    let (_, v) = req(a, "GET", "/api/v1/interactions", CAROL, None).await;
    assert_eq!(ids(&v).len(), 1);

    let (_, p1) = req(a, "GET", "/api/v1/interactions?limit=2", ALICE, None).await;
    assert_eq!(ids(&p1), [i1, i2]);
    let cursor = p1["next_cursor"].as_str().unwrap().to_owned();
    let (_, p2) = req(
        a,
        "GET",
        &format!("/api/v1/interactions?limit=2&cursor={cursor}"),
        ALICE,
        None,
    )
    .await;
    assert_eq!(ids(&p2), [i3]);
    assert!(p2.get("next_cursor").is_none());
}

#[tokio::test]
async fn detail_has_the_feed() {
    let srv = server().await;
    let id = inbound(&srv.store, "support").await;
    srv.store
        .apply(id, Event::EnteredWorkflow, now())
        .await
        .unwrap();
    let dtmf = Event::Dtmf {
        digit: '1',
        method: crate::media::dtmf::DtmfMethod::Rfc4733,
    };
    srv.store.apply(id, dtmf, now()).await.unwrap();
    let (st, v) = req(
        srv.addr,
        "GET",
        &format!("/api/v1/interactions/{id}"),
        ALICE,
        None,
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(v["status"], "bot");
    assert_eq!(v["communication_type"], "call");
    assert_eq!(v["sub_type"], "inbound");
    assert_eq!(v["customer_number"], "+15550001");
    let feed = v["feed"].as_array().unwrap();
    let kinds: Vec<_> = feed.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["created", "status_changed", "dtmf"]);
    assert_eq!(feed[2]["digit"], "1");
    assert_eq!(feed[2]["method"], "rfc4733");
    assert!(feed[2]["at"].as_str().unwrap().ends_with('Z'));
    assert!(feed[2]["text"].is_string());
}

#[tokio::test]
async fn agents_and_presence() {
    let srv = server().await;
    let a = srv.addr;
    let (st, v) = req(a, "GET", "/api/v1/agents", BOB, None).await;
    assert_eq!(st, 200);
    assert_eq!(
        v["agents"][0],
        json!({"id": "alice", "queues": ["support"], "role": "agent", "status": "away"})
    );
    assert!(!v.to_string().contains("secret"), "tokens never leave");
    let (st, v) = req(
        a,
        "PUT",
        "/api/v1/agents/alice/status",
        ALICE,
        Some(r#"{"status":"available"}"#),
    )
    .await;
    assert_eq!((st, v["status"].as_str()), (200, Some("available")));
    let (st, _) = req(
        a,
        "PUT",
        "/api/v1/agents/alice/status",
        BOB,
        Some(r#"{"status":"away"}"#),
    )
    .await;
    assert_eq!(st, 403);
    let (st, _) = req(
        a,
        "PUT",
        "/api/v1/agents/zed/status",
        BOB,
        Some(r#"{"status":"away"}"#),
    )
    .await;
    assert_eq!(st, 404);
    let (st, _) = req(
        a,
        "PUT",
        "/api/v1/agents/alice/status",
        ALICE,
        Some(r#"{"status":"busy"}"#),
    )
    .await;
    assert_eq!(st, 422);
    let (_, v) = req(a, "GET", "/api/v1/agents", BOB, None).await;
    assert_eq!(v["agents"][0]["status"], "available");
}

#[tokio::test]
async fn healthz_and_metrics() {
    let srv = server().await;
    let (st, v) = req(srv.addr, "GET", "/healthz", None, None).await;
    assert_eq!((st, v), (200, json!({"status": "ok"})));
    let sick = server_with(Arc::new(|| {
        vec!["queues/support.toml:3:1: bad key".to_owned()]
    }))
    .await;
    let (st, v) = req(sick.addr, "GET", "/healthz", None, None).await;
    assert_eq!(st, 503);
    assert_eq!(v["problems"][0], "queues/support.toml:3:1: bad key");

    open_callback(&srv.store, "support").await;
    ::metrics::counter!(metrics::DTMF_DIGITS, "method" => "rfc4733").increment(1);
    let (st, text) = raw(srv.addr, "GET", "/metrics", None, None).await;
    assert_eq!(st, 200);
    for name in [
        metrics::INTERACTIONS,
        metrics::CALLBACKS_PENDING,
        metrics::DTMF_DIGITS,
        metrics::ACTIVE_CALLS,
    ] {
        assert!(text.contains(name), "{name} missing from:\n{text}");
    }
    assert!(
        text.contains(r#"hammond_interactions{status="open",sub_type="callback"}"#),
        "{text}"
    );
    // Issue 17's alerts: the store's failed writes, and how long a due callback has waited.
    assert!(text.contains(metrics::STORE_WRITE_FAILURES), "{text}");
    let overdue = text
        .lines()
        .find(|l| l.starts_with(r#"hammond_callback_oldest_due_seconds{queue="support"}"#))
        .unwrap_or_else(|| panic!("no overdue gauge for support:\n{text}"));
    let secs: f64 = overdue.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(secs > 0.0 && secs < 60.0, "{overdue}");
}

/// Reads SSE frames from a raw (chunked) response until `want` events with an id have come.
async fn read_events(
    s: &mut TcpStream,
    want: usize,
    buf: &mut String,
) -> Vec<(i64, String, Value)> {
    let mut chunk = [0u8; 8192];
    loop {
        let evs = parse_sse(buf);
        if evs.len() >= want {
            return evs;
        }
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut chunk))
            .await
            .expect("sse timed out")
            .unwrap();
        assert!(n > 0, "stream closed: {buf}");
        buf.push_str(std::str::from_utf8(&chunk[..n]).unwrap());
    }
}

fn parse_sse(buf: &str) -> Vec<(i64, String, Value)> {
    let mut out = Vec::new();
    let (mut id, mut ev) = (None, String::new());
    for line in buf.lines() {
        if let Some(v) = line
            .strip_prefix("id: ")
            .or_else(|| line.strip_prefix("id:"))
        {
            id = v.trim().parse().ok();
        } else if let Some(v) = line
            .strip_prefix("event: ")
            .or_else(|| line.strip_prefix("event:"))
        {
            ev = v.trim().to_owned();
        } else if let Some(v) = line
            .strip_prefix("data: ")
            .or_else(|| line.strip_prefix("data:"))
            && let Some(i) = id.take()
        {
            out.push((i, ev.clone(), serde_json::from_str(v).unwrap()));
        }
    }
    out
}

async fn open_sse(addr: SocketAddr, token: &str, last: Option<i64>) -> (TcpStream, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut head =
        format!("GET /api/v1/events HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {token}\r\n");
    if let Some(l) = last {
        head.push_str(&format!("Last-Event-ID: {l}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).await.unwrap();
    // Wait for the response head so the subscription exists before the test writes.
    let mut buf = String::new();
    let mut chunk = [0u8; 4096];
    while !buf.contains("\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut chunk))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0);
        buf.push_str(std::str::from_utf8(&chunk[..n]).unwrap());
    }
    assert!(buf.starts_with("HTTP/1.1 200"), "{buf}");
    assert!(
        buf.to_ascii_lowercase()
            .contains("content-type: text/event-stream"),
        "{buf}"
    );
    let body = buf.split_once("\r\n\r\n").unwrap().1.to_owned();
    (s, body)
}

#[tokio::test]
async fn sse_delivers_a_status_change_quickly() {
    let srv = server().await;
    let id = open_callback(&srv.store, "support").await;
    let (mut s, mut buf) = open_sse(srv.addr, "alice-secret", None).await;
    let t0 = crate::clock::now();
    let (st, _) = req(
        srv.addr,
        "POST",
        &format!("/api/v1/interactions/{id}/accept"),
        ALICE,
        None,
    )
    .await;
    assert_eq!(st, 200);
    let evs = read_events(&mut s, 1, &mut buf).await;
    let elapsed = t0.elapsed();
    assert!(elapsed < Duration::from_millis(100), "took {elapsed:?}");
    let (_, kind, data) = &evs[0];
    assert_eq!(kind, "accepted");
    assert_eq!(data["interaction"]["id"], id);
    assert_eq!(data["interaction"]["status"], "connected");
    assert!(
        data["feed"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "assigned")
    );
}

#[tokio::test]
async fn sse_resume_misses_nothing_and_repeats_nothing() {
    let srv = server().await;
    let id = inbound(&srv.store, "support").await;
    let _other = inbound(&srv.store, "sales").await; // not alice's: filtered out
    let (mut s, mut buf) = open_sse(srv.addr, "alice-secret", Some(0)).await;
    let first = read_events(&mut s, 1, &mut buf).await;
    assert_eq!(first.len(), 1, "replay of the support interaction only");
    assert_eq!(first[0].1, "created");
    srv.store
        .apply(id, Event::EnteredWorkflow, now())
        .await
        .unwrap();
    let evs = read_events(&mut s, 2, &mut buf).await;
    let seen = evs[1].0;
    drop(s);

    // While disconnected: three more changes, while a writer keeps going during the reconnect.
    for d in ['1', '2', '3'] {
        let e = Event::Dtmf {
            digit: d,
            method: crate::media::dtmf::DtmfMethod::Info,
        };
        srv.store.apply(id, e, now()).await.unwrap();
    }
    let store = srv.store.clone();
    let writer = tokio::spawn(async move {
        for d in ['4', '5', '6', '7', '8', '9'] {
            let e = Event::Dtmf {
                digit: d,
                method: crate::media::dtmf::DtmfMethod::Info,
            };
            store.apply(id, e, now()).await.unwrap();
            tokio::task::yield_now().await;
        }
    });
    let (mut s, mut buf) = open_sse(srv.addr, "alice-secret", Some(seen)).await;
    writer.await.unwrap();
    let evs = read_events(&mut s, 9, &mut buf).await;
    let digits: Vec<_> = evs
        .iter()
        .map(|e| e.2["feed"][0]["digit"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(digits, ["1", "2", "3", "4", "5", "6", "7", "8", "9"]);
    assert!(
        evs.windows(2).all(|w| w[0].0 < w[1].0),
        "ids ascend, no duplicates"
    );
    assert!(evs[0].0 > seen);
    // Nothing further arrives.
    let mut chunk = [0u8; 1024];
    let more = tokio::time::timeout(Duration::from_millis(200), s.read(&mut chunk)).await;
    if let Ok(Ok(n)) = more {
        buf.push_str(std::str::from_utf8(&chunk[..n]).unwrap());
    }
    assert_eq!(parse_sse(&buf).len(), 9);
}

/// A store whose log replay races with writers: one change commits just before the log is read
/// (so it is both replayed and broadcast) and one just after (so it is only broadcast).
fn racy_replay(inner: Arc<SqliteStore>, id: i64) -> crate::store::testing::Hooked {
    use crate::store::testing::{Hook, Hooked, Hooks};
    let dtmf = move |d: char| -> Hook<i64> {
        Box::new(move |s, _| {
            Box::pin(async move {
                let e = Event::Dtmf {
                    digit: d,
                    method: crate::media::dtmf::DtmfMethod::Inband,
                };
                s.apply(id, e, now()).await.unwrap();
            })
        })
    };
    Hooked {
        inner,
        hooks: Hooks {
            before_events_since: Some(dtmf('7')),
            after_events_since: Some(dtmf('8')),
            ..Hooks::default()
        },
    }
}

#[tokio::test]
async fn sse_resume_racing_writers_gives_each_event_once() {
    // The interaction created below gets id 1 in the fresh database.
    let srv = server_full(Arc::new(Vec::new), |inner| Arc::new(racy_replay(inner, 1))).await;
    let created = inbound(&srv.store, "support").await;
    assert_eq!(created, 1);
    srv.store
        .apply(created, Event::EnteredWorkflow, now())
        .await
        .unwrap();
    let (mut s, mut buf) = open_sse(srv.addr, "alice-secret", Some(1)).await;
    let evs = read_events(&mut s, 3, &mut buf).await;
    let kinds: Vec<_> = evs.iter().map(|e| e.1.as_str()).collect();
    assert_eq!(kinds, ["entered_workflow", "dtmf", "dtmf"]);
    let digits: Vec<_> = evs[1..]
        .iter()
        .map(|e| e.2["feed"][0]["digit"].as_str().unwrap())
        .collect();
    assert_eq!(digits, ["7", "8"]);
    let mut chunk = [0u8; 1024];
    if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(200), s.read(&mut chunk)).await {
        buf.push_str(std::str::from_utf8(&chunk[..n]).unwrap());
    }
    assert_eq!(parse_sse(&buf).len(), 3, "no duplicates: {buf}");
}

#[tokio::test]
async fn sse_rejects_a_bad_last_event_id() {
    let srv = server().await;
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    s.write_all(b"GET /api/v1/events HTTP/1.1\r\nHost: t\r\nConnection: close\r\nAuthorization: Bearer alice-secret\r\nLast-Event-ID: x\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    assert!(out.starts_with("HTTP/1.1 422"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_accepts_over_http_one_wins() {
    let mut srv = server().await;
    let id = open_callback(&srv.store, "support").await;
    let mut tasks = Vec::new();
    for n in 0..12 {
        let token = if n % 2 == 0 { ALICE } else { BOB };
        let addr = srv.addr;
        tasks.push(tokio::spawn(async move {
            req(
                addr,
                "POST",
                &format!("/api/v1/interactions/{id}/accept"),
                token,
                None,
            )
            .await
            .0
        }));
    }
    let mut codes = Vec::new();
    for t in tasks {
        codes.push(t.await.unwrap());
    }
    codes.sort_unstable();
    assert_eq!(codes.iter().filter(|c| **c == 200).count(), 1, "{codes:?}");
    assert!(codes.iter().all(|c| *c == 200 || *c == 409), "{codes:?}");
    assert!(srv.accepted.try_recv().is_ok());
    assert!(srv.accepted.try_recv().is_err());
}

/// Raw response head and body of a GET without a token.
async fn get_raw(addr: SocketAddr, path: &str) -> (String, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap();
    (head.to_ascii_lowercase(), body.to_owned())
}

#[tokio::test]
async fn the_web_page_is_served_from_the_binary() {
    let srv = server().await;
    let (head, body) = get_raw(srv.addr, "/").await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("content-type: text/html"), "{head}");
    assert!(
        head.contains("content-security-policy: default-src 'none'"),
        "{head}"
    );
    assert!(body.contains("<script src=\"/assets/app.js\""), "{body}");
    // Nothing from elsewhere: every reference is same-origin.
    assert!(!body.contains("http://") && !body.contains("https://"));
    for (path, ty, needle) in [
        ("/assets/app.js", "text/javascript", "new EventSource("),
        ("/assets/app.css", "text/css", "@media"),
        (
            "/assets/phone.js",
            "text/javascript",
            "new RTCPeerConnection(",
        ),
    ] {
        let (head, body) = get_raw(srv.addr, path).await;
        assert!(head.starts_with("http/1.1 200"), "{path}: {head}");
        assert!(
            head.contains(&format!("content-type: {ty}")),
            "{path}: {head}"
        );
        assert!(body.contains(needle), "{path}");
        assert!(!body.contains("https://"), "{path} refers elsewhere");
    }
    let (head, body) = get_raw(srv.addr, "/assets/../Cargo.toml").await;
    assert!(head.starts_with("http/1.1 404"), "{head}");
    assert!(body.contains("not_found"), "{body}");
    let (head, _) = get_raw(srv.addr, "/assets/secret.txt").await;
    assert!(head.starts_with("http/1.1 404"), "{head}");
}

#[tokio::test]
async fn me_tells_the_page_who_signed_in() {
    let srv = server().await;
    let (st, v) = req(srv.addr, "GET", "/api/v1/me", BOB, None).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        v,
        json!({"id": "bob", "queues": ["support", "sales"], "role": "agent", "status": "away", "phone": "sip"})
    );
    let (st, _) = req(srv.addr, "GET", "/api/v1/me", Some("bob-secreT"), None).await;
    assert_eq!(st, 401);
    let (st, _) = req(srv.addr, "GET", "/api/v1/me", None, None).await;
    assert_eq!(st, 401);
}

/// EventSource cannot send headers: the SSE route (and only it) takes `?access_token=`.
#[tokio::test]
async fn sse_takes_the_token_as_a_query_parameter() {
    let srv = server().await;
    let id = open_callback(&srv.store, "support").await;
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    s.write_all(b"GET /api/v1/events?access_token=alice-secret HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    let mut buf = String::new();
    let mut chunk = [0u8; 4096];
    while !buf.contains("\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut chunk))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0);
        buf.push_str(std::str::from_utf8(&chunk[..n]).unwrap());
    }
    assert!(buf.starts_with("HTTP/1.1 200"), "{buf}");
    let mut buf = buf.split_once("\r\n\r\n").unwrap().1.to_owned();
    let (st, _) = req(
        srv.addr,
        "POST",
        &format!("/api/v1/interactions/{id}/accept"),
        ALICE,
        None,
    )
    .await;
    assert_eq!(st, 200);
    let evs = read_events(&mut s, 1, &mut buf).await;
    assert_eq!(evs[0].1, "accepted");
    assert_eq!(evs[0].2["interaction"]["assigned_agent"], "alice");

    for bad in [
        "/api/v1/events?access_token=alice-secreT",
        "/api/v1/events?access_token=",
        "/api/v1/events?token=alice-secret",
    ] {
        let (st, _) = req(srv.addr, "GET", bad, None, None).await;
        assert!(st == 401 || st == 422, "{bad}: {st}");
    }
    let (st, v) = req(srv.addr, "GET", "/api/v1/events?access_token=x", None, None).await;
    assert_eq!((st, code(&v)), (401, "unauthorized"));
    // Other routes ignore it: the header is the only way in.
    for path in [
        "/api/v1/interactions?access_token=alice-secret",
        "/api/v1/agents?access_token=alice-secret",
        "/api/v1/me?access_token=alice-secret",
    ] {
        let (st, _) = req(srv.addr, "GET", path, None, None).await;
        assert_eq!(st, 401, "{path}");
    }
}

/// Issue 19: `?access_token=` on the SSE route is no way round the lock-out. Bad query tokens
/// are strikes like bad headers, a good token does not wipe the strikes (nine guesses, own
/// token, nine guesses… locks), and a locked-out client is refused on both paths.
#[tokio::test]
async fn query_tokens_share_the_lock_out_and_a_good_token_clears_no_strikes() {
    let srv = server_with_client_ips().await;
    let events = |t: &str| format!("/api/v1/events?access_token={t}");
    for i in 0..9 {
        let (st, _) = req(
            srv.addr,
            "GET",
            "/api/v1/agents",
            Some(&format!("g{i}")),
            None,
        )
        .await;
        assert_eq!(st, 401, "header guess {i}");
    }
    let (st, _) = req(srv.addr, "GET", "/api/v1/agents", ALICE, None).await;
    assert_eq!(st, 200, "nine strikes do not lock");
    // The tenth strike, through the query: still 401, and it counts.
    let (st, v) = req(srv.addr, "GET", &events("q1"), None, None).await;
    assert_eq!((st, code(&v)), (401, "unauthorized"));
    // The eleventh locks, whichever path it takes.
    let (st, _) = req(srv.addr, "GET", &events("q2"), None, None).await;
    assert_eq!(st, 401);
    let (st, v) = req(srv.addr, "GET", "/api/v1/agents", ALICE, None).await;
    assert_eq!((st, code(&v)), (429, "locked_out"), "header: {v}");
    let (st, v) = req(srv.addr, "GET", &events("alice-secret"), None, None).await;
    assert_eq!((st, code(&v)), (429, "locked_out"), "query: {v}");
}

/// Issue 16: the browser phone's signalling is the agent's own: no token → 401, another
/// agent's call (or none) → 404, a bad body → 422.
#[tokio::test]
async fn phone_signalling_takes_the_token_and_only_the_agents_own_calls() {
    let srv = server().await;
    for path in [
        "/api/v1/phone/calls/1/answer",
        "/api/v1/phone/calls/1/decline",
        "/api/v1/phone/calls/1/hangup",
        "/api/v1/phone/calls/1/hold",
        "/api/v1/phone/calls/1/resume",
    ] {
        let (st, _) = req(srv.addr, "POST", path, None, Some(r#"{"sdp": "v=0"}"#)).await;
        assert_eq!(st, 401, "{path}");
        let (st, v) = req(srv.addr, "POST", path, BOB, Some(r#"{"sdp": "v=0"}"#)).await;
        assert_eq!(st, 404, "{path}: {v}");
    }
    let (st, v) = req(
        srv.addr,
        "POST",
        "/api/v1/phone/calls/1/answer",
        BOB,
        Some(r#"{"offer": "v=0"}"#),
    )
    .await;
    assert_eq!(st, 422, "{v}");
    let (head, _) = get_raw(srv.addr, "/api/v1/phone/events").await;
    assert!(head.starts_with("http/1.1 401"), "{head}");
}

/// `req` through the API's router over `state`: the status and the JSON answer (`Null` when
/// the body is not JSON). The route modules' tests share it.
pub(super) async fn answer(
    state: &AppState,
    req: axum::http::Request<axum::body::Body>,
) -> (axum::http::StatusCode, Value) {
    use tower::ServiceExt as _;
    let resp = router(state.clone()).oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}
