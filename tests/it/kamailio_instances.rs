//! Issue 20: Kamailio in front of two Hammond instances on one PostgreSQL store, running the
//! shipped `deploy/kamailio/kamailio.cfg` (only its defines differ: loopback ports, a dispatcher
//! list naming the test's instances, shorter timers). SIPp plays the callers (through Kamailio),
//! the customer (at the trunk) and the agents' phones.
//!
//! Each test says on the terminal that it was skipped when `kamailio` or the PostgreSQL server
//! is missing, and fails instead when `CI` is set.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::support::kamailio::{self, Kamailio};
use crate::support::pg::PgDb;
use crate::support::sipp::{SippRun, assert_ok, free_port, free_port_pair};
use crate::support::{Hammond, Options, Sipp, http};

/// Two instances on `db` (started one after the other), their trunk (the customer's phone) on
/// `trunk`, alice's phone on `agent` and bob's on the next port.
fn two_instances(db: &PgDb, trunk: u16, agent: u16) -> (Hammond, Hammond) {
    let opts = || Options {
        store_url: Some(db.url()),
        trunk: Some(SocketAddr::from(([127, 0, 0, 1], trunk))),
        agent_port: Some(agent),
        ..Options::default()
    };
    (Hammond::start(opts()), Hammond::start(opts()))
}

/// Caller `n` books a callback on the number it calls from (`1555000000n`: one callback per
/// number is kept), through the proxy at `via`.
fn book_callback(via: SocketAddr, n: usize) -> SippRun {
    Sipp::uac("proxied_callback_info.xml", via, "support")
        .caller(&format!("1555{n:07}"))
        .key("key1", "1")
        .key("key2", "1")
        .run()
}

/// Callers `first..first + n` book callbacks through `via` at once.
fn book_callbacks(via: SocketAddr, first: usize, n: usize) -> Vec<SippRun> {
    std::thread::scope(|s| {
        let runs: Vec<_> = (first..first + n)
            .map(|i| {
                // A few ms apart, so SIPp's media ports and Call-IDs never meet.
                std::thread::sleep(Duration::from_millis(50));
                s.spawn(move || book_callback(via, i))
            })
            .collect();
        runs.into_iter().map(|r| r.join().unwrap()).collect()
    })
}

/// Whether `h` ran the call of interaction `id` (its call span names the interaction).
fn ran(h: &Hammond, id: i64) -> bool {
    let field = format!("interaction={id}");
    h.log().split_whitespace().any(|t| {
        t.strip_prefix(field.as_str())
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('}'))
    })
}

