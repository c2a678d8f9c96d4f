//! Issue 16, hold is Hammond's: an agent's desk phone puts a bridged callback (or a live
//! caller) on hold with a re-INVITE (`a=sendonly`, RFC 3264 §8.4) and takes it off (`a=sendrecv`). On hold the
//! customer hears the queue's hold music and no longer the agent (whose phone keeps sending);
//! after the resume the agent's audio reaches the customer again.

use std::time::{Duration, Instant};

use crate::dialer_flows::{accept_as_alice, wait_feed, wait_status, with_callback_opts};
use crate::support::sipp::{assert_ok, free_port_pair};
use crate::support::tone::ToneMedia;
use crate::support::{Hammond, Options, Sipp, http};

/// The tone the agent's phone sends (the hold music has almost nothing at 600 Hz).
const AGENT_HZ: f64 = 600.0;
/// The tone the customer's phone sends.
const CUSTOMER_HZ: f64 = 1400.0;

/// Wait (up to `within`) until what the customer hears satisfies `ok`.
fn wait_heard(customer: &ToneMedia, what: &str, within: Duration, ok: impl Fn(&ToneMedia) -> bool) {
    let start = Instant::now();
    while !ok(customer) {
        assert!(
            start.elapsed() < within,
            "the customer never heard {what}: 600 Hz share {:.2}, power {:.0}, {} packets",
            customer.tone_power(AGENT_HZ),
            customer.power(),
            customer.count()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// From the bridge: the customer hears the agent's tone; on the phone's hold (3 s after its
/// answer) the queue's hold music and nothing of the agent, whose phone keeps sending; after
/// its resume (3 s later) the agent again.
fn hold_and_resume_are_heard(h: &Hammond, id: i64, customer: &ToneMedia) {
    wait_feed(h, id, "bridged");
    wait_heard(customer, "the agent", Duration::from_secs(3), |m| {
        m.tone_power(AGENT_HZ) > 0.5
    });
    // The phone's hold re-INVITE comes 3 s after its answer.
    let kinds = wait_feed(h, id, "on_hold");
    assert!(kinds.iter().any(|k| k == "on_hold"), "{kinds:?}");
    wait_heard(customer, "the hold music", Duration::from_secs(2), |m| {
        m.tone_power(AGENT_HZ) < 0.2 && m.power() > 1e6
    });
    // The phone still sends while on hold (sendonly): none of it reaches the customer.
    std::thread::sleep(Duration::from_millis(1000));
    assert!(
        customer.tone_power(AGENT_HZ) < 0.2,
        "the agent is heard on hold: 600 Hz share {:.2}",
        customer.tone_power(AGENT_HZ)
    );
    let kinds = wait_feed(h, id, "resumed");
    assert!(kinds.iter().any(|k| k == "resumed"), "{kinds:?}");
    wait_heard(
        customer,
        "the agent after the resume",
        Duration::from_secs(2),
        |m| m.tone_power(AGENT_HZ) > 0.5,
    );
}

#[test]
fn a_desk_phones_hold_reinvite_plays_hold_music_to_the_customer_and_resume_bridges_again() {
    let (h, trunk, agent, id) = with_callback_opts(|_| {});
    let customer = ToneMedia::start(CUSTOMER_HZ);
    let phone = ToneMedia::start(AGENT_HZ);
    let customer_sipp = Sipp::uas("customer_answers_rtp_sink.xml", trunk)
        .key("rtp_port", &customer.port.to_string())
        .spawn();
    let alice = Sipp::uas("agent_holds.xml", agent)
        .key("rtp_port", &phone.port.to_string())
        .spawn();
    std::thread::sleep(Duration::from_millis(300));
    accept_as_alice(&h, id);
    hold_and_resume_are_heard(&h, id, &customer);
    // The phone hangs up: the customer gets BYE and the interaction closes as the agent's.
    assert_ok(&alice.wait());
    assert_ok(&customer_sipp.wait());
    let done = wait_status(&h, id, "closed");
    assert_eq!(done["status"], "closed", "{done}");
    customer.finish();
    phone.finish();
}

/// The same on a live caller the router pushed to alice's desk phone.
#[test]
fn a_desk_phones_hold_reinvite_on_a_live_caller_plays_the_queues_hold_music() {
    let agent_port = free_port_pair();
    let h = Hammond::start(Options {
        agent_port: Some(agent_port),
        ..Options::default()
    });
    let caller_media = ToneMedia::start(CUSTOMER_HZ);
    let phone = ToneMedia::start(AGENT_HZ);
    let caller = Sipp::uac("caller_rtp_until_bye.xml", h.sip, "support")
        .key("rtp_port", &caller_media.port.to_string())
        .spawn();
    let alice = Sipp::uas("agent_holds.xml", agent_port)
        .key("rtp_port", &phone.port.to_string())
        .spawn();
    std::thread::sleep(Duration::from_millis(300));
    let r = http::request(
        h.http,
        "PUT",
        "/api/v1/agents/alice/status",
        Some("alice-secret"),
        Some(r#"{"status":"available"}"#),
    );
    assert_eq!(r.status, 200, "{}", r.text);
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
            "the caller was never bridged"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    hold_and_resume_are_heard(&h, id, &caller_media);
    assert_ok(&alice.wait());
    assert_ok(&caller.wait());
    let done = wait_status(&h, id, "closed");
    assert_eq!(done["status"], "closed", "{done}");
    caller_media.finish();
    phone.finish();
}
