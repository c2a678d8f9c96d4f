//! Issue "Routing and the callback dialer": an agent accepts a callback over the API; Hammond
//! INVITEs the customer through the trunk and the agent's phone at once, bridges them, and
//! records every outcome. SIPp plays the customer's and the agent's phones.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::support::sipp::{assert_ok, free_port, free_port_pair};
use crate::support::{Hammond, Options, Sipp, http};

/// A Hammond whose trunk and agent phones are SIPp UAS on free ports, with one open callback.
fn with_callback(trunk_extra: &str) -> (Hammond, u16, u16, i64) {
    let trunk_port = free_port();
    let agent_port = free_port_pair();
    let h = Hammond::start(Options {
        trunk: Some(SocketAddr::from(([127, 0, 0, 1], trunk_port))),
        agent_port: Some(agent_port),
        extra_config: trunk_extra.to_owned(),
        ..Options::default()
    });
    let run = Sipp::uac("callback_info.xml", h.sip, "support")
        .key("key1", "1")
        .key("key2", "1")
        .run();
    assert_ok(&run);
    let list = http::get(
        h.http,
        "/api/v1/interactions?sub_type=callback&status=open",
        "alice-secret",
    );
    let id = list.body["interactions"][0]["id"]
        .as_i64()
        .expect("an open callback");
    (h, trunk_port, agent_port, id)
}

