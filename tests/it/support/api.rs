//! API helpers for the end-to-end tests, and the `e2e` test queue with an agent that serves it.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::hammond::{Hammond, Options, repo};
use super::http;

/// The agent that serves the `e2e` queue (`tests/data/queues/e2e.toml`).
pub(crate) const E2E_TOKEN: &str = "tess-secret";

/// Options for a Hammond with the `e2e` test queue and an agent for it.
pub(crate) fn e2e_options() -> Options {
    let queue = std::fs::read_to_string(repo().join("tests/data/queues/e2e.toml")).unwrap();
    Options {
        queues: vec![("e2e.toml".into(), queue)],
        extra_config: r#"
[[agents]]
id = "tess"
endpoint = "sip:tess@127.0.0.1:5073"
queues = ["e2e"]
token = "tess-secret"
"#
        .into(),
        ..Options::default()
    }
}

/// `GET /api/v1/interactions?{query}` as the agent with `token`.
pub(crate) fn list(h: &Hammond, token: &str, query: &str) -> Vec<Value> {
    let r = http::get(h.http, &format!("/api/v1/interactions?{query}"), token);
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["interactions"].as_array().expect("a list").clone()
}

/// One interaction with its feed.
pub(crate) fn detail(h: &Hammond, token: &str, id: i64) -> Value {
    let r = http::get(h.http, &format!("/api/v1/interactions/{id}"), token);
    assert_eq!(r.status, 200, "{}", r.text);
    r.body
}

/// Poll until the only interaction of the agent's queues satisfies `done` (the call task
/// settles the interaction a moment after the last SIP message); return its detail.
#[track_caller]
pub(crate) fn wait_single(h: &Hammond, token: &str, done: impl Fn(&Value) -> bool) -> Value {
    let start = Instant::now();
    loop {
        let items = list(h, token, "");
        if items.len() == 1 {
            let d = detail(h, token, items[0]["id"].as_i64().unwrap());
            if done(&d) {
                return d;
            }
            if start.elapsed() > Duration::from_secs(5) {
                panic!("interaction never settled as expected: {d:#}");
            }
        } else if start.elapsed() > Duration::from_secs(5) {
            panic!("expected one interaction, got {items:#?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The feed entries of `kind`.
pub(crate) fn feed_of<'a>(detail: &'a Value, kind: &str) -> Vec<&'a Value> {
    detail["feed"]
        .as_array()
        .map(|f| f.iter().filter(|e| e["kind"] == kind).collect())
        .unwrap_or_default()
}

/// The key presses on the feed as (digit, method), in order.
pub(crate) fn dtmf(detail: &Value) -> Vec<(String, String)> {
    feed_of(detail, "dtmf")
        .iter()
        .map(|e| {
            (
                e["digit"].as_str().unwrap_or_default().to_owned(),
                e["method"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// The `reason` of the feed's `closed` entry, if the interaction closed.
pub(crate) fn closed_reason(detail: &Value) -> Option<String> {
    feed_of(detail, "closed")
        .last()
        .and_then(|e| e["reason"].as_str())
        .map(str::to_owned)
}
