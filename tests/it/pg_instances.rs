//! Issue 20: several Hammond instances on one PostgreSQL store. Two real `hammond` processes
//! share one database and differ only in their SIP, HTTP and RTP addresses and their data
//! directories; SIPp plays the caller, the customer and the agents' phones. Each test says on
//! the terminal that it was skipped when no PostgreSQL server is given (`HAMMOND_TEST_PG_URL`,
//! which `.ci/run` sets).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::support::pg::PgDb;
use crate::support::sipp::{assert_ok, free_port, free_port_pair};
use crate::support::sse::{Sse, SseEvent};
use crate::support::{Hammond, Options, Sipp, http};

/// Two instances on `db`, their trunk (the customer's phone) on `trunk`, alice's phone on
/// `agent` and bob's on the next port.
fn two_instances(db: &PgDb, trunk: u16, agent: u16) -> (Hammond, Hammond) {
    let opts = || Options {
        store_url: Some(db.url()),
        trunk: Some(SocketAddr::from(([127, 0, 0, 1], trunk))),
        agent_port: Some(agent),
        ..Options::default()
    };
    // At the same moment, on an empty database: one migrates, the other waits.
    std::thread::scope(|s| {
        let a = s.spawn(|| Hammond::start(opts()));
        let b = s.spawn(|| Hammond::start(opts()));
        (a.join().unwrap(), b.join().unwrap())
    })
}

/// A caller on `h` books a callback on the number it calls from; returns the interaction.
fn book_callback(h: &Hammond) -> i64 {
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
    list.body["interactions"][0]["id"]
        .as_i64()
        .expect("an open callback")
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

fn presence_of(h: &Hammond, agent: &str) -> String {
    let agents = http::get(h.http, "/api/v1/agents", "alice-secret");
    agents.body["agents"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["id"] == agent))
        .map(|a| a["status"].as_str().unwrap_or_default().to_owned())
        .unwrap_or_default()
}

