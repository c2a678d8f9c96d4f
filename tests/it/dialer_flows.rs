//! Issue "Routing and the callback dialer": an agent accepts a callback over the API; Hammond
//! INVITEs the customer through the trunk and the agent's phone at once, bridges them, and
//! records every outcome. SIPp plays the customer's and the agent's phones.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::support::sipp::{assert_ok, free_port, free_port_pair};
use crate::support::{Hammond, Options, Sipp, http};

/// A Hammond whose trunk and agent phones are SIPp UAS on free ports, with one open callback.
fn with_callback(trunk_extra: &str) -> (Hammond, u16, u16, i64) {
    with_callback_opts(|o| o.extra_config = trunk_extra.to_owned())
}

/// The same, with more options (env, queue files) set by `tweak`.
pub(crate) fn with_callback_opts(tweak: impl FnOnce(&mut Options)) -> (Hammond, u16, u16, i64) {
    let trunk_port = free_port();
    let agent_port = free_port_pair();
    let mut opts = Options {
        trunk: Some(SocketAddr::from(([127, 0, 0, 1], trunk_port))),
        agent_port: Some(agent_port),
        ..Options::default()
    };
    tweak(&mut opts);
    let h = Hammond::start(opts);
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

pub(crate) fn feed_kinds(h: &Hammond, id: i64) -> Vec<String> {
    let d = http::get(
        h.http,
        &format!("/api/v1/interactions/{id}"),
        "alice-secret",
    );
    kinds_of(&d.body)
}

/// The kinds of an interaction detail's feed entries, in order.
pub(crate) fn kinds_of(detail: &serde_json::Value) -> Vec<String> {
    detail["feed"]
        .as_array()
        .map(|f| {
            f.iter()
                .map(|e| e["kind"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

pub(crate) fn wait_status(h: &Hammond, id: i64, status: &str) -> serde_json::Value {
    wait_detail(h, id, |d| d["status"] == status)
}

/// The interaction's detail once `done` holds of it, or after 20 s (the caller's assertions
/// then say what was missing).
pub(crate) fn wait_detail(
    h: &Hammond,
    id: i64,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let start = Instant::now();
    loop {
        let d = http::get(
            h.http,
            &format!("/api/v1/interactions/{id}"),
            "alice-secret",
        );
        if done(&d.body) || start.elapsed() > Duration::from_secs(20) {
            return d.body;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Accept `id` as alice (her phone and the customer's are dialled).
pub(crate) fn accept_as_alice(h: &Hammond, id: i64) -> http::Reply {
    let r = http::post(
        h.http,
        &format!("/api/v1/interactions/{id}/accept"),
        "alice-secret",
        "{}",
    );
    assert_eq!(r.status, 200, "{}", r.text);
    r
}

#[test]
fn accept_dials_customer_and_agent_and_bridges_them() {
    let (h, trunk, agent, id) = with_callback("");
    let customer = Sipp::uas("phone_answers_then_hangs_up.xml", trunk).spawn();
    let alice = Sipp::uas("phone_answers_waits_bye.xml", agent).spawn();
    std::thread::sleep(Duration::from_millis(300));
    let r = accept_as_alice(&h, id);
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

/// Close the connected interaction `id` as alice, with a disposition.
pub(crate) fn close_as_alice(h: &Hammond, id: i64) {
    let r = http::post(
        h.http,
        &format!("/api/v1/interactions/{id}/close"),
        "alice-secret",
        r#"{"disposition": "resolved"}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["status"], "closed", "{}", r.text);
}

/// Wait until the feed of `id` has an entry of `kind`; the whole feed's kinds.
pub(crate) fn wait_feed(h: &Hammond, id: i64, kind: &str) -> Vec<String> {
    kinds_of(&wait_detail(h, id, |d| {
        kinds_of(d).iter().any(|k| k == kind)
    }))
}

/// The agent closing a bridged callback hangs both phones up (each gets a BYE), rather than
/// leaving them talking under a closed interaction.
#[test]
fn closing_a_bridged_callback_hangs_up_both_phones() {
    let (h, trunk, agent, id) = with_callback("");
    let customer = Sipp::uas("phone_answers_waits_bye.xml", trunk).spawn();
    let alice = Sipp::uas("phone_answers_waits_bye.xml", agent).spawn();
    std::thread::sleep(Duration::from_millis(300));
    accept_as_alice(&h, id);
    let kinds = wait_feed(&h, id, "bridged");
    assert!(kinds.iter().any(|k| k == "bridged"), "{kinds:?}");
    close_as_alice(&h, id);
    assert_ok(&customer.wait());
    assert_ok(&alice.wait());
    let kinds = wait_feed(&h, id, "hung_up_on_close");
    assert!(kinds.iter().any(|k| k == "hung_up_on_close"), "{kinds:?}");
}

/// Closing while the customer's phone still rings cancels both legs at once (the queue's
/// ring timeout, two minutes here, would cancel them too, much later).
#[test]
fn closing_a_callback_while_it_rings_cancels_both_legs() {
    let (h, trunk, agent, id) =
        with_callback_opts(|o| o.queues = vec![support_with_ring_timeout("120s")]);
    let customer = Sipp::uas("phone_no_answer.xml", trunk).spawn();
    let alice = Sipp::uas("phone_no_answer.xml", agent).spawn();
    std::thread::sleep(Duration::from_millis(300));
    accept_as_alice(&h, id);
    let kinds = wait_feed(&h, id, "callback_ringing");
    assert!(kinds.iter().any(|k| k == "callback_ringing"), "{kinds:?}");
    let closed_at = Instant::now();
    close_as_alice(&h, id);
    assert_ok(&customer.wait());
    assert_ok(&alice.wait());
    assert!(
        closed_at.elapsed() < Duration::from_secs(20),
        "cancelled {:?} after the close",
        closed_at.elapsed()
    );
    let done = wait_status(&h, id, "closed");
    let closed = done["feed"]
        .as_array()
        .and_then(|f| f.iter().find(|e| e["kind"] == "closed"))
        .unwrap_or_else(|| panic!("no close on the feed: {done}"));
    assert_eq!(closed["reason"], "completed", "{done}");
    assert_eq!(closed["disposition"], "resolved", "{done}");
    let kinds = wait_feed(&h, id, "hung_up_on_close");
    assert!(kinds.iter().any(|k| k == "hung_up_on_close"), "{kinds:?}");
}

#[test]
fn busy_customer_returns_the_callback_to_open_with_the_attempt_counted() {
    let (h, trunk, agent, id) = with_callback("");
    let customer = Sipp::uas("phone_busy.xml", trunk).spawn();
    let alice = Sipp::uas("phone_no_answer.xml", agent).spawn();
    std::thread::sleep(Duration::from_millis(300));
    accept_as_alice(&h, id);
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
    let (h, trunk_port, agent_port, id) = with_callback_opts(|o| {
        o.env = vec![
            ("HAMMOND_TRUNK_USERNAME".into(), "hammond".into()),
            ("HAMMOND_TRUNK_PASSWORD".into(), "s3cret".into()),
        ];
    });
    let customer = Sipp::uas("phone_digest.xml", trunk_port)
        .key("algorithm", algorithm)
        .spawn();
    let alice = Sipp::uas("phone_answers_waits_bye.xml", agent_port).spawn();
    std::thread::sleep(Duration::from_millis(300));
    accept_as_alice(&h, id);
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

fn set_presence(h: &Hammond, agent: &str, token: &str, status: &str) {
    let r = http::request(
        h.http,
        "PUT",
        &format!("/api/v1/agents/{agent}/status"),
        Some(token),
        Some(&format!("{{\"status\":\"{status}\"}}")),
    );
    assert_eq!(r.status, 200, "{}", r.text);
}

/// A caller (SIPp, waiting for Hammond's BYE) in the support queue's workflow, and its
/// interaction.
fn caller_in_workflow(h: &Hammond) -> (crate::support::sipp::Running, i64) {
    let caller = Sipp::uac("hammond_hangs_up.xml", h.sip, "support").spawn();
    let start = Instant::now();
    loop {
        let l = http::get(h.http, "/api/v1/interactions?status=bot", "alice-secret");
        if let Some(id) = l.body["interactions"][0]["id"].as_i64() {
            return (caller, id);
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "caller never reached the workflow"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A live caller keeps waiting; alice becomes available; Hammond rings her phone and bridges
/// the caller to it. When she hangs up, the caller gets BYE and the interaction closes.
#[test]
fn waiting_caller_is_offered_to_an_agent_who_becomes_available() {
    let agent_port = free_port_pair();
    let h = Hammond::start(Options {
        agent_port: Some(agent_port),
        ..Options::default()
    });
    let (caller, id) = caller_in_workflow(&h);
    let alice = Sipp::uas("phone_answers_then_hangs_up.xml", agent_port).spawn();
    std::thread::sleep(Duration::from_millis(300));
    set_presence(&h, "alice", "alice-secret", "available");
    assert_ok(&alice.wait());
    assert_ok(&caller.wait());
    let done = wait_status(&h, id, "closed");
    assert_eq!(done["status"], "closed", "{done}");
    assert_eq!(done["assigned_agent"], "alice", "{done}");
    let kinds = feed_kinds(&h, id);
    for k in ["assigned", "bridged", "hung_up"] {
        assert!(kinds.iter().any(|x| x == k), "feed lacks {k}: {kinds:?}");
    }
}

/// Two live callers wait; alice becomes available and takes the first. While she is on that
/// call the router must not push her the second (session 7 saw it do so in the browser
/// bench): one offer, one INVITE to her phone. When bob becomes available the second caller is
/// his at once.
#[test]
fn an_agent_on_a_pushed_call_is_not_offered_the_next_caller_who_goes_to_the_next_free_agent() {
    let agent_port = free_port_pair();
    let h = Hammond::start(Options {
        agent_port: Some(agent_port),
        ..Options::default()
    });
    let callers: Vec<_> = (0..2)
        .map(|_| {
            Sipp::uac("caller_waits.xml", h.sip, "support")
                .args(&["-d", "30000"])
                .spawn()
        })
        .collect();
    let start = Instant::now();
    while http::get(h.http, "/api/v1/interactions?status=bot", "alice-secret").body["interactions"]
        .as_array()
        .map_or(0, Vec::len)
        < 2
    {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "two callers never waited"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let alice = Sipp::uas("phone_answers_waits_bye.xml", agent_port).spawn();
    std::thread::sleep(Duration::from_millis(300));
    set_presence(&h, "alice", "alice-secret", "available");
    let start = Instant::now();
    let id = loop {
        let l = http::get(
            h.http,
            "/api/v1/interactions?status=connected",
            "alice-secret",
        );
        if let Some(id) = l.body["interactions"][0]["id"].as_i64() {
            break id;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "nobody was bridged"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    wait_feed(&h, id, "bridged");
    // Several routing rounds (every 500 ms, and on every change) with alice available.
    std::thread::sleep(Duration::from_secs(3));
    let offers = h.log().matches("rt::router: offer agent=").count();
    assert_eq!(
        offers, 1,
        "alice was offered another caller while on a call"
    );
    // bob becomes available: the caller still waiting is his. (The bridged caller, first in
    // line, used to be offered to him every round and refuse, so the second one waited.)
    let bob = Sipp::uas("phone_answers_waits_bye.xml", agent_port + 1).spawn();
    std::thread::sleep(Duration::from_millis(300));
    set_presence(&h, "bob", "bob-secret", "available");
    let start = Instant::now();
    let second = loop {
        let l = http::get(
            h.http,
            "/api/v1/interactions?status=connected",
            "alice-secret",
        );
        let bobs = l.body["interactions"]
            .as_array()
            .and_then(|a| a.iter().find(|i| i["assigned_agent"] == "bob").cloned());
        if let Some(i) = bobs {
            break i["id"].as_i64().unwrap();
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the waiting caller never reached bob; offers to bob: {}",
            h.log().matches("rt::router: offer agent=bob").count()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_ne!(second, id);
    // Away before the close, so the router has no one to offer anything to.
    set_presence(&h, "alice", "alice-secret", "away");
    set_presence(&h, "bob", "bob-secret", "away");
    close_as_alice(&h, id);
    let r = http::post(
        h.http,
        &format!("/api/v1/interactions/{second}/close"),
        "bob-secret",
        r#"{"disposition": "resolved"}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let alice = alice.wait();
    assert_ok(&alice);
    assert_eq!(alice.received("INVITE "), 1, "{}", alice.messages);
    assert_ok(&bob.wait());
    for c in callers {
        c.kill();
    }
}

/// A live caller bridged to an agent: the agent closing the interaction hangs up both the
/// caller and the agent's phone.
#[test]
fn closing_a_bridged_live_call_hangs_up_caller_and_agent() {
    let agent_port = free_port_pair();
    let h = Hammond::start(Options {
        agent_port: Some(agent_port),
        ..Options::default()
    });
    let (caller, id) = caller_in_workflow(&h);
    let alice = Sipp::uas("phone_answers_waits_bye.xml", agent_port).spawn();
    std::thread::sleep(Duration::from_millis(300));
    set_presence(&h, "alice", "alice-secret", "available");
    let kinds = wait_feed(&h, id, "bridged");
    assert!(kinds.iter().any(|k| k == "bridged"), "{kinds:?}");
    close_as_alice(&h, id);
    assert_ok(&alice.wait());
    assert_ok(&caller.wait());
    let kinds = wait_feed(&h, id, "hung_up_on_close");
    assert!(kinds.iter().any(|k| k == "hung_up_on_close"), "{kinds:?}");
}

/// A due callback and an available agent: the agent's phone rings first; once she answers,
/// the callback is hers and the customer is dialled.
#[test]
fn due_callback_is_pushed_to_an_available_agent_agent_first() {
    let (h, trunk, agent, id) = with_callback("");
    let customer = Sipp::uas("phone_answers_then_hangs_up.xml", trunk).spawn();
    let alice = Sipp::uas("phone_answers_waits_bye.xml", agent).spawn();
    std::thread::sleep(Duration::from_millis(300));
    set_presence(&h, "alice", "alice-secret", "available");
    let customer = customer.wait();
    let alice = alice.wait();
    assert_ok(&customer);
    assert_ok(&alice);
    let done = wait_status(&h, id, "closed");
    assert_eq!(done["assigned_agent"], "alice", "{done}");
    let kinds = feed_kinds(&h, id);
    for k in [
        "assigned",
        "callback_dialling",
        "callback_answered",
        "bridged",
        "hung_up",
    ] {
        assert!(kinds.iter().any(|x| x == k), "feed lacks {k}: {kinds:?}");
    }
}

/// An offer the agent does not answer sets her away; the interaction stays open.
#[test]
fn unanswered_offer_sets_the_agent_away() {
    let (h, _trunk, agent, id) = with_callback("");
    let alice = Sipp::uas("phone_busy.xml", agent).spawn();
    std::thread::sleep(Duration::from_millis(300));
    set_presence(&h, "alice", "alice-secret", "available");
    assert_ok(&alice.wait());
    let start = Instant::now();
    loop {
        let agents = http::get(h.http, "/api/v1/agents", "alice-secret");
        let me = agents.body["agents"]
            .as_array()
            .and_then(|a| a.iter().find(|x| x["id"] == "alice").cloned())
            .unwrap_or_default();
        if me["status"] == "away" {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "alice still {me}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let i = http::get(
        h.http,
        &format!("/api/v1/interactions/{id}"),
        "alice-secret",
    );
    assert_eq!(i.body["status"], "open", "{}", i.text);
    assert_eq!(i.body["callback"]["attempts"], 0, "{}", i.text);
}

/// The support queue with a short ring timeout, for no-answer tests.
fn support_with_ring_timeout(timeout: &str) -> (String, String) {
    let src =
        std::fs::read_to_string(crate::support::hammond::repo().join("config/queues/support.toml"))
            .unwrap();
    assert!(src.contains("ring_timeout = \"30s\""));
    (
        "support.toml".into(),
        src.replace(
            "ring_timeout = \"30s\"",
            &format!("ring_timeout = \"{timeout}\""),
        ),
    )
}

/// Accept the open callback while the customer's phone plays `customer_scenario` and the
/// agent's rings until cancelled; return the feed entry of the failed attempt, after checking
/// the callback is open again with the attempt counted.
fn failed_attempt(
    h: &Hammond,
    trunk: u16,
    agent: u16,
    id: i64,
    customer_scenario: &str,
) -> serde_json::Value {
    failed_attempt_counting(h, trunk, agent, id, customer_scenario, 1)
}

/// [`failed_attempt`], the callback then holding `attempts` counted attempts.
fn failed_attempt_counting(
    h: &Hammond,
    trunk: u16,
    agent: u16,
    id: i64,
    customer_scenario: &str,
    attempts: u32,
) -> serde_json::Value {
    let customer = Sipp::uas(customer_scenario, trunk).spawn();
    let alice = Sipp::uas("phone_no_answer.xml", agent).spawn();
    std::thread::sleep(Duration::from_millis(300));
    accept_as_alice(h, id);
    assert_ok(&customer.wait());
    assert_ok(&alice.wait());
    let i = wait_status(h, id, "open");
    assert_eq!(i["callback"]["attempts"], attempts, "{i}");
    let d = http::get(
        h.http,
        &format!("/api/v1/interactions/{id}"),
        "alice-secret",
    );
    d.body["feed"]
        .as_array()
        .and_then(|f| {
            f.iter()
                .find(|e| e["kind"] == "callback_failed_attempt")
                .cloned()
        })
        .unwrap_or_else(|| panic!("no failed attempt on the feed: {}", d.text))
}

#[test]
fn unanswered_customer_is_cancelled_at_the_ring_timeout() {
    let (h, trunk, agent, id) =
        with_callback_opts(|o| o.queues = vec![support_with_ring_timeout("2s")]);
    let failed = failed_attempt(&h, trunk, agent, id, "phone_no_answer.xml");
    assert_eq!(failed["outcome"], "no_answer", "{failed}");
}

/// A refusal from the far end (500) is a counted failed attempt.
#[test]
fn failing_trunk_counts_the_attempt() {
    let (h, trunk, agent, id) = with_callback("");
    let failed = failed_attempt(&h, trunk, agent, id, "phone_500.xml");
    assert_eq!(failed["outcome"], "failed", "{failed}");
    assert_eq!(failed["code"], 500, "{failed}");
}

/// Issue 21: a 503 is the trunk's own outage (RFC 3261 §16.7: a proxy does not pass a 503 on):
/// not counted against the customer, retried after the queue's `trunk_outage` delay, and the
/// feed says so.
#[test]
fn a_trunk_503_is_an_outage_not_counted() {
    let (h, trunk, agent, id) = with_callback("");
    let failed = failed_attempt_counting(&h, trunk, agent, id, "phone_503.xml", 0);
    assert_eq!(failed["outcome"], "trunk_outage", "{failed}");
    assert_eq!(failed["counted"], false, "{failed}");
    assert_eq!(failed["code"], 503, "{failed}");
    assert!(
        failed["text"]
            .as_str()
            .is_some_and(|t| t.contains("not counted, next try after")),
        "{failed}"
    );
}

/// Key 0 transfers to the operator; the PBX refuses REFER, so Hammond calls the operator
/// itself and bridges the caller. When the operator hangs up, the caller gets BYE and the
/// interaction closes transferred.
#[test]
fn refused_refer_falls_back_to_dialling_the_target_and_bridging() {
    let operator_port = free_port();
    let src =
        std::fs::read_to_string(crate::support::hammond::repo().join("config/queues/support.toml"))
            .unwrap();
    let support = src.replace(
        "sip:operator@127.0.0.1:5080",
        &format!("sip:operator@127.0.0.1:{operator_port}"),
    );
    assert_ne!(src, support, "the example queue's operator target moved");
    let h = Hammond::start(Options {
        queues: vec![("support.toml".into(), support)],
        ..Options::default()
    });
    let operator = Sipp::uas("phone_answers_then_hangs_up.xml", operator_port).spawn();
    std::thread::sleep(Duration::from_millis(300));
    let caller = Sipp::uac("transfer_refer_refused.xml", h.sip, "support").run();
    assert_ok(&caller);
    let operator = operator.wait();
    assert_ok(&operator);
    assert!(
        operator.messages.contains("INVITE sip:operator@"),
        "{}",
        operator.messages
    );
    let list = http::get(h.http, "/api/v1/interactions", "alice-secret");
    let id = list.body["interactions"][0]["id"].as_i64().unwrap();
    let done = wait_status(&h, id, "closed");
    assert_eq!(done["status"], "closed", "{done}");
    let d = http::get(
        h.http,
        &format!("/api/v1/interactions/{id}"),
        "alice-secret",
    );
    let closed = d.body["feed"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "closed")
        .cloned()
        .unwrap();
    assert_eq!(closed["reason"], "transferred", "{}", d.text);
    assert!(feed_kinds(&h, id).iter().any(|k| k == "transfer_bridged"));
}

/// The callback connect experience, customer first: the customer who answers hears the
/// queue's callback greeting at once (speech, not silence), then waits; the agent's phone
/// rings and never answers; at the shipped agent ring timeout (20 s) the customer hears the
/// apology and gets BYE, and the callback is back in the queue with no attempt counted, the
/// feed saying the agent was unreachable, and the agent set away.
#[test]
fn customer_answering_first_hears_the_greeting_and_an_unreachable_agent_reopens_uncounted() {
    let (h, trunk, agent, id) = with_callback("");
    let sink = crate::support::rtp::RtpSink::start();
    let customer = Sipp::uas("customer_answers_rtp_sink.xml", trunk)
        .key("rtp_port", &sink.port.to_string())
        .spawn();
    let alice = Sipp::uas("phone_no_answer.xml", agent).spawn();
    std::thread::sleep(Duration::from_millis(300));
    let accepted = Instant::now();
    accept_as_alice(&h, id);
    // Available once the callback is hers (so the router has nothing else to push): the
    // failure must set her away.
    set_presence(&h, "alice", "alice-secret", "available");
    let customer = customer.wait();
    let bye_after = accepted.elapsed();
    assert_ok(&customer);
    assert_ok(&alice.wait());
    let packets = sink.finish();
    assert!(
        bye_after < Duration::from_secs(20 + 10),
        "BYE {bye_after:?} after the accept"
    );
    assert_first_second_is_speech(&packets, "the customer hears the greeting");
    let gaps = crate::support::rtp::gaps_ms(&packets);
    let worst = gaps.iter().copied().fold(0.0, f64::max);
    assert!(worst < 1000.0, "silence of {worst} ms while waiting");
    let i = wait_status(&h, id, "open");
    assert_eq!(i["status"], "open", "{i}");
    assert_eq!(i["callback"]["attempts"], 0, "{i}");
    assert_eq!(i["assigned_agent"], serde_json::Value::Null, "{i}");
    let kinds = kinds_of(&i);
    assert!(kinds.iter().any(|k| k == "agent_unreachable"), "{kinds:?}");
    let agents = http::get(h.http, "/api/v1/agents", "alice-secret");
    let alice = agents.body["agents"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["id"] == "alice").cloned())
        .unwrap_or_default();
    assert_eq!(alice["status"], "away", "{}", agents.text);
}

/// The callback connect experience, agent first: the agent's phone answers at once and hears
/// the whisper (speech) while the customer's phone still rings; when the customer answers the
/// two are bridged.
#[test]
fn agent_answering_first_hears_the_whisper_then_is_bridged_to_the_customer() {
    let (h, trunk, agent, id) = with_callback("");
    let sink = crate::support::rtp::RtpSink::start();
    let customer = Sipp::uas("customer_answers_after_4s.xml", trunk).spawn();
    let alice = Sipp::uas("customer_answers_rtp_sink.xml", agent)
        .key("rtp_port", &sink.port.to_string())
        .spawn();
    std::thread::sleep(Duration::from_millis(300));
    accept_as_alice(&h, id);
    let bridged = wait_feed(&h, id, "bridged");
    assert!(bridged.iter().any(|k| k == "bridged"), "{bridged:?}");
    close_as_alice(&h, id);
    assert_ok(&customer.wait());
    assert_ok(&alice.wait());
    let packets = sink.finish();
    assert_first_second_is_speech(&packets, "the agent first hears the whisper");
}

/// What a leg hears in the first second after its first packet is speech, not silence: PCMU
/// silence is 0xFF/0x7F (and their neighbours); a prompt's samples are not.
fn assert_first_second_is_speech(packets: &[crate::support::rtp::Packet], what: &str) {
    let first = packets
        .first()
        .unwrap_or_else(|| panic!("{what}: no RTP at all"));
    let first_second: Vec<u8> = packets
        .iter()
        .filter(|p| p.at.duration_since(first.at) < Duration::from_secs(1) && p.pt == 0)
        .flat_map(|p| p.payload.iter().copied())
        .collect();
    let loud = first_second
        .iter()
        .filter(|b| !matches!(**b, 0xFF | 0x7F | 0xFE | 0x7E))
        .count();
    assert!(
        loud > first_second.len() / 3,
        "{what}: {loud} of {} samples loud",
        first_second.len()
    );
}

/// Issue 21: a voicemail can be called back. The caller (15551234567) leaves a message; an
/// agent of the queue accepts it from the Home List, and Hammond dials the caller's number
/// through the trunk once, like a callback, and bridges the agent.
#[test]
fn an_accepted_voicemail_dials_the_callers_number_once() {
    let trunk_port = free_port();
    let vic_port = free_port_pair();
    let mut opts = crate::support::api::e2e_options();
    opts.trunk = Some(SocketAddr::from(([127, 0, 0, 1], trunk_port)));
    opts.extra_config.push_str(&format!(
        "[[agents]]\nid = \"vic\"\nendpoint = \"sip:vic@127.0.0.1:{vic_port}\"\n\
         queues = [\"e2e\"]\ntoken = \"vic-secret\"\n"
    ));
    let h = Hammond::start(opts);
    let run = Sipp::uac_template(
        "pcap_until_bye.xml",
        h.sip,
        "e2e",
        &[("PCAP", &crate::support::sipp::pcap("voicemail.pcap"))],
    )
    .run();
    assert_ok(&run);
    let d = crate::support::api::wait_single(&h, "vic-secret", |d| {
        d["sub_type"] == "voicemail" && d["status"] == "open"
    });
    let id = d["id"].as_i64().unwrap();
    assert_eq!(d["callback"]["number"], "15551234567", "{d:#}");
    assert_eq!(d["voicemail"], true, "{d:#}");

    let customer = Sipp::uas("phone_answers_then_hangs_up.xml", trunk_port).spawn();
    let vic = Sipp::uas("phone_answers_waits_bye.xml", vic_port).spawn();
    std::thread::sleep(Duration::from_millis(300));
    let r = http::post(
        h.http,
        &format!("/api/v1/interactions/{id}/accept"),
        "vic-secret",
        "{}",
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["status"], "connected");
    let customer = customer.wait();
    let vic = vic.wait();
    assert_ok(&customer);
    assert_ok(&vic);
    let invites = customer.messages.matches("INVITE sip:15551234567@").count();
    assert_eq!(invites, 1, "{}", customer.messages);
    let done = crate::support::api::detail(&h, "vic-secret", id);
    let done = if done["status"] == "closed" {
        done
    } else {
        std::thread::sleep(Duration::from_secs(2));
        crate::support::api::detail(&h, "vic-secret", id)
    };
    let kinds = kinds_of(&done);
    for k in [
        "assigned",
        "callback_dialling",
        "callback_answered",
        "bridged",
    ] {
        assert_eq!(
            kinds.iter().filter(|x| *x == k).count(),
            1,
            "feed has one {k}: {kinds:?}"
        );
    }
    assert_eq!(done["status"], "closed", "{done:#}");
}
