//! Issue "SIP signalling core": a PBX (SIPp) calls Hammond over UDP and TCP.

use std::time::Duration;

use crate::support::sipp::assert_ok;
use crate::support::{Hammond, Options, Sipp};

#[test]
fn call_wait_caller_hangs_up() {
    let h = Hammond::start(Options::default());
    let run = Sipp::uac("caller_hangs_up.xml", h.sip, "support").run();
    assert_ok(&run);
    // The answer carries an SDP answer with one of the offered codecs.
    assert!(run.messages.contains("m=audio "), "{}", run.messages);
    assert!(
        h.wait_for_log("call ended", Duration::from_secs(5)),
        "{}",
        h.log()
    );
}

#[test]
fn call_over_tcp() {
    let h = Hammond::start(Options::default());
    let run = Sipp::uac("caller_hangs_up.xml", h.sip, "support")
        .tcp()
        .run();
    assert_ok(&run);
}

#[test]
fn hammond_hangs_up() {
    let queue = r#"
numbers = ["short"]
ring_before_answer = "0s"
max_wait = "2s"
max_wait_action = { action = "hangup" }
[menu]
options = [{ key = "2", action = "wait" }]
"#;
    let h = Hammond::start(Options {
        queues: vec![("short.toml".into(), queue.into())],
        ..Options::default()
    });
    let run = Sipp::uac("hammond_hangs_up.xml", h.sip, "short").run();
    assert_ok(&run);
}

#[test]
fn cancel_before_answer() {
    let h = Hammond::start(Options::default());
    let run = Sipp::uac("cancel_before_answer.xml", h.sip, "support").run();
    assert_ok(&run);
}

#[test]
fn options_ping() {
    let h = Hammond::start(Options::default());
    assert_ok(&Sipp::uac("options.xml", h.sip, "support").run());
    assert_ok(&Sipp::uac("options.xml", h.sip, "support").tcp().run());
}

#[test]
fn retransmitted_invite_gets_the_same_response() {
    let h = Hammond::start(Options::default());
    let run = Sipp::uac("invite_retransmitted.xml", h.sip, "support").run();
    assert_ok(&run);
    // Both copies of the INVITE were answered, yet only one call was made.
    let provisional = run.received("SIP/2.0 100") + run.received("SIP/2.0 180");
    assert!(provisional >= 2, "{}", run.messages);
    assert_eq!(h.log().matches("call started").count(), 1, "{}", h.log());
}

#[test]
fn lost_ack_causes_200_retransmissions() {
    let h = Hammond::start(Options::default());
    let run = Sipp::uac("lost_ack.xml", h.sip, "support").run();
    assert_ok(&run);
    // 200 at 0, then Timer G at 0.5 s and 1.5 s inside the 2.2 s pause.
    assert!(run.received("SIP/2.0 200") >= 3, "{}", run.messages);
}

#[test]
fn untrusted_source_gets_403() {
    let h = Hammond::start(Options::default());
    let run = Sipp::uac("refused_403.xml", h.sip, "support")
        .args(&["-i", "127.0.0.2", "-bind_local"])
        .run();
    assert_ok(&run);
    assert!(!h.log().contains("call started"), "no state for strangers");
}

#[test]
fn unknown_user_gets_404() {
    let h = Hammond::start(Options::default());
    assert_ok(&Sipp::uac("refused_404.xml", h.sip, "nobody").run());
}

#[test]
fn malformed_request_gets_400() {
    let h = Hammond::start(Options::default());
    assert_ok(&Sipp::uac("malformed_400.xml", h.sip, "support").run());
}
