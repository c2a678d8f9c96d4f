//! Issue 21 acceptance over real calls: a caller schedules a callback slot by DTMF (the feed
//! and the API show `not_before` at that slot), and a callback booked through
//! `POST /api/v1/callbacks` is refused early with 409 `not_yet_due`, then dialled once due.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::dialer_flows::{accept_as_alice, feed_kinds, wait_status};
use crate::support::sipp::{assert_ok, free_port, free_port_pair};
use crate::support::{Hammond, Options, Sipp, http};

/// A 24/7 queue whose callers may choose a time: slots every hour, one hour ahead at least,
/// counted and read in UTC (no [hours] zone).
const SCHED_QUEUE: &str = r#"
numbers = ["sched"]
offer_every = "60s"
[menu]
options = [{ key = "1", action = "callback" }, { key = "2", action = "wait" }]
[callback]
fictional_prefixes = ["1555"]
[callback.schedule]
slots = 3
every = "1h"
lead = "1h"
"#;

const SAM: &str = r#"
[[agents]]
id = "sam"
endpoint = "sip:sam@127.0.0.1:5073"
queues = ["sched"]
token = "sam-secret"
"#;

#[test]
fn a_caller_schedules_a_slot_by_dtmf_and_the_api_shows_it() {
    let h = Hammond::start(Options {
        queues: vec![("sched.toml".into(), SCHED_QUEUE.into())],
        extra_config: SAM.into(),
        ..Options::default()
    });
    let before = jiff::Timestamp::now();
    // Menu 1 (callback), 2 (choose a time), 1 (the first slot), 1 (this number).
    let run = Sipp::uac("caller_schedules_info.xml", h.sip, "sched")
        .key("key1", "1")
        .key("key2", "2")
        .key("key3", "1")
        .key("key4", "1")
        .run();
    assert_ok(&run);
    let list = http::get(
        h.http,
        "/api/v1/interactions?sub_type=callback&status=open",
        "sam-secret",
    );
    let i = &list.body["interactions"][0];
    let nb: jiff::Timestamp = i["callback"]["not_before"]
        .as_str()
        .unwrap_or_else(|| panic!("a scheduled callback: {}", list.text))
        .parse()
        .unwrap();
    // The first slot: the first whole UTC hour at least an hour from the call.
    assert_eq!(nb.as_second() % 3600, 0, "{nb}");
    let lead = nb.duration_since(before).as_secs();
    assert!(
        (3600..=2 * 3600 + 60).contains(&lead),
        "{nb} is {lead} s ahead"
    );
    let id = i["id"].as_i64().unwrap();
    let d = http::get(h.http, &format!("/api/v1/interactions/{id}"), "sam-secret");
    let feed = d.body["feed"].as_array().unwrap();
    assert!(
        feed.iter().any(|e| e["kind"] == "callback_slot_chosen"
            && e["text"]
                .as_str()
                .is_some_and(|t| t.contains("today at") || t.contains("tomorrow at"))),
        "{}",
        d.text
    );
    assert!(
        feed.iter().any(|e| e["kind"] == "callback_requested"),
        "{}",
        d.text
    );
    // Too early for an agent.
    let r = http::post(
        h.http,
        &format!("/api/v1/interactions/{id}/accept"),
        "sam-secret",
        "{}",
    );
    assert_eq!(r.status, 409, "{}", r.text);
    assert_eq!(r.body["error"]["code"], "not_yet_due", "{}", r.text);
    assert_eq!(r.body["error"]["not_before"], nb.to_string());
}

#[test]
fn an_api_callback_is_refused_early_then_dialled_once_due() {
    let trunk = free_port();
    let agent = free_port_pair();
    let h = Hammond::start(Options {
        trunk: Some(SocketAddr::from(([127, 0, 0, 1], trunk))),
        agent_port: Some(agent),
        extra_config: r#"
[[api_clients]]
id = "website"
queues = ["support"]
rights = ["create_callbacks"]
token = "website-secret"
"#
        .into(),
        ..Options::default()
    });
    let due = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(4);
    let body = format!(
        r#"{{"queue": "support", "number": "+1 555 123 4567", "not_before": "{due}", "note": "from the website"}}"#
    );
    // An agent's token has no right to it.
    let r = http::post(h.http, "/api/v1/callbacks", "alice-secret", &body);
    assert_eq!(r.status, 403, "{}", r.text);
    let r = http::post(h.http, "/api/v1/callbacks", "website-secret", &body);
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["status"], "open");
    assert_eq!(r.body["sub_type"], "callback");
    let id = r.body["id"].as_i64().unwrap();
    // A refused number says why.
    let bad = http::post(
        h.http,
        "/api/v1/callbacks",
        "website-secret",
        r#"{"queue": "support", "number": "+1 900 555 0199"}"#,
    );
    assert_eq!(bad.status, 422, "{}", bad.text);
    assert_eq!(bad.body["error"]["code"], "number_refused");
    // Early: 409 not_yet_due with when.
    let r = http::post(
        h.http,
        &format!("/api/v1/interactions/{id}/accept"),
        "alice-secret",
        "{}",
    );
    assert_eq!(r.status, 409, "{}", r.text);
    assert_eq!(r.body["error"]["code"], "not_yet_due");
    // Once due, the accept dials the customer through the trunk and the agent.
    let customer = Sipp::uas("phone_answers_then_hangs_up.xml", trunk).spawn();
    let alice = Sipp::uas("phone_answers_waits_bye.xml", agent).spawn();
    let wait_until = Instant::now() + Duration::from_secs(10);
    while jiff::Timestamp::now() < due + jiff::SignedDuration::from_millis(200) {
        assert!(Instant::now() < wait_until);
        std::thread::sleep(Duration::from_millis(100));
    }
    let r = accept_as_alice(&h, id);
    assert_eq!(r.body["status"], "connected");
    let customer = customer.wait();
    assert_ok(&customer);
    assert_ok(&alice.wait());
    assert!(
        customer.messages.contains("INVITE sip:+15551234567@"),
        "{}",
        customer.messages
    );
    wait_status(&h, id, "closed");
    let kinds = feed_kinds(&h, id);
    for k in [
        "created",
        "callback_requested",
        "note",
        "callback_dialling",
        "bridged",
    ] {
        assert!(kinds.iter().any(|x| x == k), "feed lacks {k}: {kinds:?}");
    }
}