/// Waits up to 10 s for `agent`'s presence on `h` to read `status`.
fn wait_presence(h: &Hammond, agent: &str, status: &str) {
    let start = Instant::now();
    while presence_of(h, agent) != status {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{agent} is {} on {}",
            presence_of(h, agent),
            h.http
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The ids of the interaction-change events (presence changes have none).
fn ids(events: &[SseEvent]) -> Vec<i64> {
    events.iter().filter_map(|e| e.id).collect()
}

/// Whether `events` include the callback `id` stored as open (its booking has been heard).
fn has_open_callback(events: &[SseEvent], id: i64) -> bool {
    events.iter().any(|e| {
        let i = &e.data["interaction"];
        i["id"] == id && i["status"] == "open" && i["sub_type"] == "callback"
    })
}

/// A caller on one instance books a callback: the other instance's API lists it, both
/// instances' event streams carry every change of it (each event naming its interaction) with
/// one global id order, a client resumes on the other instance with `Last-Event-ID`, presence
/// set on one is the other's, and two agents accepting on the two instances at once get one
/// 200 and one 409 and the customer one INVITE.
#[test]
fn two_instances_share_interactions_events_presence_and_one_accept_dials() {
    let Some(db) = PgDb::new(
        "pg_instances::two_instances_share_interactions_events_presence_and_one_accept_dials",
    ) else {
        return;
    };
    let (trunk, agent) = (free_port(), free_port_pair());
    let (h1, h2) = two_instances(&db, trunk, agent);
    let s1 = Sse::open(h1.http, "alice-secret", None);
    let s2 = Sse::open(h2.http, "bob-secret", None);

    // Presence is shared: set on one instance, read (and streamed) on the other.
    set_presence(&h1, "alice", "alice-secret", "available");
    wait_presence(&h2, "alice", "available");
    set_presence(&h2, "alice", "alice-secret", "away");
    wait_presence(&h1, "alice", "away");
    let heard = s2.wait(Duration::from_secs(5), |e| {
        e.iter()
            .any(|e| e.kind == "agent_status" && e.data["status"] == "available")
    });
    assert!(
        heard
            .iter()
            .any(|e| e.kind == "agent_status" && e.data["id"] == "alice"),
        "{heard:?}"
    );

    // A callback booked on h1 is every instance's.
    let id = book_callback(&h1);
    let on_h2 = http::get(h2.http, &format!("/api/v1/interactions/{id}"), "bob-secret");
    assert_eq!(on_h2.status, 200, "{}", on_h2.text);
    assert_eq!(on_h2.body["status"], "open");
    let listed = http::get(
        h2.http,
        "/api/v1/interactions?sub_type=callback",
        "bob-secret",
    );
    assert!(
        listed.body["interactions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["id"] == id),
        "{}",
        listed.text
    );

    // Both streams: the same events, in one id order, each naming its interaction.
    let e1 = s1.wait(Duration::from_secs(10), |e| has_open_callback(e, id));
    let e2 = s2.wait(Duration::from_secs(10), |e| has_open_callback(e, id));
    assert!(has_open_callback(&e1, id) && has_open_callback(&e2, id));
    let (i1, i2) = (ids(&e1), ids(&e2));
    let n = i1.len().min(i2.len());
    assert!(n >= 3, "{i1:?} / {i2:?}");
    assert_eq!(i1[..n], i2[..n], "one order on both instances");
    assert!(i1.windows(2).all(|w| w[0] < w[1]), "{i1:?}");
    assert_eq!(
        i1,
        (i1[0]..i1[0] + i1.len() as i64).collect::<Vec<_>>(),
        "no gap"
    );
    for e in e1.iter().filter(|e| e.id.is_some()) {
        assert_eq!(e.data["interaction"]["id"], id, "{e:?}");
    }
    // Resuming on the other instance replays what followed, as the first instance sent it.
    let resume_after = i1[0];
    let s3 = Sse::open(h2.http, "alice-secret", Some(resume_after));
    let e3 = s3.wait(Duration::from_secs(10), |e| ids(e).len() >= i1.len() - 1);
    assert_eq!(
        ids(&e3)[..i1.len() - 1],
        i1[1..],
        "Last-Event-ID on the other instance"
    );

    // Two agents accept at once, one on each instance: one 200, one 409, one customer INVITE.
    let customer = Sipp::uas("phone_busy.xml", trunk).spawn();
    let alice = Sipp::uas("phone_answers_waits_bye.xml", agent).spawn();
    let bob = Sipp::uas("phone_answers_waits_bye.xml", agent + 1).spawn();
    std::thread::sleep(Duration::from_millis(300));
    let path = format!("/api/v1/interactions/{id}/accept");
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| http::post(h1.http, &path, "alice-secret", "{}"));
        let b = s.spawn(|| http::post(h2.http, &path, "bob-secret", "{}"));
        (a.join().unwrap(), b.join().unwrap())
    });
    let mut codes = [a.status, b.status];
    codes.sort_unstable();
    assert_eq!(codes, [200, 409], "{} / {}", a.text, b.text);
    let customer = customer.wait();
    assert_ok(&customer);
    assert_eq!(
        customer.messages.matches("INVITE sip:15551234567@").count(),
        1,
        "{}",
        customer.messages
    );
    // The winner's instance dialled; the other did not.
    let dialler = if a.status == 200 { &h1 } else { &h2 };
    let other = if a.status == 200 { &h2 } else { &h1 };
    assert!(
        dialler.wait_for_log("callback dial outcome", Duration::from_secs(10)),
        "{}",
        dialler.log()
    );
    assert!(
        !other.log().contains("callback dial outcome"),
        "{}",
        other.log()
    );
    drop((alice, bob));
}