/// The ids of the interactions `h`'s API lists with this query.
fn listed(h: &Hammond, query: &str) -> Vec<i64> {
    let r = http::get(
        h.http,
        &format!("/api/v1/interactions?{query}"),
        "alice-secret",
    );
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["interactions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["id"].as_i64())
        .collect()
}

/// The instance name `h` logged at start (feed entries about a lost instance name it).
fn instance_name(h: &Hammond) -> String {
    h.log()
        .lines()
        .find(|l| l.contains("store shared with other instances"))
        .and_then(|l| {
            l.split_whitespace()
                .find_map(|t| t.strip_prefix("instance="))
        })
        .expect("an instance name in the log")
        .to_owned()
}

/// Asserts that the in-dialog `method` request a SIPp caller received came from Hammond
/// through Kamailio at `kam`: the proxy's Via on top of Hammond's, and no other.
#[track_caller]
fn assert_via_proxy(run: &SippRun, method: &str, kam: SocketAddr) {
    let start = format!("{method} ");
    let msg = run
        .messages
        .split("\n-----")
        .filter_map(|b| b.split_once("message received"))
        .map(|(_, rest)| rest)
        .find(|m| {
            m.trim_start_matches(|c| c != '\n')
                .trim_start()
                .starts_with(&start)
        })
        .unwrap_or_else(|| panic!("no {method} received:\n{}", run.messages));
    let vias: Vec<&str> = msg.lines().filter(|l| l.starts_with("Via:")).collect();
    assert!(
        vias.len() == 2 && vias[0].starts_with(&format!("Via: SIP/2.0/UDP {kam}")),
        "{method} not via Kamailio:\n{msg}"
    );
}

/// Calls through Kamailio spread across both instances, in-dialog requests follow the
/// Record-Route set both ways (the caller's INFO keys and NOTIFY reach the instance that
/// answered; Hammond's BYE and REFER reach the caller through the proxy). One instance is killed (-9) while
/// callers wait on both; new calls land on the survivor; every callback confirmed before the
/// kill is still listed and pickable on the survivor, and accepting one there dials the
/// customer exactly once. The survivor settles the dead instance's waiting caller within 45 s.
#[test]
fn kamailio_spreads_calls_and_a_dead_instance_loses_no_confirmed_callback() {
    let case = "kamailio_instances::kamailio_spreads_calls_and_a_dead_instance_loses_no_confirmed_callback";
    if kamailio::binary(case).is_none() {
        return;
    }
    let Some(db) = PgDb::new(case) else {
        return;
    };
    let (trunk, agent) = (free_port(), free_port_pair());
    let (mut h1, h2) = two_instances(&db, trunk, agent);
    // The shipped 2 s: a loaded host's slow ping reply is not taken for a death.
    let kam = Kamailio::start(&[h1.sip, h2.sip], 2000);

    // Four callers book callbacks through the proxy: round-robin gives each instance calls.
    let before = book_callbacks(kam.sip, 1, 4);
    for r in &before {
        assert_ok(r);
    }
    let booked = listed(&h2, "sub_type=callback&status=open");
    assert_eq!(booked.len(), 4, "{booked:?}");
    let on_h1: Vec<i64> = booked.iter().copied().filter(|&id| ran(&h1, id)).collect();
    let on_h2: Vec<i64> = booked.iter().copied().filter(|&id| ran(&h2, id)).collect();
    assert!(
        !on_h1.is_empty() && !on_h2.is_empty() && on_h1.len() + on_h2.len() == 4,
        "calls did not spread: h1 ran {on_h1:?}, h2 ran {on_h2:?}\n{}",
        kam.log()
    );
    // Hammond's BYE (after the confirmation) came to each caller through Kamailio.
    for r in &before {
        assert_via_proxy(r, "BYE", kam.sip);
    }
    // So do its REFER (0 = the operator) and the BYE after it; the caller's NOTIFY went back
    // to the instance by the same route.
    let transfer = Sipp::uac("proxied_transfer_refer.xml", kam.sip, "support")
        .caller("15559990000")
        .run();
    assert_ok(&transfer);
    assert_via_proxy(&transfer, "REFER", kam.sip);
    assert_via_proxy(&transfer, "BYE", kam.sip);

    // Two callers wait in the workflow, one on each instance; then one instance dies.
    let calls = |h: &Hammond| h.log().matches("call started").count();
    let took = (calls(&h1), calls(&h2));
    let waiting: Vec<_> = (0..2)
        .map(|i| {
            std::thread::sleep(Duration::from_millis(100 * i));
            Sipp::uac("proxied_caller_waits.xml", kam.sip, "support")
                .args(&["-d", "60000", "-timeout", "70s"])
                .spawn()
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    let engaged = loop {
        let bot = listed(&h2, "status=bot");
        if bot.len() == 2 || Instant::now() > deadline {
            break bot;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(engaged.len(), 2, "{engaged:?}");
    // (A waiting call logs no line naming its interaction: count the calls each one took.)
    assert_eq!(
        (calls(&h1), calls(&h2)),
        (took.0 + 1, took.1 + 1),
        "one caller waits on each instance"
    );
    let h1_name = instance_name(&h1);
    let died = Instant::now();
    h1.kill9();

    // New callers right after the death: every one lands on the survivor (a request sent to
    // the dead instance before its pings failed goes on to the next after FR_TIMEOUT).
    let after = book_callbacks(kam.sip, 5, 4);
    for r in &after {
        assert_ok(r);
    }
    let all = listed(&h2, "sub_type=callback&status=open");
    let new: Vec<i64> = all
        .iter()
        .copied()
        .filter(|id| !booked.contains(id))
        .collect();
    assert_eq!(new.len(), 4, "{all:?}");
    for id in &new {
        assert!(ran(&h2, *id), "callback {id} was not taken by the survivor");
    }

    // The survivor settles the dead instance's caller within 45 s of the death, with a feed
    // entry naming it; the survivor's own waiting caller is not touched.
    let settled = loop {
        let closed: Vec<serde_json::Value> = engaged
            .iter()
            .map(|id| {
                http::get(
                    h2.http,
                    &format!("/api/v1/interactions/{id}"),
                    "alice-secret",
                )
                .body
            })
            .filter(|i| i["status"] == "closed")
            .collect();
        if !closed.is_empty() {
            break closed;
        }
        assert!(
            died.elapsed() < Duration::from_secs(45),
            "the dead instance's caller was not settled within 45 s\n{}",
            h2.log()
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(settled.len(), 1, "{settled:?}");
    let recovered = settled[0]["feed"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "recovered")
        .unwrap_or_else(|| panic!("no recovered entry: {}", settled[0]));
    assert!(
        recovered["text"]
            .as_str()
            .unwrap()
            .contains(&format!("Hammond instance {h1_name} was lost")),
        "{recovered}"
    );
    let other = engaged.iter().find(|id| settled[0]["id"] != **id).unwrap();
    let other = http::get(
        h2.http,
        &format!("/api/v1/interactions/{other}"),
        "alice-secret",
    );
    assert_eq!(other.body["status"], "bot", "{}", other.text);

    // No confirmed callback is lost: all booked before the death are listed on the survivor,
    // still open, and one the dead instance took is picked there: one customer INVITE.
    for id in &booked {
        assert!(all.contains(id), "callback {id} lost: {all:?}");
    }
    let customer = Sipp::uas("customer_uas.xml", trunk).spawn();
    let alice = Sipp::uas("phone_answers_waits_bye.xml", agent).spawn();
    std::thread::sleep(Duration::from_millis(300));
    let picked = on_h1[0];
    let r = http::post(
        h2.http,
        &format!("/api/v1/interactions/{picked}/accept"),
        "alice-secret",
        "{}",
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        h2.wait_for_log("customer and agent bridged", Duration::from_secs(15)),
        "{}",
        h2.log()
    );
    let close = http::post(
        h2.http,
        &format!("/api/v1/interactions/{picked}/close"),
        "alice-secret",
        r#"{"disposition": "resolved"}"#,
    );
    assert_eq!(close.status, 200, "{}", close.text);
    let customer = customer.wait();
    assert_ok(&customer);
    assert_eq!(
        customer.messages.matches("INVITE sip:").count(),
        1,
        "{}",
        customer.messages
    );
    alice.kill();
    for w in waiting {
        w.kill();
    }
}

/// The failure route: an instance that does not answer at all (nothing on its port) and one
/// that answers 503 are each marked down and the INVITE goes on to the next instance of the
/// set, so every caller reaches the Hammond that works. Pings are rare here, so only the
/// failure route can have found the two bad ones.
#[test]
fn kamailio_fails_over_on_timeout_and_503() {
    let case = "kamailio_instances::kamailio_fails_over_on_timeout_and_503";
    if kamailio::binary(case).is_none() {
        return;
    }
    let h = Hammond::start(Options::default());
    let dead = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let busy_port = free_port();
    let busy = Sipp::uas("phone_503.xml", busy_port).spawn();
    std::thread::sleep(Duration::from_millis(300));
    let busy_addr = SocketAddr::from(([127, 0, 0, 1], busy_port));
    let kam = Kamailio::start_with(&[dead, busy_addr, h.sip], 1000, 3600, &[]);

    // Round-robin starts each call at the next instance: within three calls each bad one is
    // tried (first or after the other) before it is marked down.
    for n in 0..3 {
        let run = Sipp::uac("proxied_caller_waits.xml", kam.sip, "support")
            .caller(&format!("1555{n:07}"))
            .args(&["-d", "500"])
            .run();
        assert_ok(&run);
    }
    assert_eq!(h.log().matches("call started").count(), 3, "{}", kam.log());
    let busy = busy.wait();
    assert_ok(&busy);
    let log = kam.log();
    assert!(
        log.contains(&format!("{dead} did not answer, marked down")),
        "{log}"
    );
    assert!(
        log.contains(&format!("{busy_addr} answered 503, marked down")),
        "{log}"
    );
    assert!(log.contains("failover to"), "{log}");
}

/// Only TRUSTED_NETS may start calls through the proxy: a caller outside them gets 403 from
/// Kamailio (Hammond never sees the INVITE); inside one of a comma-separated list, it is
/// answered by Hammond.
#[test]
fn kamailio_admits_only_trusted_nets() {
    let case = "kamailio_instances::kamailio_admits_only_trusted_nets";
    if kamailio::binary(case).is_none() {
        return;
    }
    let h = Hammond::start(Options::default());
    let closed = Kamailio::start_with(&[h.sip], 1000, 1, &["TRUSTED_NETS=\"10.0.0.0/8\""]);
    let refused = Sipp::uac("refused_403.xml", closed.sip, "support").run();
    assert_ok(&refused);
    assert!(!h.log().contains("call started"), "{}", h.log());
    drop(closed);
    let open = Kamailio::start_with(
        &[h.sip],
        1000,
        1,
        &["TRUSTED_NETS=\"10.0.0.0/8,127.0.0.1/32\""],
    );
    let run = Sipp::uac("proxied_caller_waits.xml", open.sip, "support")
        .args(&["-d", "500"])
        .run();
    assert_ok(&run);
    assert!(h.log().contains("call started"), "{}", h.log());
}
