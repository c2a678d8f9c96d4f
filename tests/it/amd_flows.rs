//! Issue 21 item 5: answering-machine detection on a callback's customer leg, with real
//! phones. SIPp plays the customer's phone from a capture (`tests/data/rtp/make_pcaps.py`): an
//! answering machine's recorded greeting and beep, or a person's "hello?" then silence; the
//! agent's phone answers at once.

use std::time::{Duration, Instant};

use crate::dialer_flows::{
    accept_as_alice, close_as_alice, kinds_of, wait_detail, wait_feed, with_callback_opts,
};
use crate::support::sipp::{assert_ok, pcap};
use crate::support::{Hammond, Sipp};

/// The shipped support queue with answering-machine detection switched on as its comment
/// shows.
fn support_detecting() -> String {
    let shipped =
        std::fs::read_to_string(crate::support::hammond::repo().join("config/queues/support.toml"))
            .unwrap();
    let off = "#   [callback.answering_machine]\n#   detect = true\n";
    assert!(shipped.contains(off), "support.toml documents the table");
    shipped.replace(off, "[callback.answering_machine]\ndetect = true\n")
}

/// A Hammond whose support queue detects machines, with one open callback; the customer's
/// phone plays `capture`, alice's phone answers and waits for a BYE.
fn dial(
    capture: &str,
) -> (
    Hammond,
    i64,
    crate::support::sipp::Running,
    crate::support::sipp::Running,
    Instant,
) {
    let (h, trunk, agent, id) = with_callback_opts(|o| {
        o.queues.push(("support.toml".into(), support_detecting()));
    });
    let customer = Sipp::uas_template(
        "customer_plays_pcap.xml",
        trunk,
        &[("PCAP", &pcap(capture))],
    )
    .spawn();
    let alice = Sipp::uas("phone_answers_waits_bye.xml", agent).spawn();
    std::thread::sleep(Duration::from_millis(300));
    let accepted = Instant::now();
    accept_as_alice(&h, id);
    (h, id, customer, alice, accepted)
}

fn feed_text(detail: &serde_json::Value, kind: &str) -> String {
    detail["feed"]
        .as_array()
        .and_then(|f| f.iter().find(|e| e["kind"] == kind))
        .and_then(|e| e["text"].as_str())
        .unwrap_or_default()
        .to_owned()
}

/// A customer phone that plays a long recorded greeting is detected as a machine: alice's
/// phone is released (BYE) at once, the callback is back in the queue with the attempt counted
/// by the machine rule (support: next try in 1 h, 2 attempts), the machine gets the message
/// after its beep, then the BYE.
#[test]
fn a_recorded_greeting_is_a_machine_that_gets_the_message_and_the_machine_rule() {
    let (h, id, customer, alice, accepted) = dial("machine_greeting.pcap");
    let alice = alice.wait();
    let agent_released = accepted.elapsed();
    assert_ok(&alice);
    let customer = customer.wait();
    let customer_bye = accepted.elapsed();
    assert_ok(&customer);
    // The greeting's beep ends about 6.5 s after the answer, the message lasts about 7 s.
    assert!(
        agent_released < Duration::from_secs(6),
        "alice released {agent_released:?} after the accept"
    );
    assert!(
        customer_bye > Duration::from_secs(6 + 6) && customer_bye < Duration::from_secs(30),
        "the machine's BYE {customer_bye:?} after the accept: the message after the beep"
    );
    let d = wait_detail(&h, id, |d| {
        kinds_of(d).iter().any(|k| k == "machine_message_left")
    });
    assert_eq!(d["status"], "open", "{d}");
    assert_eq!(d["callback"]["attempts"], 1, "{d}");
    assert_eq!(d["assigned_agent"], serde_json::Value::Null, "{d}");
    let screened = feed_text(&d, "screened");
    assert!(screened.contains("an answering machine"), "{screened}");
    let failed = feed_text(&d, "callback_failed_attempt");
    assert!(
        failed.starts_with("answering machine; attempt 1 of 2, next try after"),
        "{failed}"
    );
    let not_before: jiff::Timestamp = d["callback"]["not_before"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let ahead = not_before.duration_since(jiff::Timestamp::now());
    assert!(
        ahead > jiff::SignedDuration::from_mins(58) && ahead <= jiff::SignedDuration::from_mins(60),
        "the machine rule's delay: {ahead:?}"
    );
    assert!(
        kinds_of(&d).iter().any(|k| k == "machine_message_left"),
        "{d}"
    );
}

/// A customer who says a short "hello?" and then waits is a person: bridged to alice.
#[test]
fn a_short_hello_is_bridged_to_the_agent() {
    let (h, id, customer, alice, _) = dial("hello.pcap");
    let kinds = wait_feed(&h, id, "bridged");
    assert!(kinds.iter().any(|k| k == "bridged"), "{kinds:?}");
    let d = wait_detail(&h, id, |_| true);
    assert_eq!(
        feed_text(&d, "screened"),
        "answering-machine screening: a person"
    );
    assert!(
        !kinds.iter().any(|k| k == "callback_failed_attempt"),
        "{kinds:?}"
    );
    close_as_alice(&h, id);
    assert_ok(&customer.wait());
    assert_ok(&alice.wait());
}