fn feed_kinds(h: &Hammond, id: i64) -> Vec<String> {
    let d = http::get(
        h.http,
        &format!("/api/v1/interactions/{id}"),
        "alice-secret",
    );
    d.body["feed"]
        .as_array()
        .map(|f| {
            f.iter()
                .map(|e| e["kind"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn wait_status(h: &Hammond, id: i64, status: &str) -> serde_json::Value {
    let start = Instant::now();
    loop {
        let d = http::get(
            h.http,
            &format!("/api/v1/interactions/{id}"),
            "alice-secret",
        );
        if d.body["status"] == status || start.elapsed() > Duration::from_secs(20) {
            return d.body;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn accept_dials_customer_and_agent_and_bridges_them() {
    let (h, trunk, agent, id) = with_callback("");
    let customer = Sipp::uas("phone_answers_then_hangs_up.xml", trunk).spawn();
    let alice = Sipp::uas("phone_answers_waits_bye.xml", agent).spawn();
    std::thread::sleep(Duration::from_millis(300));
    let r = http::post(
        h.http,
        &format!("/api/v1/interactions/{id}/accept"),
        "alice-secret",
        "{}",
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["status"], "connected");
    assert_eq!(r.body["assigned_agent"], "alice");
    let customer = customer.wait();
    let alice = alice.wait();
    assert_ok(&customer);
    assert_ok(&alice);
    // The customer's INVITE carries the callback number and the queue's caller ID.
    assert!(
        customer.messages.contains("INVITE sip:15551234567@"),
        "{}",
        customer.messages
    );
    assert!(
        customer.messages.contains("From: <sip:+15550100@"),
        "{}",
        customer.messages
    );
    assert!(
        alice.messages.contains("answer-after=0"),
        "{}",
        alice.messages
    );
    let done = wait_status(&h, id, "closed");
    assert_eq!(done["status"], "closed", "{done}");
    let kinds = feed_kinds(&h, id);
    for k in [
        "assigned",
        "callback_dialling",
        "callback_ringing",
        "callback_answered",
        "bridged",
        "hung_up",
    ] {
        assert!(kinds.iter().any(|x| x == k), "feed lacks {k}: {kinds:?}");
    }
}

#[test]
fn busy_customer_returns_the_callback_to_open_with_the_attempt_counted() {
    let (h, trunk, agent, id) = with_callback("");
    let customer = Sipp::uas("phone_busy.xml", trunk).spawn();
    let alice = Sipp::uas("phone_answers_waits_bye.xml", agent).spawn();
    std::thread::sleep(Duration::from_millis(300));
    let r = http::post(
        h.http,
        &format!("/api/v1/interactions/{id}/accept"),
        "alice-secret",
        "{}",
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_ok(&customer.wait());
    assert_ok(&alice.wait());
    let i = wait_status(&h, id, "open");
    assert_eq!(i["status"], "open", "{i}");
    assert_eq!(i["callback"]["attempts"], 1, "{i}");
    assert!(i["callback"]["not_before"].is_string(), "{i}");
    assert!(
        feed_kinds(&h, id)
            .iter()
            .any(|k| k == "callback_failed_attempt")
    );
}

#[test]
fn two_agents_accepting_at_once_make_one_call() {
    let (h, trunk, agent, id) = with_callback("");
    let customer = Sipp::uas("phone_busy.xml", trunk).spawn();
    let alice = Sipp::uas("phone_answers_waits_bye.xml", agent).spawn();
    std::thread::sleep(Duration::from_millis(300));
    let addr = h.http;
    let path = format!("/api/v1/interactions/{id}/accept");
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| http::post(addr, &path, "alice-secret", "{}").status);
        let b = s.spawn(|| http::post(addr, &path, "bob-secret", "{}").status);
        (a.join().unwrap(), b.join().unwrap())
    });
    let mut codes = [a, b];
    codes.sort_unstable();
    assert_eq!(codes, [200, 409]);
    let customer = customer.wait();
    assert_ok(&customer);
    assert_eq!(
        customer.messages.matches("INVITE sip:15551234567@").count(),
        1
    );
    drop(alice);
}

fn digest(algorithm: &str) {
    let trunk_port = free_port();
    let agent_port = free_port_pair();
    let h = Hammond::start(Options {
        trunk: Some(SocketAddr::from(([127, 0, 0, 1], trunk_port))),
        agent_port: Some(agent_port),
        env: vec![
            ("HAMMOND_TRUNK_USERNAME".into(), "hammond".into()),
            ("HAMMOND_TRUNK_PASSWORD".into(), "s3cret".into()),
        ],
        ..Options::default()
    });
    let run = Sipp::uac("callback_info.xml", h.sip, "support")
        .key("key1", "1")
        .key("key2", "1")
        .run();
    assert_ok(&run);
    let list = http::get(
        h.http,
        "/api/v1/interactions?sub_type=callback&status=open",
        "alice-secret",
    );
    let id = list.body["interactions"][0]["id"]
        .as_i64()
        .expect("an open callback");
    let customer = Sipp::uas("phone_digest.xml", trunk_port)
        .key("algorithm", algorithm)
        .spawn();
    let alice = Sipp::uas("phone_answers_waits_bye.xml", agent_port).spawn();
    std::thread::sleep(Duration::from_millis(300));
    let r = http::post(
        h.http,
        &format!("/api/v1/interactions/{id}/accept"),
        "alice-secret",
        "{}",
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let customer = customer.wait();
    assert_ok(&customer);
    assert_ok(&alice.wait());
    let line = customer
        .messages
        .lines()
        .find(|l| l.starts_with("Proxy-Authorization: Digest"))
        .unwrap_or_else(|| panic!("no credentials sent: {}", customer.messages));
    verify_digest(line, algorithm, "hammond", "s3cret", "trunk.test");
    assert!(
        !h.log().contains("s3cret"),
        "the trunk password reached the log"
    );
    assert_eq!(wait_status(&h, id, "closed")["status"], "closed");
}

#[test]
fn trunk_digest_challenge_is_answered_md5() {
    digest("MD5");
}

#[test]
fn trunk_digest_challenge_is_answered_sha256() {
    digest("SHA-256");
}

/// Check a digest response independently of Hammond's code (RFC 7616 §3.4.1, qop=auth).
fn verify_digest(line: &str, algorithm: &str, user: &str, pass: &str, realm: &str) {
    use sha2::Digest as _;
    let param = |k: &str| -> String {
        let start = line
            .find(&format!(" {k}="))
            .unwrap_or_else(|| panic!("no {k} in {line}"))
            + k.len()
            + 2;
        let rest = &line[start..];
        let v = rest.split(',').next().unwrap().trim();
        v.trim_matches('"').to_owned()
    };
    let h = |s: String| -> String {
        let bytes = if algorithm == "MD5" {
            md5::Md5::digest(s.as_bytes()).to_vec()
        } else {
            sha2::Sha256::digest(s.as_bytes()).to_vec()
        };
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    };
    assert_eq!(param("username"), user);
    assert_eq!(param("realm"), realm);
    assert_eq!(param("algorithm"), algorithm);
    let ha1 = h(format!("{user}:{realm}:{pass}"));
    let ha2 = h(format!("INVITE:{}", param("uri")));
    let expected = h(format!(
        "{ha1}:{}:{}:{}:auth:{ha2}",
        param("nonce"),
        param("nc"),
        param("cnonce")
    ));
    assert_eq!(param("response"), expected, "{line}");
}