/// A due callback, two instances and one agent who becomes available (heard by both routers
/// at once): the callback is offered by one instance only. Alice's phone rings 4 s, in which
/// the other instance's router finds her free and the callback due, again and again, and is
/// refused the claim; she answers, and the customer is dialled once.
#[test]
fn a_due_callback_is_offered_by_one_instance_at_a_time() {
    let Some(db) = PgDb::new("pg_instances::a_due_callback_is_offered_by_one_instance_at_a_time")
    else {
        return;
    };
    let (trunk, agent) = (free_port(), free_port_pair());
    let (h1, h2) = two_instances(&db, trunk, agent);
    let id = book_callback(&h2);
    let customer = Sipp::uas("phone_answers_then_hangs_up.xml", trunk).spawn();
    let alice = Sipp::uas("customer_answers_after_4s.xml", agent).spawn();
    std::thread::sleep(Duration::from_millis(300));
    set_presence(&h1, "alice", "alice-secret", "available");
    let customer = customer.wait();
    let alice = alice.wait();
    assert_ok(&customer);
    assert_ok(&alice);
    assert_eq!(
        alice.messages.matches("INVITE sip:alice@").count(),
        1,
        "{}",
        alice.messages
    );
    assert_eq!(
        customer.messages.matches("INVITE sip:15551234567@").count(),
        1,
        "{}",
        customer.messages
    );
    let offers = |h: &Hammond| {
        h.log()
            .lines()
            .filter(|l| {
                l.contains("hammond::rt::router: offer agent=alice")
                    && l.contains(&format!("interaction={id} "))
            })
            .count()
    };
    assert_eq!(
        offers(&h1) + offers(&h2),
        1,
        "h1:\n{}\nh2:\n{}",
        h1.log(),
        h2.log()
    );
    // The other instance tried while her phone rang, and was refused.
    assert!(
        format!("{}{}", h1.log(), h2.log()).contains("offer claimed elsewhere"),
        "the race did not happen"
    );
    // Alice answered, so she stays available: no second offer rang out unanswered.
    assert_eq!(presence_of(&h2, "alice"), "available");
}

/// An instance dies (kill -9) with a caller in its workflow and a confirmed callback booked on
/// it: within 45 s the survivor settles the caller's interaction, naming the lost instance on
/// the feed; the confirmed callback is untouched, and an accept on the survivor dials it once.
#[test]
fn a_dead_instances_calls_are_settled_by_a_survivor_and_no_callback_is_lost() {
    let Some(db) = PgDb::new(
        "pg_instances::a_dead_instances_calls_are_settled_by_a_survivor_and_no_callback_is_lost",
    ) else {
        return;
    };
    let (trunk, agent) = (free_port(), free_port_pair());
    let (h1, h2) = two_instances(&db, trunk, agent);
    let booked = book_callback(&h1);
    let _caller = Sipp::uac("caller_waits.xml", h1.sip, "support")
        .args(&["-d", "60000", "-timeout", "70s"])
        .spawn();
    let in_workflow = || {
        let list = http::get(h2.http, "/api/v1/interactions?status=bot", "bob-secret");
        list.body["interactions"][0]["id"].as_i64()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let caller = loop {
        if let Some(id) = in_workflow() {
            break id;
        }
        assert!(
            Instant::now() < deadline,
            "the caller never reached the workflow"
        );
        std::thread::sleep(Duration::from_millis(100));
    };

    let died = Instant::now();
    drop(h1); // SIGKILL: no shutdown, no goodbye, its lease just stops being renewed
    let path = format!("/api/v1/interactions/{caller}");
    let settled = loop {
        let got = http::get(h2.http, &path, "bob-secret");
        if got.body["status"] == "closed" {
            break got;
        }
        assert!(
            died.elapsed() < Duration::from_secs(45),
            "not settled within 45 s: {}\n{}",
            got.text,
            h2.log()
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    let lost = settled.body["feed"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "recovered")
        .unwrap_or_else(|| panic!("no recovered entry: {}", settled.text));
    assert!(
        lost["text"].as_str().unwrap().contains("was lost"),
        "{lost}"
    );

    let confirmed = http::get(
        h2.http,
        &format!("/api/v1/interactions/{booked}"),
        "bob-secret",
    );
    assert_eq!(confirmed.body["status"], "open", "{}", confirmed.text);
    let customer = Sipp::uas("phone_busy.xml", trunk).spawn();
    let bob = Sipp::uas("phone_answers_waits_bye.xml", agent + 1).spawn();
    std::thread::sleep(Duration::from_millis(300));
    let accepted = http::post(
        h2.http,
        &format!("/api/v1/interactions/{booked}/accept"),
        "bob-secret",
        "{}",
    );
    assert_eq!(accepted.status, 200, "{}", accepted.text);
    let customer = customer.wait();
    assert_ok(&customer);
    assert_eq!(
        customer.messages.matches("INVITE sip:15551234567@").count(),
        1,
        "{}",
        customer.messages
    );
    drop(bob);
}
